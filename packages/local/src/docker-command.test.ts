import { readFileSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CancelledError, EnvironmentError } from '@prebuilt/core';
import { describe, expect, it } from 'vitest';
import { runDockerCommand } from './docker-command.js';

describe('runDockerCommand', () => {
  it("stops a docker command and its children when the CLI's signal aborts (Ctrl-C no longer reaches its process group): a CancelledError", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'docker-command-'));
    const pidFile = join(dir, 'child');
    // A docker whose work runs in a child (as `docker` runs its plugins), never ending by itself.
    await writeFile(join(dir, 'docker'), `#!/bin/sh\nsleep 1000 & echo $! > ${pidFile}; wait\n`);
    await chmod(join(dir, 'docker'), 0o755);
    const abort = new AbortController();
    try {
      const running = runDockerCommand('docker', ['run', '-d', 'registry:2'], {
        env: { PATH: `${dir}:/usr/bin:/bin` },
        timeoutMs: 60_000,
        signal: abort.signal,
        missing: () => new EnvironmentError('no docker'),
      }).catch((e: unknown) => e);
      let child = 0;
      while (child === 0) child = Number((await readFile(pidFile, 'utf8').catch(() => '')).trim()) || (await new Promise((r) => setTimeout(r, 20)), 0);
      abort.abort(new Error('Ctrl-C'));
      const error = await running;
      expect(CancelledError.isInstance(error) && (error as CancelledError).code === 'cancelled', String(error)).toBe(true);
      expect((error as CancelledError).message).toBe("'docker run' was stopped.");
      const state = (): string => {
        try {
          return readFileSync(`/proc/${child}/stat`, 'utf8').replace(/^\d+ \(.*\) (\S).*$/s, '$1');
        } catch {
          return 'gone';
        }
      };
      for (let i = 0; i < 40 && !['gone', 'Z'].includes(state()); i++) await new Promise((r) => setTimeout(r, 50));
      expect(['gone', 'Z']).toContain(state());
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
