import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { convertLayerToEstargz } from './estargz-base.js';
import { readToc, landmarkOffset } from './__fixtures__/estargz-toc.js';
import { TarRecordIndex, prefetchPlan, prefetchTarOrder, tarRecords } from './tar-prefetch-order.js';

const exec = promisify(execFile);
const GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip';
const LONG = `usr/share/${'d'.repeat(90)}/${'f'.repeat(80)}.txt`;

function tarList(tar: Buffer, ...args: string[]): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const child = execFile('tar', ['-t', ...args], { encoding: 'utf8', maxBuffer: 1 << 24 }, (error, stdout) => (error ? reject(error) : resolve(stdout.trim().split('\n'))));
    child.stdin!.end(tar);
  });
}

describe('a base layer\'s tar in prefetch order', () => {
  let dir: string;
  let tar: Buffer;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'prebuilt-tar-prefetch-'));
    const root = join(dir, 'root');
    await mkdir(join(root, 'usr/lib/x'), { recursive: true });
    await mkdir(join(root, 'usr/share', 'd'.repeat(90)), { recursive: true });
    await mkdir(join(root, 'etc'));
    await writeFile(join(root, 'etc/a.conf'), 'a\n');
    await writeFile(join(root, 'usr/lib/x/libz.so.1'), Buffer.alloc(3000, 1));
    await writeFile(join(root, 'usr/lib/x/other'), 'other\n');
    await writeFile(join(root, LONG), 'long\n');
    await exec('ln', [join(root, 'usr/lib/x/libz.so.1'), join(root, 'usr/lib/x/libz-hard.so.1')]);
    await symlink('x/libz.so.1', join(root, 'usr/lib/libz.so'));
    await exec('tar', ['-cf', join(dir, 'layer.tar'), '--sort=name', '--owner=0', '--group=0', '-C', root, '.']);
    tar = await readFile(join(dir, 'layer.tar'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('reads every entry of a GNU tar (long names included) with its path cleaned and its bytes whole', () => {
    const records = tarRecords(tar);
    const paths = records.map((r) => r.path);
    expect(paths).toContain(LONG);
    expect(paths).toContain('usr/lib/x/libz.so.1');
    expect(records.reduce((n, r) => n + r.bytes.length, 0)).toBeLessThanOrEqual(tar.length);
    // The hard link (whichever name tar stored second) names its target.
    const hard = records.find((r) => r.type === '1')!;
    expect(paths).toContain(hard.linkPath);
    expect(records.find((r) => r.path === 'usr/lib/libz.so')).toMatchObject({ type: '2', linkPath: 'x/libz.so.1' });
  });

  it('reads the same records as a stream, however it is cut (1 byte, 511, 4096, 65521 at a time), and stops at the end-of-archive block; a cut-off stream fails as the whole tar does', () => {
    const whole = tarRecords(tar).map(({ bytes: _bytes, ...span }) => span);
    const streamed = (bytes: Buffer, size: number): TarRecordIndex => {
      const index = new TarRecordIndex('the layer');
      for (let at = 0; at < bytes.length; at += size) index.write(bytes.subarray(at, at + size));
      return index;
    };
    for (const size of [1, 511, 4096, 65521]) {
      const index = streamed(tar, size);
      expect(index.end(), `${size} bytes at a time`).toEqual(whole);
      expect(index.size).toBe(tar.length);
      expect(index.recordsEnd).toBe(whole.at(-1)!.end);
    }
    // Cut inside the 3000-byte file's body.
    const cut = tar.subarray(0, whole.find((r) => r.type === '0' && r.path.startsWith('usr/lib/x/libz'))!.start + 512 + 1000);
    expect(() => tarRecords(cut)).toThrow(/runs past the end of the archive/);
    for (const size of [1, 4096]) expect(() => streamed(cut, size).end()).toThrow(/runs past the end of the archive/);
  });

  it('puts the named entries first (parents first, a hard link after its target), then the landmark, then the rest in their order; the tar stays valid and extracts to the same files', async () => {
    const hard = tarRecords(tar).find((r) => r.type === '1')!;
    const ordered = Buffer.concat(prefetchTarOrder(tar, [`/${LONG}`, `/${hard.path}`, '/not/in/this/layer']));
    const names = (await tarList(ordered)).map((n) => n.replace(/^\.\//, '').replace(/\/$/, ''));
    const landmark = names.indexOf('.prefetch.landmark');
    expect(names.slice(0, landmark)).toEqual(['usr', 'usr/share', `usr/share/${'d'.repeat(90)}`, LONG, 'usr/lib', 'usr/lib/x', hard.linkPath, hard.path]);
    const before = (await tarList(tar)).map((n) => n.replace(/^\.\//, '').replace(/\/$/, ''));
    expect(names.slice(landmark + 1)).toEqual(before.filter((n) => !names.slice(0, landmark).includes(n)));
    const out = join(dir, 'out');
    await mkdir(out);
    await new Promise<void>((resolve, reject) => execFile('tar', ['-x', '-C', out], (e) => (e ? reject(e) : resolve())).stdin!.end(ordered));
    expect(await readFile(join(out, LONG), 'utf8')).toBe('long\n');
    expect((await exec('stat', ['-c', '%h', join(out, 'usr/lib/x/libz.so.1')])).stdout.trim()).toBe('2');
    expect((await readFile(join(out, '.prefetch.landmark')))[0]).toBe(0x0f);
    // Deterministic; none of the paths in the layer: the no-prefetch landmark.
    expect(Buffer.concat(prefetchTarOrder(tar, [`/${LONG}`, `/${hard.path}`])).equals(ordered)).toBe(true);
    expect(await tarList(Buffer.concat(prefetchTarOrder(tar, ['/elsewhere'])))).toContain('.no.prefetch.landmark');
  });

  it('a path the tar holds twice moves with both occurrences in order, so the last one still wins', async () => {
    await writeFile(join(dir, 'second.conf'), 'second\n');
    // The first tar's entries (without its end-of-archive blocks and padding), then a second etc/a.conf.
    const end = tarRecords(tar).reduce((n, r) => n + r.bytes.length, 0);
    const twice = Buffer.concat([tar.subarray(0, end), (await exec('tar', ['-cf', '-', '--transform', 's,second.conf,etc/a.conf,', '-C', dir, 'second.conf'], { encoding: 'buffer' })).stdout]);
    const ordered = Buffer.concat(prefetchTarOrder(twice, ['/etc/a.conf']));
    const names = (await tarList(ordered)).map((n) => n.replace(/^\.\//, '').replace(/\/$/, ''));
    expect(names.slice(0, names.indexOf('.prefetch.landmark'))).toEqual(['etc', 'etc/a.conf', 'etc/a.conf']);
    const out = join(dir, 'twice');
    await mkdir(out);
    await new Promise<void>((resolve, reject) => execFile('tar', ['-x', '-C', out], (e) => (e ? reject(e) : resolve())).stdin!.end(ordered));
    expect(await readFile(join(out, 'etc/a.conf'), 'utf8')).toBe('second\n');
  });

  it('an entry moved to the front keeps the whiteouts before it that come before it in the layer (its own, its parents\'): a runtime unpacking in order would delete it', async () => {
    // A layer that drops lower layers' etc/app and etc/x and makes them anew, whiteouts first (the OCI layer spec's order).
    const root = join(dir, 'whiteouts');
    await mkdir(join(root, 'etc/app'), { recursive: true });
    await writeFile(join(root, 'etc/.wh.app'), '');
    await writeFile(join(root, 'etc/.wh.x'), '');
    await writeFile(join(root, 'etc/app/conf'), 'conf\n');
    await writeFile(join(root, 'etc/x'), 'x\n');
    await writeFile(join(root, 'etc/y'), 'y\n');
    const list = ['etc', 'etc/.wh.app', 'etc/.wh.x', 'etc/y', 'etc/app', 'etc/app/conf', 'etc/x'];
    const layer = (await exec('tar', ['-cf', '-', '--no-recursion', '--owner=0', '--group=0', '-C', root, ...list], { encoding: 'buffer' })).stdout;
    const ordered = Buffer.concat(prefetchTarOrder(layer, ['/etc/app/conf', '/etc/x']));
    const names = (await tarList(ordered)).map((n) => n.replace(/\/$/, ''));
    expect(names.slice(0, names.indexOf('.prefetch.landmark'))).toEqual(['etc', 'etc/.wh.app', 'etc/app', 'etc/app/conf', 'etc/.wh.x', 'etc/x']);
    expect(names.slice(names.indexOf('.prefetch.landmark') + 1)).toEqual(['etc/y']);
  });

  it('a hard link at the end of a chain of 50 000 (each naming the one before) moves with the whole chain, in order, without running out of stack', () => {
    const records = [{ path: 'f0', type: '0', linkPath: '', start: 0, end: 1024 }];
    for (let i = 1; i < 50_000; i++) records.push({ path: `f${i}`, type: '1', linkPath: `f${i - 1}`, start: 512 + 512 * i, end: 1024 + 512 * i });
    records.push({ path: 'other', type: '0', linkPath: '', start: 512 + 512 * 50_000, end: 1536 + 512 * 50_000 });
    const pieces = prefetchPlan(records, ['/f49999']);
    // The chain is one run of the archive, then the landmark, then the rest, then the end-of-archive blocks.
    expect(pieces[0]).toEqual({ start: 0, end: 1024 + 512 * 49_999 });
    expect(Buffer.isBuffer(pieces[1])).toBe(true);
    expect(pieces[2]).toEqual({ start: 512 + 512 * 50_000, end: 1536 + 512 * 50_000 });
  });

  it('a converted base layer with a profile: the profile\'s files before the TOC\'s landmark, the rest after; reproducible; without a profile, no landmark', async () => {
    await exec('gzip', ['-kf', join(dir, 'layer.tar')]);
    const converted = await convertLayerToEstargz(join(dir, 'layer.tar.gz'), GZIP, join(dir, 'p.blob'), { prefetch: ['/etc/a.conf'] });
    const out = await readFile(join(dir, 'p.blob'));
    const { entries } = readToc(out);
    const landmark = landmarkOffset(entries)!;
    const conf = entries.find((e) => e.name.replace(/^\.\//, '') === 'etc/a.conf')!;
    const other = entries.find((e) => e.name.replace(/^\.\//, '') === 'usr/lib/x/other')!;
    expect(conf.offset!).toBeLessThan(landmark);
    expect(other.offset!).toBeGreaterThan(landmark);
    expect(gunzipSync(out).length).toBe(Number(converted.annotations['io.containers.estargz.uncompressed-size']));
    expect((await convertLayerToEstargz(join(dir, 'layer.tar.gz'), GZIP, join(dir, 'p2.blob'), { prefetch: ['/etc/a.conf'] })).digest).toBe(converted.digest);
    await convertLayerToEstargz(join(dir, 'layer.tar.gz'), GZIP, join(dir, 'plain.blob'));
    expect(landmarkOffset(readToc(await readFile(join(dir, 'plain.blob'))).entries)).toBeUndefined();
  });

  it('a base layer over the reordering limits (size unpacked, entries) keeps its own order (no landmark) instead of failing the build', async () => {
    await exec('gzip', ['-kf', join(dir, 'layer.tar')]);
    const small = tar.length - 1;
    const big = await convertLayerToEstargz(join(dir, 'layer.tar.gz'), GZIP, join(dir, 'big.blob'), { prefetch: ['/etc/a.conf'], maxReordered: small });
    const plain = await convertLayerToEstargz(join(dir, 'layer.tar.gz'), GZIP, join(dir, 'plain2.blob'));
    expect(landmarkOffset(readToc(await readFile(join(dir, 'big.blob'))).entries)).toBeUndefined();
    expect(big.digest).toBe(plain.digest);
    const tarBig = await convertLayerToEstargz(join(dir, 'layer.tar'), 'application/vnd.oci.image.layer.v1.tar', join(dir, 'big-tar.blob'), { prefetch: ['/etc/a.conf'], maxReordered: small });
    expect(landmarkOffset(readToc(await readFile(join(dir, 'big-tar.blob'))).entries)).toBeUndefined();
    expect(tarBig.digest).toBe(plain.digest);
    // Over the entry limit (the places of its entries are what reordering holds): its own order too.
    const many = await convertLayerToEstargz(join(dir, 'layer.tar.gz'), GZIP, join(dir, 'many.blob'), { prefetch: ['/etc/a.conf'], maxReorderedEntries: 2 });
    expect(landmarkOffset(readToc(await readFile(join(dir, 'many.blob'))).entries)).toBeUndefined();
    expect(many.digest).toBe(plain.digest);
  });
});
