import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ESTARGZ_CHUNK, FOOTER_SIZE, TOC_DIGEST_ANNOTATION, TOC_NAME, UNCOMPRESSED_SIZE_ANNOTATION, estargzFooter } from './estargz.js';
import { tarLayer, writeLayer, type LayerEntry } from './layer.js';
import { layerSources, LONG_NAME } from './__fixtures__/layer-sources.js';

/** Runs a system tool with `input` on stdin, returning stdout. */
function tool(command: string, args: string[], input: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = execFile(command, args, { encoding: 'buffer', maxBuffer: 1 << 30 }, (error, stdout) => (error ? reject(error) : resolve(stdout)));
    child.stdin!.end(input);
  });
}

const sha = (bytes: Buffer): string => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

interface Toc {
  version: number;
  entries: { name: string; type: string; size?: number; linkName?: string; mode?: number; offset?: number; digest?: string; chunkOffset?: number; chunkSize?: number; chunkDigest?: string }[];
}

/** The first `length` bytes of the gzip member that starts at `offset` (gunzip reads on across members). */
function readAt(blob: Buffer, offset: number, length: number): Buffer {
  return gunzipSync(blob.subarray(offset)).subarray(0, length);
}

describe('eStargz layers', () => {
  let dir: string;
  let entries: LayerEntry[];
  let big: Buffer;
  const longName = LONG_NAME;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'prebuilt-oci-estargz-'));
    ({ entries, big } = await layerSources(dir));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('is valid gzip of the entries followed by stargz.index.json; diff_id and uncompressed size are those of that tar; deterministic', async () => {
    const layer = await writeLayer(entries, join(dir, 'l1'), { compression: 'estargz', mtime: 1_700_000_000 });
    const again = await writeLayer(entries, join(dir, 'l2'), { compression: 'estargz', mtime: 1_700_000_000 });
    const blob = await readFile(layer.file);
    expect((await readFile(again.file)).equals(blob)).toBe(true);
    expect(layer.digest).toBe(sha(blob));
    const tar = await tool('gzip', ['-d', '-c'], blob);
    expect(layer.diffId).toBe(sha(tar));
    expect(layer.tarSize).toBe(tar.length);
    expect(layer.tarDigest).toBe((await tarLayer(entries, { mtime: 1_700_000_000 })).diffId);
    expect(layer.annotations?.[UNCOMPRESSED_SIZE_ANNOTATION]).toBe(String(tar.length));
    const listing = (await tool('tar', ['-t'], tar)).toString().trim().split('\n');
    expect(listing).toEqual(['opt/', 'opt/env/', 'opt/env/big.bin', 'opt/env/empty', 'opt/env/lib/', `opt/env/lib/${'d'.repeat(90)}/`, longName, 'opt/env/link', 'opt/env/small.py', TOC_NAME]);
    // The system tar extracts the files as written.
    const out = join(dir, 'x');
    await mkdir(out);
    await tool('tar', ['-x', '-C', out], tar);
    expect((await readFile(join(out, 'opt/env/big.bin'))).equals(big)).toBe(true);
  });

  it('footer → TOC (its sha256 is the annotation) → each file and chunk readable at its offset, with its digests', async () => {
    const layer = await writeLayer(entries, join(dir, 'l3'), { compression: 'estargz', mtime: 1_700_000_000 });
    const blob = await readFile(layer.file);
    const footer = blob.subarray(blob.length - FOOTER_SIZE);
    const tocOffset = parseInt(footer.subarray(16, 32).toString('latin1'), 16);
    expect(footer.equals(estargzFooter(tocOffset))).toBe(true);
    expect(gunzipSync(footer)).toHaveLength(0);
    const tocTar = gunzipSync(blob.subarray(tocOffset, blob.length - FOOTER_SIZE));
    expect(tocTar.subarray(0, TOC_NAME.length).toString()).toBe(TOC_NAME);
    const size = parseInt(tocTar.subarray(124, 136).toString('latin1'), 8);
    const tocJson = tocTar.subarray(512, 512 + size);
    expect(layer.annotations?.[TOC_DIGEST_ANNOTATION]).toBe(sha(tocJson));
    const toc = JSON.parse(tocJson.toString()) as Toc;
    expect(toc.version).toBe(1);
    const byName = (name: string, type = 'reg') => toc.entries.find((e) => e.name.replace(/\/$/, '') === name && e.type === type)!;
    expect(byName('opt/env', 'dir').mode).toBe(0o40755);
    expect(byName('opt/env/link', 'symlink').linkName).toBe('small.py');
    expect(byName('opt/env/empty')).toMatchObject({ mode: 0o100644 });
    expect(byName('opt/env/empty').offset).toBeUndefined();
    expect(byName(longName)).toMatchObject({ size: 6 });

    const small = byName('opt/env/small.py');
    expect(readAt(blob, small.offset!, small.size!).toString()).toBe('print(1)\n');
    expect(small.digest).toBe(sha(Buffer.from('print(1)\n')));
    expect(small.chunkDigest).toBe(small.digest);

    const first = byName('opt/env/big.bin');
    const chunks = toc.entries.filter((e) => e.name === 'opt/env/big.bin' && e.type === 'chunk');
    expect(first).toMatchObject({ size: big.length, chunkSize: ESTARGZ_CHUNK, mode: 0o100755, digest: sha(big) });
    expect(chunks.map((c) => [c.chunkOffset, c.chunkSize])).toEqual([[ESTARGZ_CHUNK, ESTARGZ_CHUNK], [2 * ESTARGZ_CHUNK, undefined]]);
    for (const part of [first, ...chunks]) {
      const start = part.chunkOffset ?? 0;
      const length = part.chunkSize ?? big.length - start;
      const bytes = readAt(blob, part.offset!, length);
      expect(bytes.equals(big.subarray(start, start + length))).toBe(true);
      expect(part.chunkDigest).toBe(sha(bytes));
    }
    // Offsets increase; the last one is before the TOC.
    const offsets = toc.entries.filter((e) => e.offset !== undefined).map((e) => e.offset!);
    expect(offsets).toEqual([...offsets].sort((a, b) => a - b));
    expect(offsets.at(-1)!).toBeLessThan(tocOffset);
  });
});
