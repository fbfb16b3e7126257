import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConfigError } from './errors.js';
import { programNotFound, programPath } from './program-path.js';

let dir: string;
let marker: string;

/** A program that leaves a marker file when it runs: the proof that it ran. */
function plant(where: string, name: string): string {
  mkdirSync(where, { recursive: true });
  const file = join(where, name);
  writeFileSync(file, `#!/bin/sh\n: > '${marker}'\n`);
  chmodSync(file, 0o755);
  return file;
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'prebuilt-program-path-'));
  marker = join(dir, 'ran');
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('programPath', () => {
  it('runs a bare name found only through a relative PATH entry: Node itself would (why programPath exists)', () => {
    const here = relative(process.cwd(), join(dir, 'checkout'));
    plant(join(dir, 'checkout'), 'docker');
    spawnSync('docker', ['version'], { env: { PATH: `${here}:/nonexistent` } });
    expect(existsSync(marker)).toBe(true);
  });

  it('refuses a program found only through an empty or relative PATH entry, naming the entry, the setting and the fix', () => {
    const here = relative(process.cwd(), join(dir, 'checkout'));
    plant(join(dir, 'checkout'), 'docker');
    for (const path of [`${here}:/nonexistent`, `/nonexistent:${here}`, `/nonexistent::${here}`]) {
      const error = (() => {
        try {
          return programPath('docker', { env: { PATH: path }, setting: 'METAFLOW_PREBUILT_BUILDX_DOCKER', what: "the docker command 'docker'" });
        } catch (e) {
          return e;
        }
      })();
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).message).toBe(
        `the docker command 'docker' was found only in '${here}', a PATH entry relative to the current directory; prebuilt does not run programs from there (anyone who wrote the current directory could have put a 'docker' in it).`,
      );
      expect((error as ConfigError).hint).toContain('or set METAFLOW_PREBUILT_BUILDX_DOCKER to its absolute path');
      expect((error as ConfigError).setting).toBe('METAFLOW_PREBUILT_BUILDX_DOCKER');
    }
    expect(existsSync(marker)).toBe(false);
  });

  it("refuses one in the current directory through an empty entry ('', a trailing ':') or '.'", () => {
    // The current directory of the test process may hold anything; look for a name only it has.
    const name = `prebuilt-test-${process.pid}-${Date.now()}`;
    const file = plant(process.cwd(), name);
    try {
      for (const path of [`/nonexistent:`, `:/nonexistent`, `.:/nonexistent`]) {
        expect(() => programPath(name, { env: { PATH: path } })).toThrow(/was found only in '\.', a PATH entry relative to the current directory/);
      }
    } finally {
      rmSync(file, { force: true });
    }
  });

  it('takes the first absolute directory that has it, skipping relative entries before it', () => {
    const here = relative(process.cwd(), join(dir, 'checkout'));
    plant(join(dir, 'checkout'), 'tool');
    const installed = plant(join(dir, 'bin'), 'tool');
    expect(programPath('tool', { env: { PATH: `${here}:/nonexistent:${join(dir, 'bin')}` } })).toBe(installed);
  });

  it('skips a directory of that name and a file that is not executable', () => {
    mkdirSync(join(dir, 'a', 'tool'), { recursive: true });
    mkdirSync(join(dir, 'b'));
    writeFileSync(join(dir, 'b', 'tool'), 'not a program');
    const installed = plant(join(dir, 'c'), 'tool');
    expect(programPath('tool', { env: { PATH: [join(dir, 'a'), join(dir, 'b'), join(dir, 'c')].join(':') } })).toBe(installed);
  });

  it('gives a file it may not execute when no directory has one it may (running it fails with EACCES, as with execvp)', () => {
    mkdirSync(join(dir, 'a'));
    writeFileSync(join(dir, 'a', 'tool'), 'not executable', { mode: 0o644 });
    expect(programPath('tool', { env: { PATH: `${join(dir, 'a')}:${join(dir, 'b')}` } })).toBe(join(dir, 'a', 'tool'));
    const installed = plant(join(dir, 'b'), 'tool');
    expect(programPath('tool', { env: { PATH: `${join(dir, 'a')}:${join(dir, 'b')}` } })).toBe(installed);
  });

  it('uses a command that names a path as given (an explicitly configured absolute path)', () => {
    expect(programPath('/opt/docker/bin/docker', { env: { PATH: '' } })).toBe('/opt/docker/bin/docker');
    expect(programPath('./docker', { env: { PATH: '' } })).toBe('./docker');
  });

  it('is undefined for a program in no directory of PATH, and programNotFound is the ENOENT a spawn gives', () => {
    expect(programPath('prebuilt-no-such-program', { env: { PATH: join(dir, 'empty') } })).toBeUndefined();
    const error = programNotFound('docker');
    expect(error.code).toBe('ENOENT');
    expect(error.message).toBe('spawn docker ENOENT');
  });

  it('searches /usr/bin:/bin when the environment has no PATH', () => {
    expect(programPath('sh', { env: {} })).toMatch(/^\/(usr\/)?bin\/sh$/);
  });
});
