/**
 * An isolated run on the real Docker daemons of the test services (the system's, and Docker 26 with
 * the containerd image store), in the test base image (present on the daemon: nothing is pulled or
 * removed): no network, no host environment, bounded output, a time limit, the exit status.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { UnreachableError } from '@prebuilt/core/backend';
import { dockerConnection } from './docker-host.js';
import { EngineClient } from './engine-client.js';
import { isolatedContainerSpec, runIsolatedContainer } from './isolated-container.js';
import { describeWith, testServices } from './__fixtures__/services.js';

const services = testServices();
const base = services.baseImage?.ref ?? '';
// The system's Docker daemon (graphdriver), and Docker 26 with the containerd image store.
const daemons = [
  { name: 'real Docker daemon', host: services.dockerHost, need: 'docker' as const },
  { name: 'Docker daemon with the containerd image store', host: services.containerdStoreDocker?.host ?? null, need: 'containerdStoreDocker' as const },
];

describe('isolatedContainerSpec', () => {
  it('no network, no mounts, no env of the host, no capability, no daemon log, removed on exit', () => {
    const spec = isolatedContainerSpec('img@sha256:1', ['/bin/python', '-c', 'pass']);
    expect(spec).toMatchObject({ Image: 'img@sha256:1', Entrypoint: ['/bin/python'], Cmd: ['-c', 'pass'], Env: [], NetworkDisabled: true });
    expect(spec.HostConfig).toMatchObject({ NetworkMode: 'none', AutoRemove: true, Binds: [], Mounts: [], CapDrop: ['ALL'], SecurityOpt: ['no-new-privileges'], LogConfig: { Type: 'none' } });
  });
});

for (const daemon of daemons) {
  describeWith([daemon.need, 'baseImage'], `runIsolatedContainer (${daemon.name})`, () => isolatedRunSuite(daemon.host ?? ''));
}

function isolatedRunSuite(dockerHost: string): void {
  const env = { DOCKER_HOST: dockerHost, PREBUILT_HOST_ONLY: 'host-secret-value' };
  const sh = (script: string, fields: { timeoutMs?: number; maxStdoutBytes?: number } = {}) =>
    runIsolatedContainer({ image: base, command: ['/bin/sh', '-c', script], timeoutMs: fields.timeoutMs ?? 60_000, maxStdoutBytes: fields.maxStdoutBytes ?? 1 << 20, env });

  // The base image is on the daemon (services.test.ts pulls it on each; here too, for a file run alone): nothing is pulled.
  beforeAll(async () => {
    await promisify(execFile)('docker', ['pull', '-q', base], { env: { ...process.env, DOCKER_HOST: dockerHost } });
  }, 120_000);

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

  it('an image the daemon lacks is pulled first (pulled: true), then runs', async () => {
    // The base image's manifest under a second tag of its repository (a fixed one: nothing accumulates), which no daemon keeps.
    const image = await retaggedBase('isolated-pull');
    const docker = promisify(execFile);
    await docker('docker', ['image', 'rm', image], { env: { ...process.env, DOCKER_HOST: dockerHost } }).catch(() => undefined);
    try {
      const result = await runIsolatedContainer({ image, command: ['python3', '-c', 'print(6 * 7)'], timeoutMs: 60_000, maxStdoutBytes: 4096, env });
      expect(result).toMatchObject({ exitCode: 0, pulled: true, stdout: '42\n' });
    } finally {
      await docker('docker', ['image', 'rm', image], { env: { ...process.env, DOCKER_HOST: dockerHost } }).catch(() => undefined);
    }
  }, 120_000);

  it('an absent daemon: the UnreachableError every command gives', async () => {
    await expect(runIsolatedContainer({ image: base, command: ['true'], timeoutMs: 1000, maxStdoutBytes: 10, env: { DOCKER_HOST: 'unix:///nonexistent/docker.sock' } })).rejects.toThrow(UnreachableError);
  });
}

/** Puts the test base image's manifest (no-auth registry) under `tag` of its repository; its reference. */
async function retaggedBase(tag: string): Promise<string> {
  const slash = base.indexOf('/');
  const colon = base.lastIndexOf(':');
  const manifests = `http://${base.slice(0, slash)}/v2/${base.slice(slash + 1, colon)}/manifests`;
  const accept = 'application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json';
  const got = await fetch(`${manifests}/${base.slice(colon + 1)}`, { headers: { accept } });
  expect(got.status).toBe(200);
  const put = await fetch(`${manifests}/${tag}`, { method: 'PUT', headers: { 'content-type': got.headers.get('content-type')! }, body: Buffer.from(await got.arrayBuffer()) });
  expect(put.status).toBe(201);
  return `${base.slice(0, colon)}:${tag}`;
}
