import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultLayerCacheDir, LayerCache } from './layer-cache.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'prebuilt-oci-layer-cache-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

const diffId = `sha256:${'a'.repeat(64)}`;
const entry = { digest: `sha256:${'b'.repeat(64)}`, size: 1234 };

describe('LayerCache', () => {
  it('remembers a compressed layer by diff_id on disk, across instances', async () => {
    await new LayerCache(dir).set(diffId, entry);
    expect(await readFile(join(dir, 'a'.repeat(64)), 'utf8')).toBe(`${entry.digest} 1234\n`);
    expect(await new LayerCache(dir).get(diffId)).toEqual(entry);
    expect(await new LayerCache(dir).get(`sha256:${'c'.repeat(64)}`)).toBeUndefined();
  });

  it('eStargz: also remembers the layer diff_id (the tar with its TOC) and the annotations; a damaged annotations line is ignored', async () => {
    const tar = `sha256:${'e'.repeat(64)}`;
    const esgz = { ...entry, diffId: `sha256:${'f'.repeat(64)}`, annotations: { 'containerd.io/snapshot/stargz/toc.digest': `sha256:${'1'.repeat(64)}`, 'io.containers.estargz.uncompressed-size': '4096' } };
    await new LayerCache(dir).set(tar, esgz);
    expect(await new LayerCache(dir).get(tar)).toEqual(esgz);
    const broken = `sha256:${'9'.repeat(64)}`;
    await writeFile(join(dir, '9'.repeat(64)), `${entry.digest} 1234\n${esgz.diffId}\n{"a": 1}\n`);
    expect(await new LayerCache(dir).get(broken)).toBeUndefined();
  });

  it('reads a FIFO, symlink or directory planted at a record\'s name as no record (never followed, never waited on); the record is written anew', async () => {
    const planted = await mkdtemp(join(dir, 'planted-'));
    const outside = join(dir, 'outside-record');
    await writeFile(outside, `${entry.digest} 1234\n`);
    const cases: [string, (path: string) => Promise<void>][] = [
      ['1', async (path) => void execFileSync('mkfifo', [path])],
      ['2', (path) => symlink(outside, path)],
      ['3', (path) => mkdir(path).then(() => undefined)],
    ];
    for (const [digit, plant] of cases) {
      const id = `sha256:${digit.repeat(64)}`;
      await plant(join(planted, digit.repeat(64)));
      const got = await Promise.race([new LayerCache(planted).get(id), new Promise<'hung'>((resolve) => setTimeout(() => resolve('hung'), 3000).unref())]);
      expect(got, digit).toBeUndefined();
      if (digit === '3') continue;
      await new LayerCache(planted).set(id, entry);
      expect(await new LayerCache(planted).get(id), digit).toEqual(entry);
    }
    // The content records too.
    await mkdir(join(planted, 'content'));
    execFileSync('mkfifo', [join(planted, 'content', '4'.repeat(64))]);
    const byContent = await Promise.race([new LayerCache(planted).getByContent(`sha256:${'4'.repeat(64)}`), new Promise<'hung'>((resolve) => setTimeout(() => resolve('hung'), 3000).unref())]);
    expect(byContent).toBeUndefined();
  });

  it('ignores an unreadable entry, and keeps entries in memory without a directory', async () => {
    const other = `sha256:${'d'.repeat(64)}`;
    await writeFile(join(dir, 'd'.repeat(64)), 'garbage');
    expect(await new LayerCache(dir).get(other)).toBeUndefined();
    const memory = new LayerCache(undefined);
    await memory.set(diffId, entry);
    expect(await memory.get(diffId)).toEqual(entry);
  });

  it('mayHaveAny: false for a missing or empty directory and without a directory, true once it holds an entry', async () => {
    const fresh = join(dir, 'fresh');
    expect(await new LayerCache(join(dir, 'missing')).mayHaveAny()).toBe(false);
    expect(await new LayerCache(undefined).mayHaveAny()).toBe(false);
    await new LayerCache(fresh).set(diffId, entry);
    expect(await new LayerCache(fresh).mayHaveAny()).toBe(true);
    const memory = new LayerCache(undefined);
    await memory.set(diffId, entry);
    expect(await memory.mayHaveAny()).toBe(true);
  });

  it('remembers a layer by content key (digest, size, diff_id, no empty annotations); a record that does not parse is a miss', async () => {
    const contentKey = `sha256:${'d'.repeat(64)}`;
    const layer = { ...entry, diffId };
    expect(await new LayerCache(dir).getByContent(contentKey)).toBeUndefined();
    await new LayerCache(dir).setByContent(contentKey, layer);
    expect(await new LayerCache(dir).getByContent(contentKey)).toEqual(layer);
    // Not mistaken for a diff_id record.
    expect(await new LayerCache(dir).get(contentKey)).toBeUndefined();
    for (const damaged of ['', `${entry.digest} 1234\n`, `${entry.digest} x\n${diffId}\n{}\n`, `${entry.digest} 1234\n${diffId}\n[1]\n`]) {
      await writeFile(join(dir, 'content', 'd'.repeat(64)), damaged);
      expect(await new LayerCache(dir).getByContent(contentKey)).toBeUndefined();
    }
    expect(await new LayerCache(undefined).getByContent(contentKey)).toBeUndefined();
  });

  it('lives under the prebuilt cache directory', () => {
    expect(defaultLayerCacheDir({ METAFLOW_PREBUILT_CACHE_DIR: '/x/cache' })).toBe('/x/cache/oci-layers');
    expect(defaultLayerCacheDir({ XDG_CACHE_HOME: '/xdg' })).toBe('/xdg/prebuilt/oci-layers');
    expect(defaultLayerCacheDir({ XDG_CACHE_HOME: 'relative' })).toBe(join(homedir(), '.cache', 'prebuilt', 'oci-layers'));
  });
});
