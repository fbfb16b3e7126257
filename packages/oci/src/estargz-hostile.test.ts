/**
 * Hostile base layers (a base image's layer comes from a registry): a tar whose header checksum
 * does not match, whose size is not octal, whose pax record lies about its length, whose extended
 * headers tar readers read two ways, or that is cut short, is refused with an error naming the layer and what is wrong — streamed (eStargz,
 * zstd:chunked) or reordered under a prefetch profile (read once from its file) — never converted into garbage.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PrebuiltError, RegistryClient, sealTarHeader } from '@prebuilt/core/backend';
import { convertLayerToEstargz } from './estargz-base.js';
import { tarFileHeader } from './estargz.js';
import { TarRecordIndex } from './tar-prefetch-order.js';
import { describeOrFailInCi, missingFor, services, uniqueRepo } from './__fixtures__/services.js';
import { createOciBuildService } from './oci-build-service.js';

const GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip';
const TAR = 'application/vnd.oci.image.layer.v1.tar';
const LABEL = 'the base layer sha256:0123 of example/base';

/** A file member: header, content, padding. */
function member(name: string, content: Buffer, edit: (header: Buffer) => void = () => undefined): Buffer {
  const header = tarFileHeader(name, content.length);
  edit(header);
  return Buffer.concat([sealTarHeader(header), content, Buffer.alloc((512 - (content.length % 512)) % 512)]);
}

/** A pax extended header (type `x`) whose body is `body` as given (its record lengths unchecked). */
function paxMember(body: string): Buffer {
  return member('PaxHeader/a.txt', Buffer.from(body, 'utf8'), (h) => h.write('x', 156, 'latin1'));
}

/** A pax global header (type `g`). */
const globalMember = (): Buffer => member('GlobalHead', Buffer.from('14 comment=hi\n'), (h) => h.write('g', 156, 'latin1'));

/** A GNU long name (`L`) or long link name (`K`) header. */
const longMember = (name: string, type: 'L' | 'K'): Buffer => member('././@LongLink', Buffer.from(`${name}\0`), (h) => h.write(type, 156, 'latin1'));

const END = Buffer.alloc(1024);

/** `bytes` written to `name` in `dir`: the file a base layer is converted from. */
async function blobFile(dir: string, name: string, bytes: Buffer): Promise<string> {
  await writeFile(join(dir, name), bytes);
  return join(dir, name);
}
const good = (): Buffer[] => [member('a.txt', Buffer.from('hello\n')), member('b.txt', Buffer.alloc(700, 0x62))];

