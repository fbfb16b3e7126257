import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { TarFormatError } from '../errors.js';
import { TAR_BLOCK, TAR_FIELDS, decodeTarHeader, sealTarHeader, tarNumber, tarPadding, tarText } from './tar-header.js';

/** A ustar header of a file (fields as given), its checksum set. */
function header(fields: { name?: string; size?: string; prefix?: string; magic?: string; typeflag?: string; linkname?: string } = {}): Buffer {
  const h = Buffer.alloc(TAR_BLOCK);
  h.write(fields.name ?? 'a.txt', 0, 100, 'utf8');
  h.write('0000644\0', 100, 'latin1');
  h.write('0001750\0', 108, 'latin1');
  h.write(fields.size ?? '00000000012\0', 124, 'latin1');
  h.write(fields.typeflag ?? '0', 156, 'latin1');
  h.write(fields.linkname ?? '', 157, 'utf8');
  h.write(fields.magic ?? 'ustar\x0000', 257, 'latin1');
  h.write(fields.prefix ?? '', 345, 'utf8');
  return sealTarHeader(h);
}

const field = (text: string | number[], length = 12): Buffer => {
  const b = Buffer.alloc(length);
  if (typeof text === 'string') b.write(text, 'latin1');
  else b.set(text);
  return b;
};

describe('tarPadding', () => {
  it('pads a body to the next block, an empty or whole-block body not at all', () => {
    expect([0, 1, 511, 512, 513, 1024, 8 * 1024 ** 3 + 5].map(tarPadding)).toEqual([0, 511, 1, 0, 511, 0, 507]);
    for (const size of [0, 1, 100, 511, 512, 4097]) expect((size + tarPadding(size)) % TAR_BLOCK).toBe(0);
  });
});

describe('tar numbers', () => {
  it('reads octal up to the first NUL, blanks around it ignored; an empty field is 0', () => {
    expect(tarNumber(field('00000000012\0'), 0, 12, 't')).toBe(10);
    expect(tarNumber(field('  755 \0junk'), 0, 12, 't')).toBe(0o755);
    expect(tarNumber(field('\t17\n'), 0, 12, 't')).toBe(0o17);
    expect(tarNumber(field(''), 0, 12, 't')).toBe(0);
    expect(tarNumber(field('77777777777\0'), 0, 12, 't')).toBe(8 ** 11 - 1);
  });

  it('reads GNU base-256 (high bit of the first byte) and refuses a negative or unsafe one', () => {
    expect(tarNumber(field([0x80, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 1]), 0, 12, 't')).toBe(2 * 65536 + 1);
    expect(() => tarNumber(field([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe]), 0, 12, 't')).toThrow(/a negative base-256 number/);
    expect(() => tarNumber(field([0x80, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]), 0, 12, 't')).toThrow(/a base-256 number too large/);
  });

  it('refuses anything else, naming the archive and the text', () => {
    for (const text of ['0000000009\0', '12a\0', '-1\0', '1 2\0', '0x10\0']) {
      const error = (() => {
        try {
          tarNumber(field(text), 0, 12, 'pkg.conda');
        } catch (e) {
          return e;
        }
      })();
      expect(error, text).toBeInstanceOf(TarFormatError);
      expect((error as TarFormatError).archive).toBe('pkg.conda');
      expect((error as Error).message).toBe(`pkg.conda is corrupt or truncated: reading its tar failed ('${text.replace(/\0.*$/s, '').trim()}' is not an octal number).`);
    }
  });

  it('reads text fields up to their first NUL or their length', () => {
    expect(tarText(Buffer.from('abc\0def'), 0, 7)).toBe('abc');
    expect(tarText(Buffer.from('abcdef\0'), 0, 4)).toBe('abcd');
    expect(tarText(Buffer.from('\0bc'), 0, 3)).toBe('');
    expect(tarText(Buffer.from('xé\0', 'utf8'), 0, 4)).toBe('xé');
  });
});

describe('decodeTarHeader', () => {
  it('decodes name, mode, size, type and link name; a zero block is the end', () => {
    expect(decodeTarHeader(header({ typeflag: '2', linkname: 'target', size: '0\0' }), 't', 0)).toEqual({ name: 'a.txt', mode: 0o644, size: 0, typeflag: 0x32, linkname: 'target' });
    expect(decodeTarHeader(Buffer.alloc(TAR_BLOCK), 't', 0)).toBeUndefined();
    expect(tarNumber(header(), ...TAR_FIELDS.uid, 't')).toBe(1000);
  });

  it('joins a ustar prefix, not the bytes a GNU header keeps there', () => {
    expect(decodeTarHeader(header({ prefix: 'usr/lib' }), 't', 0)!.name).toBe('usr/lib/a.txt');
    expect(decodeTarHeader(header({ prefix: 'junk', magic: 'ustar  \0' }), 't', 0)!.name).toBe('a.txt');
  });

  it('accepts a signed checksum (old tars), refuses one that matches neither sum, and a header that is neither ustar nor GNU', () => {
    const high = header({ name: 'é.txt' });
    let signed = 0;
    for (let i = 0; i < TAR_BLOCK; i++) signed += i >= 148 && i < 156 ? 32 : high[i]! > 127 ? high[i]! - 256 : high[i]!;
    high.write(`${signed.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
    expect(decodeTarHeader(high, 't', 0)!.name).toBe('é.txt');
    const bad = header();
    bad[0] = 0x62;
    expect(() => decodeTarHeader(bad, 'pkg.conda', 1536)).toThrow('pkg.conda is corrupt or truncated: reading its tar failed (a header checksum does not match at byte 1536).');
    expect(() => decodeTarHeader(header({ magic: 'xstar\x0000' }), 't', 512)).toThrow(/a header is neither ustar nor GNU at byte 512/);
    expect(() => decodeTarHeader(header({ size: '0000000001x\0' }), 't', 0)).toThrow(/'0000000001x' is not an octal number/);
  });

  it('reads every header GNU tar writes in its gnu, ustar and pax formats as tar lists them', () => {
    const dir = mkdtempSync(join(tmpdir(), 'prebuilt-tar-header-'));
    try {
      writeFileSync(join(dir, 'file.txt'), 'x'.repeat(1000));
      for (const format of ['gnu', 'ustar', 'pax']) {
        const tar = execFileSync('tar', ['-c', `--format=${format}`, '-C', dir, 'file.txt']);
        const h = decodeTarHeader(tar.subarray(0, TAR_BLOCK), 't', 0)!;
        const at = format === 'pax' ? TAR_BLOCK + Math.ceil(h.size / TAR_BLOCK) * TAR_BLOCK : 0;
        expect(decodeTarHeader(tar.subarray(at, at + TAR_BLOCK), 't', at), format).toMatchObject({ name: 'file.txt', size: 1000, typeflag: 0x30 });
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
