import { createHash } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { extract } from 'tar-stream';
import { CancelledError } from '@prebuilt/core/backend';
import { listTree } from '@prebuilt/core/backend';
import { normalisedMode } from '@prebuilt/core';
import { buildLayer, completeEntries, deterministicGzip, type LayerEntry } from './layer.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'prebuilt-oci-layer-'));
  await mkdir(join(dir, 'bin'));
  await writeFile(join(dir, 'bin/tool'), '#!/bin/sh\necho hi\n');
  await chmod(join(dir, 'bin/tool'), 0o700);
  await writeFile(join(dir, 'data.txt'), 'data\n');
  await chmod(join(dir, 'data.txt'), 0o600);
  await symlink('tool', join(dir, 'bin/t'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

async function entriesOf(blob: Uint8Array): Promise<{ name: string; mode: number; uid: number; gid: number; mtime: number; type: string; linkname: string | null }[]> {
  const out: { name: string; mode: number; uid: number; gid: number; mtime: number; type: string; linkname: string | null }[] = [];
  const reader = extract();
  const done = (async () => {
    for await (const entry of reader) {
      const h = entry.header;
      out.push({ name: h.name, mode: h.mode ?? 0, uid: h.uid ?? -1, gid: h.gid ?? -1, mtime: h.mtime?.getTime() ?? -1, type: h.type ?? '', linkname: h.linkname ?? null });
      entry.resume();
    }
  })();
  reader.end(gunzipSync(blob));
  await done;
  return out;
}

async function treeEntries(dest: string): Promise<LayerEntry[]> {
  return (await listTree(dir, 'an image layer')).map((e) => ({ path: `${dest}/${e.rel}`, kind: e.kind, mode: e.mode, ...(e.kind === 'directory' ? {} : { source: join(dir, e.rel) }) }));
}

describe('deterministicGzip', () => {
  it('writes a fixed header (mtime 0) and round-trips', async () => {
    const data = Buffer.from('x'.repeat(3 << 20));
    const gz = await deterministicGzip(data);
    expect([...gz.subarray(0, 4)]).toEqual([0x1f, 0x8b, 8, 0]);
    expect(Buffer.from(gz).readUInt32LE(4)).toBe(0);
    expect(gunzipSync(gz).equals(data)).toBe(true);
    expect(Buffer.from(await deterministicGzip(data)).equals(Buffer.from(gz))).toBe(true);
    expect(gunzipSync(await deterministicGzip(new Uint8Array())).length).toBe(0);
  });

  it('stops with CancelledError on an aborted signal', async () => {
    const controller = new AbortController();
    controller.abort();
    await expect(deterministicGzip(Buffer.alloc(10), controller.signal)).rejects.toBeInstanceOf(CancelledError);
  });
});

describe('buildLayer', () => {
  it('tars entries sorted, with their parents, uid/gid 0, one mtime and normalised modes; diffId is the tar sha256', async () => {
    const layer = await buildLayer(await treeEntries('opt/env'), { mtime: 1_700_000_000 });
    const tar = gunzipSync(layer.blob);
    expect(layer.diffId).toBe(`sha256:${createHash('sha256').update(tar).digest('hex')}`);
    expect(layer.digest).toBe(`sha256:${createHash('sha256').update(layer.blob).digest('hex')}`);
    expect(layer.tarSize).toBe(tar.length);
    const entries = await entriesOf(layer.blob);
    expect(entries.map((e) => e.name)).toEqual(['opt/', 'opt/env/', 'opt/env/bin/', 'opt/env/bin/t', 'opt/env/bin/tool', 'opt/env/data.txt']);
    expect(entries.every((e) => e.uid === 0 && e.gid === 0 && e.mtime === 1_700_000_000_000)).toBe(true);
    const byName = Object.fromEntries(entries.map((e) => [e.name, e]));
    expect(byName['opt/env/bin/tool']).toMatchObject({ mode: 0o755, type: 'file' });
    expect(byName['opt/env/data.txt']).toMatchObject({ mode: 0o644 });
    expect(byName['opt/env/bin/t']).toMatchObject({ type: 'symlink', linkname: 'tool' });
    expect(byName['opt/']).toMatchObject({ mode: 0o755, type: 'directory' });
  });

  it('gives the same bytes for the same entries in any order', async () => {
    const entries = await treeEntries('opt/env');
    const a = await buildLayer(entries);
    const b = await buildLayer([...entries].reverse());
    expect(b.digest).toBe(a.digest);
    expect(Buffer.from(b.blob).equals(Buffer.from(a.blob))).toBe(true);
  });

  it('completeEntries adds parents once and sorts bytewise; normalisedMode normalises', () => {
    const done = completeEntries([{ path: 'a/b/c', kind: 'file', source: '/x' }, { path: 'a/B', kind: 'file', source: '/y' }]);
    expect(done.map((e) => e.path)).toEqual(['a', 'a/B', 'a/b', 'a/b/c']);
    expect(normalisedMode('file', 0o100700)).toBe(0o755);
    expect(normalisedMode('file', 0o100600)).toBe(0o644);
    expect(normalisedMode('directory', 0o700)).toBe(0o755);
  });
});

describe('layers and links that lead out of the tree', () => {
  it('a symlink to a host file or directory goes in as a symlink, never followed', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'prebuilt-layer-links-'));
    try {
      await mkdir(join(dir, 'lib'));
      await symlink('/etc/passwd', join(dir, 'passwd'));
      await symlink('/etc', join(dir, 'etc'));
      await symlink('../../..', join(dir, 'lib/up'));
      const entries: LayerEntry[] = (await listTree(dir, 'an image layer')).map((e) => ({ path: `opt/env/${e.rel}`, kind: e.kind, mode: e.mode, ...(e.kind === 'directory' ? {} : { source: join(dir, e.rel) }) }));
      const layer = await buildLayer(entries);
      const byName = Object.fromEntries((await entriesOf(layer.blob)).map((e) => [e.name, e]));
      expect(byName['opt/env/passwd']).toMatchObject({ type: 'symlink', linkname: '/etc/passwd' });
      expect(byName['opt/env/etc']).toMatchObject({ type: 'symlink', linkname: '/etc' });
      expect(byName['opt/env/lib/up']).toMatchObject({ type: 'symlink', linkname: '../../..' });
      expect(Object.keys(byName).filter((n) => n.startsWith('opt/env/etc/'))).toEqual([]);
      expect(Buffer.from(gunzipSync(layer.blob)).includes(await readFile('/etc/passwd'))).toBe(false);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