/** The hostile tars: the reason each must be refused with. */
const CASES: { name: string; tar: () => Buffer; reason: RegExp }[] = [
  {
    name: 'a header whose checksum does not match',
    tar: () => {
      const [a, b] = good();
      b![0] = 0x63; // 'b.txt' → 'c.txt' after the checksum was set
      return Buffer.concat([a!, b!, END]);
    },
    reason: /a header checksum does not match at byte 1024/,
  },
  {
    name: 'a size that is not an octal number',
    tar: () => Buffer.concat([member('a.txt', Buffer.from('hello\n'), (h) => h.write('0000000009\0', 124, 'latin1')), END]),
    reason: /'0000000009' is not an octal number/,
  },
  {
    name: 'a pax record that lies about its length',
    tar: () => Buffer.concat([paxMember('40 path=evil/name\n'), ...good(), END]),
    reason: /a malformed pax record at byte 0 of a pax header/,
  },
  {
    name: 'a pax size that is not a number',
    tar: () => Buffer.concat([paxMember('12 size=12x\n'), ...good(), END]),
    reason: /a pax size '12x'/,
  },
  // Header sequences tar readers read two ways (Go's archive/tar, as a runtime unpacks the layer,
  // drops an entry's pending extended headers at a global header; a reader that keeps them would
  // put another name in the TOC): refused by every reader, whatever the order it is read in.
  {
    name: 'a pax header, then a global one, then a file',
    tar: () => Buffer.concat([paxMember('17 path=evil.txt\n'), globalMember(), ...good(), END]),
    reason: /a pax global header between a pax header and its entry/,
  },
  {
    name: 'a GNU long name, then a global header, then a file',
    tar: () => Buffer.concat([longMember('evil.txt', 'L'), globalMember(), ...good(), END]),
    reason: /a pax global header between a GNU long name and its entry/,
  },
  {
    name: 'a GNU long link name, then a global header, then a link',
    tar: () => Buffer.concat([...good(), longMember('evil.txt', 'K'), globalMember(), member('l', Buffer.alloc(0), (h) => h.write('2', 156, 'latin1')), END]),
    reason: /a pax global header between a GNU long link name and its entry/,
  },
  {
    name: 'two pax headers for one file',
    tar: () => Buffer.concat([paxMember('17 path=evil.txt\n'), paxMember('11 mtime=1\n'), ...good(), END]),
    reason: /two pax headers for one entry/,
  },
  {
    name: 'two GNU long names for one file',
    tar: () => Buffer.concat([longMember('evil.txt', 'L'), longMember('c.txt', 'L'), ...good(), END]),
    reason: /two GNU long names for one entry/,
  },
  {
    name: 'a GNU long name and a pax path for one file',
    tar: () => Buffer.concat([longMember('evil.txt', 'L'), paxMember('14 path=c.txt\n'), ...good(), END]),
    reason: /a pax path and a GNU long name for one entry/,
  },
  {
    name: 'a pax header before the end-of-archive blocks',
    tar: () => Buffer.concat([...good(), paxMember('17 path=evil.txt\n'), END]),
    reason: /a pax header with no entry after it/,
  },
  {
    // Go's archive/tar reads no data after a directory's header: the runtime would unpack the "data" as a file.
    name: 'a directory whose size covers a file',
    tar: () => Buffer.concat([member('d/', member('evil.txt', Buffer.from('x')), (h) => h.write('5', 156, 'latin1')), ...good(), END]),
    reason: /'d\/' is a directory of 1024 bytes \(tar readers differ on whether data follows it\)/,
  },
  {
    // Go's archive/tar (a runtime's unpack) expands a sparse file; the converters would write the packed data (and the 1.0 map) as its bytes.
    name: 'a pax GNU sparse file (1.0)',
    tar: () => Buffer.concat([paxMember('22 GNU.sparse.major=1\n'), member('GNUSparseFile.0/s.txt', Buffer.from('1\n0\n6\nhello\n')), ...good(), END]),
    reason: /'GNUSparseFile\.0\/s\.txt' is a pax GNU sparse file \(tar readers differ on its bytes: sparse entries are not supported\)/,
  },
  {
    // Its extension block (isextended set) lies between the header and the data: these readers took it for the data.
    name: 'an old GNU sparse file (type S) with an extension block',
    tar: () => {
      const extension = Buffer.alloc(512);
      extension.write('00000000000\0', 0, 'latin1');
      return Buffer.concat([member('s.txt', Buffer.concat([extension, Buffer.from('hello\n')]), (h) => { h.write('S', 156, 'latin1'); h[482] = 1; }), ...good(), END]);
    },
    reason: /'s\.txt' is a GNU sparse file/,
  },
  {
    // Go's archive/tar refuses a zero block followed by a header; the converters took the first zero block for the end and dropped the rest.
    name: 'a header after a lone zero block',
    tar: () => Buffer.concat([...good(), Buffer.alloc(512), member('hidden.txt', Buffer.from('x')), END]),
    reason: /a header at byte 3072 after a zero block \(tar readers differ on whether the archive ends there\)/,
  },
  {
    name: 'a block that is not a header after a lone zero block',
    tar: () => Buffer.concat([...good(), Buffer.alloc(512), Buffer.alloc(512, 7), END]),
    reason: /is not an octal number/,
  },
  {
    name: 'an archive cut inside a member',
    tar: () => Buffer.concat(good()).subarray(0, 512 * 3 + 100),
    reason: /'b\.txt' runs past the end of the archive/,
  },
  {
    name: 'an archive cut inside a header',
    tar: () => Buffer.concat(good()).subarray(0, 512 * 2 + 100),
    reason: /it ends inside a header block/,
  },
];

