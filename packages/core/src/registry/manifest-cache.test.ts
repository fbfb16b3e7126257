import { createHash } from 'node:crypto';
import { chown, lchown, mkdir, mkdtemp, readdir, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManifestCache, MAX_CACHED_MANIFEST_BYTES } from './manifest-cache.js';

const digestOf = (bytes: Uint8Array): string => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
const manifest = (n: number): Buffer => Buffer.from(JSON.stringify({ schemaVersion: 2, layers: [], config: { digest: `sha256:${String(n).padStart(64, '0')}` } }));
const hex = (digest: string): string => digest.slice('sha256:'.length);

describe('ManifestCache', () => {
  let root: string;
  let dir: string;
  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'manifest-cache-'));
    dir = join(root, 'manifests');
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('keeps bytes under their digest in a private directory it makes, and gives them back while they still hash to it', async () => {
    const cache = new ManifestCache(dir);
    const bytes = manifest(1);
    expect(await cache.read(digestOf(bytes))).toBeUndefined();
    await cache.write(digestOf(bytes), bytes);
    expect((await stat(dir)).mode & 0o777).toBe(0o700);
    expect(await readdir(dir)).toEqual([hex(digestOf(bytes))]);
    expect(Buffer.from((await cache.read(digestOf(bytes)))!)).toEqual(bytes);
    // Changed on disk: a miss, never other bytes under the digest.
    await writeFile(join(dir, hex(digestOf(bytes))), manifest(2));
    expect(await cache.read(digestOf(bytes))).toBeUndefined();
  });

  it('keeps nothing it cannot check or that is too big: bytes that do not hash to the digest, a digest other than sha256, a manifest over the bound', async () => {
    const cache = new ManifestCache(dir);
    await cache.write(digestOf(manifest(1)), manifest(2));
    await cache.write(`sha512:${'a'.repeat(128)}`, manifest(3));
    const big = Buffer.alloc(MAX_CACHED_MANIFEST_BYTES + 1, 0x20);
    await cache.write(digestOf(big), big);
    expect(await readdir(dir).catch(() => [])).toEqual([]);
    expect(await cache.read(`sha256:${'g'.repeat(64)}`)).toBeUndefined();
    expect(await cache.read('sha256:../../etc/passwd')).toBeUndefined();
  });

  it('a directory it cannot write in (a file is there): the write is skipped without an error', async () => {
    await writeFile(dir, 'not a directory');
    const cache = new ManifestCache(dir);
    await expect(cache.write(digestOf(manifest(1)), manifest(1))).resolves.toBeUndefined();
    expect(await cache.read(digestOf(manifest(1)))).toBeUndefined();
  });

  it('holds at most maxEntries: the least recently used (by mtime, which a read renews) go first', async () => {
    const cache = new ManifestCache(dir, { maxEntries: 3 });
    const entries = [1, 2, 3].map(manifest);
    for (const [i, bytes] of entries.entries()) {
      await cache.write(digestOf(bytes), bytes);
      const at = new Date(Date.now() - (10 - i) * 60_000);
      await utimes(join(dir, hex(digestOf(bytes))), at, at);
    }
    // The oldest is read now: the second is then the least recently used.
    expect(await cache.read(digestOf(entries[0]!))).toBeDefined();
    await cache.write(digestOf(manifest(4)), manifest(4));
    expect((await readdir(dir)).sort()).toEqual([entries[0]!, entries[2]!, manifest(4)].map((b) => hex(digestOf(b))).sort());
  });

  it('lists its directory at its first write, then only after listEveryWrites writes: entries another process wrote meanwhile go then, down to a tenth below the bound', async () => {
    const cache = new ManifestCache(dir, { maxEntries: 10, listEveryWrites: 3 });
    const ours = [1, 2, 3, 4].map(manifest);
    await cache.write(digestOf(ours[0]!), ours[0]!);
    // Another process fills the cache with older entries.
    const old = new Date(Date.now() - 3_600_000);
    for (let n = 100; n < 115; n++) {
      const path = join(dir, hex(digestOf(manifest(n))));
      await writeFile(path, manifest(n));
      await utimes(path, old, old);
    }
    await cache.write(digestOf(ours[1]!), ours[1]!);
    await cache.write(digestOf(ours[2]!), ours[2]!);
    // Not listed since the first write: nothing trimmed yet.
    expect((await readdir(dir)).length).toBe(18);
    await cache.write(digestOf(ours[3]!), ours[3]!);
    const left = await readdir(dir);
    expect(left.length).toBe(9);
    expect(left).toEqual(expect.arrayContaining(ours.map((b) => hex(digestOf(b)))));
  });

  it('removes temp files a killed write left once they are an hour old, and no other file', async () => {
    await mkdir(dir, { recursive: true });
    const stale = `.${'a'.repeat(64)}.123.0badc0de.tmp`;
    const fresh = `.${'b'.repeat(64)}.123.0badc0de.tmp`;
    for (const name of [stale, fresh, 'notes.txt']) await writeFile(join(dir, name), 'x');
    const old = new Date(Date.now() - 2 * 3_600_000);
    await utimes(join(dir, stale), old, old);
    await utimes(join(dir, 'notes.txt'), old, old);
    await new ManifestCache(dir).write(digestOf(manifest(1)), manifest(1));
    expect((await readdir(dir)).sort()).toEqual([fresh, 'notes.txt', hex(digestOf(manifest(1)))].sort());
  });

  it('never trims through a symlink planted for its directory', async () => {
    const victim = join(root, 'victim');
    await mkdir(victim);
    const kept = [1, 2].map(manifest);
    for (const bytes of kept) await writeFile(join(victim, hex(digestOf(bytes))), bytes);
    await symlink(victim, dir);
    await new ManifestCache(dir, { maxEntries: 1 }).write(digestOf(manifest(3)), manifest(3));
    expect((await readdir(victim)).length).toBe(3);
  });

  it("writes nothing through a symlink or into a directory another user put at its name (a shared cache); reads still check every byte", async () => {
    const elsewhere = join(root, 'elsewhere');
    await mkdir(elsewhere);
    await symlink(elsewhere, dir);
    const bytes = manifest(4);
    const root0 = process.getuid?.() === 0;
    // Only root can plant another user's link; otherwise this user's own link, which is written through.
    if (root0) await lchown(dir, 65534, 65534);
    await new ManifestCache(dir).write(digestOf(bytes), bytes);
    expect(await readdir(elsewhere)).toEqual(root0 ? [] : [hex(digestOf(bytes))]);
    await writeFile(join(elsewhere, hex(digestOf(bytes))), bytes);
    expect(Buffer.from((await new ManifestCache(dir).read(digestOf(bytes)))!)).toEqual(bytes);
    await rm(dir);
    await mkdir(dir);
    if (root0) await chown(dir, 65534, 65534);
    await new ManifestCache(dir).write(digestOf(manifest(5)), manifest(5));
    expect(await readdir(dir)).toEqual(root0 ? [] : [hex(digestOf(manifest(5)))]);
  });
});
