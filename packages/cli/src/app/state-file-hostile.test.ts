// The image map's files as an attacker (or a slip) would name them: a device, a FIFO, a huge file.
import { execFile } from 'node:child_process';
import { mkdtemp, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, InputError, type ImageMap } from '@prebuilt/core';
import { keepFromFlows, keepFromImageMaps } from './gc-keep-sources.js';
import { checkStateFileSetting, MAX_IMAGE_MAP_BYTES, readImageMap, writeImageMap } from './state-file.js';

const exec = promisify(execFile);
const hint = 'Run prebuilt build again.';
const map: ImageMap = { flow: 'F', images: {}, steps: { start: { envId: 'e1', image: 'r/x:env-e1-amd64', pinnedImage: `r/x:env-e1-amd64@sha256:${'a'.repeat(64)}`, python: '/opt/prebuilt/env/bin/python' } } };

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'prebuilt-state-file-hostile-'));
  await exec('mkfifo', [join(dir, 'fifo')]);
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('the image map: only a regular file of bounded size is read or replaced', () => {
  it.each([
    ['/dev/zero', 'a device'],
    ['/dev/null', 'a device'],
    ['fifo', 'a FIFO'],
  ])('METAFLOW_PREBUILT_STATE_FILE=%s is exit 2 before the build (the image map would be renamed over it)', async (file, kind) => {
    const error = await checkStateFileSetting({ METAFLOW_PREBUILT_STATE_FILE: file }, dir).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).message).toBe(`METAFLOW_PREBUILT_STATE_FILE='${file}' is ${kind}, not a regular file: the image map is one (\`prebuilt build\` writes it there, the other commands read it).`);
    expect((error as ConfigError).setting).toBe('METAFLOW_PREBUILT_STATE_FILE');
  });

  it('gc of a flow says the same before reading its state file (not "build again", which refuses it)', async () => {
    const scope = { cwd: dir, cliDir: dir, env: { METAFLOW_PREBUILT_STATE_FILE: '/dev/zero' }, signal: new AbortController().signal };
    const error = await keepFromFlows(['flow.py'], scope).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).message).toMatch(/^METAFLOW_PREBUILT_STATE_FILE='\/dev\/zero' is a device, not a regular file/);
  });

  it('a path below a file (maps/images.json with a file maps) is exit 2 before the build, naming the file', async () => {
    await writeFile(join(dir, 'maps'), 'x');
    for (const setting of ['maps/images.json', 'maps/prod/images.json', join(dir, 'maps', 'images.json')]) {
      const error = await checkStateFileSetting({ METAFLOW_PREBUILT_STATE_FILE: setting }, dir).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).message).toBe(`METAFLOW_PREBUILT_STATE_FILE='${setting}' cannot be written: maps is a file, not a directory.`);
      expect((error as ConfigError).hint).toContain('e.g. images.json');
      expect((error as ConfigError).setting).toBe('METAFLOW_PREBUILT_STATE_FILE');
    }
  });

  it('a regular file or a new path is fine', async () => {
    await writeFile(join(dir, 'old.json'), '{}');
    await expect(checkStateFileSetting({ METAFLOW_PREBUILT_STATE_FILE: 'old.json' }, dir)).resolves.toBeUndefined();
    await expect(checkStateFileSetting({ METAFLOW_PREBUILT_STATE_FILE: 'new/images.json' }, dir)).resolves.toBeUndefined();
  });

  it.each([
    ['/dev/zero', 'a device'],
    [null, 'a FIFO'],
  ])('reading %s (gc --keep-map, run) is an InputError at once, not a read that never ends or hangs', async (file, kind) => {
    const path = file ?? join(dir, 'fifo');
    const started = Date.now();
    const error = await readImageMap(path, { shown: 'the map', hint }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InputError);
    expect((error as InputError).message).toBe(`Reading the image map the map failed: it is ${kind}, not a regular file.`);
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('gc --keep-map of a FIFO (a pipe, <(…)): the hint says to save the map to a regular file first', async () => {
    const error = await keepFromImageMaps(['fifo'], { cwd: dir }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InputError);
    expect((error as InputError).message).toBe('Reading the image map fifo failed: it is a FIFO, not a regular file.');
    expect((error as InputError).hint).toContain('as a regular file: save printed output to one first (a pipe or <(…) is not read)');
  });

  it('a file over the bound is refused without being read', async () => {
    const huge = join(dir, 'huge.json');
    await writeFile(huge, '');
    await truncate(huge, MAX_IMAGE_MAP_BYTES + 1);
    const error = await readImageMap(huge, { shown: 'huge.json', hint }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InputError);
    expect((error as InputError).message).toBe(`Reading the image map huge.json failed: it is larger than 64 MiB (${MAX_IMAGE_MAP_BYTES + 1} bytes): not an image map prebuilt wrote.`);
    // Writing over it still works (the old content is not compared, just replaced).
    await writeImageMap(huge, map);
    expect((await stat(huge)).size).toBeLessThan(1000);
    expect(await readImageMap(huge, { shown: 'huge.json', hint })).toEqual(map);
  });
});
