import { mkdir, mkdtemp, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EnvironmentError, ExitCode, InputError, type ImageMap } from '@prebuilt/core';
import { readImageMap, stateFilePath, writeImageMap } from './state-file.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'prebuilt-state-file-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

const map: ImageMap = { flow: 'F', images: {}, steps: { start: { envId: 'e1', image: 'r/x:env-e1-amd64', pinnedImage: `r/x:env-e1-amd64@sha256:${'a'.repeat(64)}`, python: '/opt/prebuilt/env/bin/python' } } };
const hint = 'Run prebuilt build again.';

describe('the state file (a flow\'s image map)', () => {
  it('lives beside the flow unless METAFLOW_PREBUILT_STATE_FILE names it', () => {
    expect(stateFilePath('flows/f.py', 'F', {}, '/w')).toBe('/w/flows/.prebuilt/F/images.json');
    expect(stateFilePath('f.py', 'F', { METAFLOW_PREBUILT_STATE_FILE: ' s.json ' }, '/w')).toBe('/w/s.json');
  });

  it('reads back what writeImageMap wrote; a missing one is undefined', async () => {
    const path = join(dir, 'ok', 'images.json');
    await mkdir(join(dir, 'ok'));
    expect(await readImageMap(path, { shown: 'images.json', hint })).toBeUndefined();
    await writeImageMap(path, map);
    expect(await readImageMap(path, { shown: 'images.json', hint })).toEqual(map);
  });

  it('a directory it cannot be written in is exit 2 whose hint sets METAFLOW_PREBUILT_STATE_FILE to a file (the setting names a file, not a directory)', async () => {
    await writeFile(join(dir, 'in-the-way'), '');
    const error = await writeImageMap(join(dir, 'in-the-way', 'HelloFlow', 'images.json'), map).catch((e: unknown) => e);
    expect(EnvironmentError.isInstance(error)).toBe(true);
    expect((error as EnvironmentError).exitCode).toBe(ExitCode.usage);
    expect((error as EnvironmentError).message).toContain('a file is in the way (ENOTDIR)');
    expect((error as EnvironmentError).hint).toBe(
      "Set METAFLOW_PREBUILT_STATE_FILE to a file in a directory you can write (e.g. METAFLOW_PREBUILT_STATE_FILE=$HOME/images.json), or fix that directory's permissions.",
    );
  });

  it('a redeploy that changed nothing leaves the file as it is (no write); a changed map replaces it', async () => {
    const path = join(dir, 'same', 'images.json');
    await writeImageMap(path, map);
    const old = new Date('2020-01-01T00:00:00Z');
    await utimes(path, old, old);
    const before = await stat(path);
    await writeImageMap(path, { ...map });
    const after = await stat(path);
    expect([after.ino, after.mtimeMs]).toEqual([before.ino, old.getTime()]);
    const changed: ImageMap = { ...map, flow: 'G' };
    await writeImageMap(path, changed);
    expect((await stat(path)).ino).not.toBe(before.ino);
    expect(JSON.parse(await readFile(path, 'utf8'))).toEqual(changed);
  });

  it('a file that is not JSON, not an object or has no steps is an InputError (exit 2) naming it, with the hint', async () => {
    for (const [name, text, why] of [
      ['truncated', '{"flow": "F", "steps": ', 'it is not JSON'],
      // The parser's own message would quote the file's first characters (a symlink to a token file).
      ['token', 'ghp_S3CRETabcdefghijklmnopqrstuvwxyz012345', 'it is not JSON'],
      ['array', '[]', 'it is not a JSON object'],
      ['nosteps', '{"flow": "F", "images": {}}', 'it has no steps'],
    ] as const) {
      const path = join(dir, `${name}.json`);
      await writeFile(path, text);
      const error = await readImageMap(path, { shown: `${name}.json`, hint }).catch((e: unknown) => e);
      expect(error, name).toBeInstanceOf(InputError);
      expect((error as InputError).exitCode).toBe(ExitCode.usage);
      expect((error as InputError).message, name).toContain(`The image map ${name}.json is not valid: `);
      expect((error as InputError).message, name).toContain(why);
      expect((error as InputError).message, name).not.toContain('S3CRET');
      expect((error as InputError).file).toBe(path);
      expect((error as InputError).hint).toBe(hint);
    }
  });

  it('a file that cannot be read (a directory) is an InputError too, not a raw fs error', async () => {
    const path = join(dir, 'a-directory.json');
    await mkdir(path);
    const error = await readImageMap(path, { shown: 'a-directory.json', hint }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InputError);
    expect((error as InputError).message).toBe('Reading the image map a-directory.json failed: it is a directory, not a regular file.');
  });
});
