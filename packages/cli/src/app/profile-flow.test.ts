/**
 * profileFlow's own wiring, the Docker run replaced by a FAKE (vi.mock of @prebuilt/docker): each
 * recording run has its own daemon connection, each of which says the credentials-in-clear note
 * once; the command says it once.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { InputError, type ImageMap } from '@prebuilt/core';
import type { IsolatedRunOptions } from '@prebuilt/docker';
import type { FlowFile } from '@prebuilt/metaflow';
import { profileFlow, type ProfileProgress } from './profile-flow.js';

const NOTE = 'registry credentials go to the Docker daemon at tcp://build-host:2375 unencrypted (FAKE)';

vi.mock('@prebuilt/docker', () => ({
  // A FAKE run: pulls (its note, as each new daemon connection says it), prints one path.
  runIsolatedContainer: async (options: IsolatedRunOptions) => {
    options.onPull?.(options.image);
    options.note?.(NOTE);
    return { exitCode: 0, stdout: '/opt/prebuilt/env/bin/python3\n', stderrTail: '', timedOut: false, stdoutOverflow: false, pulled: true, containerId: 'fake' };
  },
}));

describe('profileFlow', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'prebuilt-profile-flow-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('two runs (two envs), each pulling with credentials sent in clear: one note for the command', async () => {
    const entry = (envId: string) => ({ envId, pinnedImage: `registry.example.com/ns/${envId}@sha256:${'1'.repeat(64)}`, python: 'python3' });
    const imageMap = { flow: 'FakeFlow', steps: { start: entry('env-a'), end: entry('env-b') } } as unknown as ImageMap;
    const flow = { flow: 'FakeFlow', path: join(dir, 'flow.py') } as unknown as FlowFile;
    const events: ProfileProgress[] = [];
    const result = await profileFlow({
      cwd: dir, cliDir: dir, env: {}, signal: new AbortController().signal, flowFile: 'flow.py', flow, imageMap, steps: ['start', 'end'], code: 'pass', timeoutMs: 1000, maxPaths: 10,
      onProgress: (event) => {
        events.push(event);
      },
    });
    expect(events.filter((event) => event.type === 'pulling')).toHaveLength(2);
    expect(events.filter((event) => event.type === 'note')).toEqual([{ type: 'note', message: NOTE }]);
    expect(result.envs.map((env) => env.envId)).toEqual(['env-a', 'env-b']);
    expect(await readFile(result.file, 'utf8')).toContain('[env env-b]');
  });

  it('an image map (a cloned repository\'s) whose image holds a line break or an escape sequence is an InputError before anything runs: it would reach the terminal and the profile file\'s sections', async () => {
    const flow = { flow: 'FakeFlow', path: join(dir, 'flow.py') } as unknown as FlowFile;
    for (const [pinnedImage, python] of [[`r/x@sha256:${'1'.repeat(64)}\n[env injected]\n/etc/shadow`, 'python3'], [`r/x:e\x1b]52;c;cHdu\x07`, 'python3'], [`r/x@sha256:${'1'.repeat(64)}`, 'py\x1b[2J']] as const) {
      const imageMap = { flow: 'FakeFlow', steps: { start: { envId: 'env-a', pinnedImage, python } } } as unknown as ImageMap;
      const events: ProfileProgress[] = [];
      const error = await profileFlow({
        cwd: dir, cliDir: dir, env: {}, signal: new AbortController().signal, flowFile: 'flow.py', flow, imageMap, steps: ['start'], code: 'pass', timeoutMs: 1000, maxPaths: 10,
        onProgress: (event) => void events.push(event),
      }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(InputError);
      expect((error as InputError).message).toMatch(/^The image map of FakeFlow names (an image for step start that is not an image reference|no interpreter path for step start) \(/);
      expect((error as InputError).message).not.toMatch(/[\x1b\x07\n]/);
      expect(events).toEqual([]);
    }
  });
});
