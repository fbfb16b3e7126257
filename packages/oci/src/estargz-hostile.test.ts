/**
 * Hostile base layers (a base image's layer comes from a registry): a tar whose header checksum
 * does not match, whose size is not octal, whose pax record lies about its length, or that is cut
 * short, is refused with an error naming the layer and what is wrong — streamed (eStargz,
 * zstd:chunked) or reordered in memory under a prefetch profile — never converted into garbage.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PrebuiltError } from '@prebuilt/core/backend';
import { convertLayerToEstargz } from './estargz-base.js';
import { tarFileHeader } from './estargz.js';

const GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip';
const TAR = 'application/vnd.oci.image.layer.v1.tar';
const LABEL = 'the base layer sha256:0123 of example/base';

/** Sets a header's checksum from its bytes (after an edit). */
function sealed(header: Buffer): Buffer {
  header.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of header) sum += byte;
  header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return header;
}

/** A file member: header, content, padding. */
function member(name: string, content: Buffer, edit: (header: Buffer) => void = () => undefined): Buffer {
  const header = tarFileHeader(name, content.length);
  edit(header);
  return Buffer.concat([sealed(header), content, Buffer.alloc((512 - (content.length % 512)) % 512)]);
}

/** A pax extended header (type `x`) whose body is `body` as given (its record lengths unchecked). */
function paxMember(body: string): Buffer {
  return member('PaxHeader/a.txt', Buffer.from(body, 'utf8'), (h) => h.write('x', 156, 'latin1'));
}

const END = Buffer.alloc(1024);
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
    await convertLayerToEstargz(gzipSync(tar), GZIP, join(dir, 'ok1'), { label: LABEL });
    await convertLayerToEstargz(tar, TAR, join(dir, 'ok2'), { label: LABEL, format: 'zstd:chunked', prefetch: ['/b.txt'] });
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
        const error = await convertLayerToEstargz(blob, mediaType, join(dir, 'out'), { ...options, label: LABEL }).then(
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
