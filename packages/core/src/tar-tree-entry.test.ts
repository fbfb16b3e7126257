import { chmod, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { extract, pack } from 'tar-stream';
import { addTarTreeEntry, SYNC_READ_MAX, writeTarEntry } from './tar-tree-entry.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'prebuilt-tar-entry-'));
  await writeFile(join(dir, 'tool'), '#!/bin/sh\n');
  await chmod(join(dir, 'tool'), 0o700);
  await symlink('tool', join(dir, 'link'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('addTarTreeEntry', () => {
  it('writes uid/gid 0, no user names, normalised modes and the one mtime; content from the source or given', async () => {
    const tar = pack();
    const mtime = new Date(1_700_000_000_000);
    const headers: { name: string; mode?: number; uid?: number; gid?: number; uname?: string; gname?: string; mtime?: Date; linkname?: string | null; body: string }[] = [];
    const reader = extract();
    const read = (async () => {
      for await (const entry of reader) {
        const chunks: Buffer[] = [];
        for await (const c of entry) chunks.push(c as Buffer);
        const h = entry.header;
        headers.push({ name: h.name, mode: h.mode, uid: h.uid, gid: h.gid, uname: h.uname, gname: h.gname, mtime: h.mtime, linkname: h.linkname ?? null, body: Buffer.concat(chunks).toString() });
      }
    })();
    tar.pipe(reader);
    await addTarTreeEntry(tar, { name: 'bin', kind: 'directory', mode: 0o700 }, mtime);
    await addTarTreeEntry(tar, { name: 'bin/tool', kind: 'file', mode: 0o700, source: join(dir, 'tool') }, mtime);
    await addTarTreeEntry(tar, { name: 'bin/t', kind: 'symlink', source: join(dir, 'link') }, mtime);
    await addTarTreeEntry(tar, { name: 'etc/x.txt', kind: 'file', mode: 0o600, content: 'given\n' }, mtime);
    tar.finalize();
    await read;
    expect(headers.map((h) => [h.name, h.mode, h.linkname, h.body])).toEqual([
      ['bin/', 0o755, null, ''],
      ['bin/tool', 0o755, null, '#!/bin/sh\n'],
      ['bin/t', 0o777, 'tool', ''],
      ['etc/x.txt', 0o644, null, 'given\n'],
    ]);
    for (const h of headers) {
      expect([h.uid, h.gid, h.uname, h.gname]).toEqual([0, 0, '', '']);
      expect(h.mtime?.getTime()).toBe(mtime.getTime());
    }
  });

  it('a size hint picks the read (small: one synchronous call, big or none: the thread pool), never the content: a stale hint still gives the file as it is', async () => {
    const big = Buffer.alloc(SYNC_READ_MAX + 1, 7);
    await writeFile(join(dir, 'big.bin'), big);
    await writeFile(join(dir, 'grown.txt'), 'grown since it was listed\n');
    const tar = pack();
    const bodies: [string, number, Buffer][] = [];
    const reader = extract();
    const read = (async () => {
      for await (const entry of reader) {
        const chunks: Buffer[] = [];
        for await (const c of entry) chunks.push(c as Buffer);
        bodies.push([entry.header.name, entry.header.size ?? -1, Buffer.concat(chunks)]);
      }
    })();
    tar.pipe(reader);
    const mtime = new Date(0);
    await addTarTreeEntry(tar, { name: 'big.bin', kind: 'file', source: join(dir, 'big.bin'), size: big.length }, mtime);
    await addTarTreeEntry(tar, { name: 'grown.txt', kind: 'file', source: join(dir, 'grown.txt'), size: 3 }, mtime);
    await addTarTreeEntry(tar, { name: 'tool', kind: 'file', source: join(dir, 'tool') }, mtime);
    tar.finalize();
    await read;
    expect(bodies.map(([name, size, body]) => [name, size, body.length])).toEqual([
      ['big.bin', big.length, big.length],
      ['grown.txt', 26, 26],
      ['tool', 10, 10],
    ]);
    expect(bodies[0]![2].equals(big)).toBe(true);
    expect(bodies[1]![2].toString()).toBe('grown since it was listed\n');
  });
});

describe('writeTarEntry when the pack is destroyed (an interrupted layer or archive)', () => {
  it('rejects the entries it has not finished, and leaves no unhandled error event behind', async () => {
    const uncaught: unknown[] = [];
    const onUncaught = (error: unknown): void => void uncaught.push(error);
    process.on('uncaughtException', onUncaught);
    try {
      const tar = pack(); // never read: the first entry waits on backpressure, the second behind it
      tar.on('error', () => {}); // the pack's own error goes to whoever reads it (a pipeline), as in a layer
      const first = writeTarEntry(tar, { name: 'big', type: 'file' }, Buffer.alloc(1 << 20));
      const second = writeTarEntry(tar, { name: 'next', type: 'file' }, Buffer.from('x'));
      const outcomes = Promise.allSettled([first, second]);
      tar.destroy(new Error('interrupted'));
      expect((await outcomes).map((outcome) => outcome.status)).toEqual(['rejected', 'rejected']);
      await new Promise((resolve) => setTimeout(resolve, 50)); // the sinks' 'error' events come on later ticks
      expect(uncaught).toEqual([]);
    } finally {
      process.off('uncaughtException', onUncaught);
    }
  });
});