describe('a hostile base layer is refused, naming the layer', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'prebuilt-estargz-hostile-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('the well-formed layer these cases break converts (gzip and plain tar, with and without a profile)', async () => {
    const tar = Buffer.concat([...good(), END]);
    await convertLayerToEstargz(await blobFile(dir, 'ok1.tgz', gzipSync(tar)), GZIP, join(dir, 'ok1'), { label: LABEL });
    await convertLayerToEstargz(await blobFile(dir, 'ok2.tar', tar), TAR, join(dir, 'ok2'), { label: LABEL, format: 'zstd:chunked', prefetch: ['/b.txt'] });
  });

  it('converts a layer that ends at one zero block, has zero padding after its end, or anything after two zero blocks (Go reads no further)', async () => {
    const tars = [
      Buffer.concat([...good(), Buffer.alloc(512)]),
      Buffer.concat([...good(), Buffer.alloc(10 * 1024)]),
      Buffer.concat([...good(), END, member('after.txt', Buffer.from('x')), Buffer.alloc(300, 7)]),
    ];
    for (const [i, tar] of tars.entries()) {
      for (const { mediaType, options } of [
        { mediaType: GZIP, options: {} },
        { mediaType: TAR, options: { format: 'zstd:chunked' as const } },
        { mediaType: GZIP, options: { prefetch: ['/b.txt'] } },
      ]) {
        const blob = mediaType === GZIP ? gzipSync(tar) : tar;
        await convertLayerToEstargz(await blobFile(dir, `tail${i}`, blob), mediaType, join(dir, `tail${i}-out`), { ...options, label: LABEL });
      }
    }
  });

  it('a layer whose table of contents would be too big (names that long: a small gzip stream of them held gigabytes) is refused as it is read, whichever way it is converted', async () => {
    // 64 entries of 4 KiB pax paths: some 260 KiB of TOC, over a 128 KiB bound.
    const name = (i: number): string => `${String(i).padStart(4, '0')}${'n'.repeat(4096)}`;
    const record = (i: number): string => {
      const body = ` path=${name(i)}\n`;
      const length = String(body.length + 5).length + body.length;
      return `${length}${body}`;
    };
    const tar = Buffer.concat([...Array.from({ length: 64 }, (_, i) => [paxMember(record(i)), member(`short${i}`, Buffer.from('x'))]).flat(), END]);
    // The reorder's index counts the paths it holds (over the bound, the layer keeps its order, and is refused as such).
    const index = new TarRecordIndex(LABEL);
    index.write(tar);
    expect(index.heldBytes).toBeGreaterThan(64 * 4096);
    for (const { way, mediaType, options } of [
      { way: 'eStargz', mediaType: GZIP, options: {} },
      { way: 'zstd:chunked', mediaType: TAR, options: { format: 'zstd:chunked' as const } },
      { way: 'reordered', mediaType: GZIP, options: { prefetch: [`/${name(3)}`] } },
    ]) {
      const blob = mediaType === GZIP ? gzipSync(tar) : tar;
      const error = await convertLayerToEstargz(await blobFile(dir, 'big-toc', blob), mediaType, join(dir, 'big-toc-out'), { ...options, label: LABEL, maxTocBytes: 128 * 1024 }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(PrebuiltError.isInstance(error), `${way}: ${String(error)}`).toBe(true);
      expect((error as PrebuiltError).code, way).toBe('input');
      expect((error as Error).message, way).toMatch(new RegExp(`^${LABEL} would have a table of contents of over 128 KiB \\(\\d+ entries read: their names, link names and attributes\\)`));
      // The same layer converts under the default bound.
      await convertLayerToEstargz(await blobFile(dir, 'big-toc', blob), mediaType, join(dir, 'big-toc-ok'), { ...options, label: LABEL });
    }
  });

  const ways = [
    { way: 'streamed as eStargz (gzip layer)', mediaType: GZIP, options: {} },
    { way: 'streamed as zstd:chunked (plain tar layer)', mediaType: TAR, options: { format: 'zstd:chunked' as const } },
    { way: 'reordered under a prefetch profile', mediaType: GZIP, options: { prefetch: ['/b.txt'] } },
  ];
  for (const c of CASES) {
    for (const { way, mediaType, options } of ways) {
      it(`${c.name}: ${way}`, async () => {
        const tar = c.tar();
        const blob = mediaType === GZIP ? gzipSync(tar) : tar;
        const error = await convertLayerToEstargz(await blobFile(dir, 'in', blob), mediaType, join(dir, 'out'), { ...options, label: LABEL }).then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(PrebuiltError.isInstance(error), String(error)).toBe(true);
        expect((error as PrebuiltError).code).toBe('archive');
        expect((error as Error).message).toContain(`${LABEL} is corrupt or truncated: reading its tar failed (`);
        expect((error as Error).message).toMatch(c.reason);
      });
    }
  }
});

const sha = (bytes: Uint8Array): string => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
const missing = missingFor(['registries']);

describeOrFailInCi('oci build service: a base image with a corrupt layer', missing, () => {
  let work: string;
  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'prebuilt-estargz-hostile-svc-'));
    await writeFile(join(work, 'hello.txt'), 'hello\n');
  });
  afterAll(() => (work ? rm(work, { recursive: true, force: true }) : undefined));

  it('re-layering the base fails the build (a result, not a crash), naming the base layer, the image and what is wrong', async () => {
    const client = new RegistryClient({ dockerConfig: false });
    const base = `${services.registries!.plain.host}/${uniqueRepo('hostile-base')}`;
    const [a, b] = good();
    b![0] = 0x63;
    const layer = gzipSync(Buffer.concat([a!, b!, END]));
    const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [sha(gunzipSync(layer))] }, config: {} }));
    await client.uploadBlob(base, sha(layer), layer);
    await client.uploadBlob(base, sha(config), config);
    const manifest = { schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(config), size: config.length }, layers: [{ mediaType: GZIP, digest: sha(layer), size: layer.length }] };
    await client.putManifest(`${base}:v1`, Buffer.from(JSON.stringify(manifest)), manifest.mediaType);
    const service = createOciBuildService({ env: { METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION: 'estargz', METAFLOW_PREBUILT_OCI_ESTARGZ_BASE: '1' }, layerCacheDir: false });
    const imageTag = `${services.registries!.plain.host}/${uniqueRepo('hostile-env')}:a`;
    const result = await service.buildAndPush({ dockerfile: `FROM ${base}:v1\nCOPY hello.txt /opt/hello.txt\n`, contextDir: work, imageTag, platform: 'linux/amd64' });
    expect(result.ok).toBe(false);
    expect(!result.ok && result.reason).toBe(`the base layer ${sha(layer)} of ${base}:v1 is corrupt or truncated: reading its tar failed (a header checksum does not match at byte 1024).`);
    expect((await client.headManifest(imageTag)).exists).toBe(false);
  }, 120_000);
});
