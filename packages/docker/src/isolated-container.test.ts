/**
 * An isolated run on the real Docker daemon of the test services, in the test base image (present
 * on the daemon: nothing is pulled or removed): no network, no host environment, bounded output,
 * a time limit, the exit status.
 */
import { describe, expect, it } from 'vitest';
import { UnreachableError } from '@prebuilt/core/backend';
import { dockerConnection } from './docker-host.js';
import { EngineClient } from './engine-client.js';
import { isolatedContainerSpec, runIsolatedContainer } from './isolated-container.js';
import { testServices } from './__fixtures__/services.js';

const services = testServices();
const missing = services.dockerHost && services.baseImage ? undefined : 'needs the Docker daemon and the base image of the test services';
const base = services.baseImage?.ref ?? '';
const env = { DOCKER_HOST: services.dockerHost ?? '', PREBUILT_HOST_ONLY: 'host-secret-value' };
const sh = (script: string, fields: { timeoutMs?: number; maxStdoutBytes?: number } = {}) =>
  runIsolatedContainer({ image: base, command: ['/bin/sh', '-c', script], timeoutMs: fields.timeoutMs ?? 60_000, maxStdoutBytes: fields.maxStdoutBytes ?? 1 << 20, env });

describe('isolatedContainerSpec', () => {
  it('no network, no mounts, no env of the host, no capability, no daemon log, removed on exit', () => {
    const spec = isolatedContainerSpec('img@sha256:1', ['/bin/python', '-c', 'pass']);
    expect(spec).toMatchObject({ Image: 'img@sha256:1', Entrypoint: ['/bin/python'], Cmd: ['-c', 'pass'], Env: [], NetworkDisabled: true });
    expect(spec.HostConfig).toMatchObject({ NetworkMode: 'none', AutoRemove: true, Binds: [], Mounts: [], CapDrop: ['ALL'], SecurityOpt: ['no-new-privileges'], LogConfig: { Type: 'none' } });
  });
});

describe.skipIf(missing !== undefined)(`runIsolatedContainer (real Docker daemon)${missing ? ` — skipped: ${missing}` : ''}`, () => {
  it('stdout and stderr apart, the exit status; only a loopback interface, no variable of the host; the container is gone afterwards', async () => {
    const result = await sh('echo out; echo err >&2; ls /sys/class/net; env; exit 3');
    expect(result).toMatchObject({ exitCode: 3, timedOut: false, stdoutOverflow: false, pulled: false });
    expect(result.stdout.split('\n')).toEqual(expect.arrayContaining(['out', 'lo']));
    expect(result.stdout).not.toMatch(/^eth|host-secret-value|PREBUILT_HOST_ONLY/m);
    expect(result.stderrTail).toBe('err\n');
    const docker = new EngineClient(dockerConnection(env.DOCKER_HOST, env));
    await expect(docker.json({ method: 'GET', path: `/containers/${result.containerId}/json` })).rejects.toMatchObject({ statusCode: 404 });
    docker.close();
    const python = await runIsolatedContainer({ image: base, command: ['python3', '-c', 'import socket\ntry:\n    socket.create_connection(("127.0.0.1", 5100), timeout=5)\n    print("connected")\nexcept OSError as e:\n    print("refused", e.errno)'], timeoutMs: 60_000, maxStdoutBytes: 4096, env });
    expect(python.stdout).toMatch(/^refused/); // the host's registry on 127.0.0.1:5100 is not this loopback
  }, 120_000);

  it('killed at the time limit and at the stdout cap (keeping the first bytes); the stderr tail is bounded', async () => {
    const slow = await sh('echo started; sleep 60', { timeoutMs: 1500 });
    expect(slow).toMatchObject({ exitCode: null, timedOut: true, stdout: 'started\n' });
    const flood = await sh('yes /opt/prebuilt/env/x; ', { maxStdoutBytes: 1000 });
    expect(flood).toMatchObject({ exitCode: null, timedOut: false, stdoutOverflow: true });
    expect(flood.stdout.length).toBe(1000);
    const noisy = await runIsolatedContainer({ image: base, command: ['/bin/sh', '-c', 'head -c 100000 /dev/zero | tr "\\0" e >&2; echo END >&2'], timeoutMs: 60_000, maxStdoutBytes: 100, stderrTailBytes: 64, env });
    expect(noisy.exitCode).toBe(0);
    expect(noisy.stderrTail).toMatch(/^e{60}END\n$/);
  }, 120_000);

  it('an absent daemon: the UnreachableError every command gives', async () => {
    await expect(runIsolatedContainer({ image: base, command: ['true'], timeoutMs: 1000, maxStdoutBytes: 10, env: { DOCKER_HOST: 'unix:///nonexistent/docker.sock' } })).rejects.toThrow(UnreachableError);
  });
});
