import { describe, expect, it } from 'vitest';
import { TarFormatError } from '../errors.js';
import { MAX_EXTENDED_HEADER, TarExtendedHeaders, decodePaxRecords, isExtendedHeader, paxInteger, paxSeconds } from './tar-extended-headers.js';
import type { TarHeader } from './tar-header.js';

/** A pax record with its length right. */
function record(key: string, value: string): string {
  const rest = ` ${key}=${value}\n`;
  let length = Buffer.byteLength(rest) + 1;
  if (String(length).length + Buffer.byteLength(rest) !== length) length += 1;
  return `${length}${rest}`;
}

const entry = (): TarHeader => ({ name: 'short', mode: 0o644, size: 5, typeflag: 0x30, linkname: 'link' });
const X = 0x78;
const G = 0x67;

describe('pax records', () => {
  it('reads every record: UTF-8, values holding = and newlines', () => {
    const body = Buffer.from(record('path', 'dir/é.txt') + record('SCHILY.xattr.user.a', 'x=y\nz') + record('mtime', '1700000000.25'));
    expect([...decodePaxRecords(body, 't')]).toEqual([
      ['path', 'dir/é.txt'],
      ['SCHILY.xattr.user.a', 'x=y\nz'],
      ['mtime', '1700000000.25'],
    ]);
    expect(record('path', 'a')).toBe('9 path=a\n');
    expect(record('path', 'abcdefg')).toBe('16 path=abcdefg\n');
  });

  it('refuses a record whose length lies (too long, too short, past the end), has no length, or no key=value', () => {
    const good = record('path', 'abc');
    for (const body of ['40 path=evil\n', '10 path=abc\n', '13 path=abc\n', `${good}99`, 'path=abc\n', '1x path=abc\n', '9 pathabc\n', '6 =ab\n']) {
      expect(() => decodePaxRecords(Buffer.from(body), 'layer'), JSON.stringify(body)).toThrow(TarFormatError);
      expect(() => decodePaxRecords(Buffer.from(body), 'layer'), JSON.stringify(body)).toThrow(/layer is corrupt or truncated: reading its tar failed \(a malformed pax record at byte \d+ of a pax header/);
    }
  });

  it('checks numbers: integers (size, uid) and times (mtime, with a fraction or negative)', () => {
    expect(paxInteger('12345678901234', 'size', 't')).toBe(12345678901234);
    expect(() => paxInteger('12x', 'size', 't')).toThrow("a pax size '12x'");
    expect(() => paxInteger('-1', 'uid', 't')).toThrow("a pax uid '-1'");
    expect(() => paxInteger('99999999999999999999', 'size', 't')).toThrow(/a pax size/);
    expect(paxSeconds('1700000000.75', 'mtime', 't')).toBe(1700000000);
    expect(paxSeconds('-1.5', 'mtime', 't')).toBe(-2);
    expect(() => paxSeconds('soon', 'mtime', 't')).toThrow("a pax mtime 'soon'");
    expect(() => paxSeconds('1e3', 'mtime', 't')).toThrow(/a pax mtime/);
  });
});

describe('TarExtendedHeaders', () => {
  it('knows the extended header types', () => {
    expect([...'xgLK05'].map((c) => isExtendedHeader(c.charCodeAt(0)))).toEqual([true, true, true, true, false, false]);
  });

  it('applies GNU long names, pax path, link path and size to the next entry only', () => {
    const ext = new TarExtendedHeaders('t');
    ext.read(0x4c, Buffer.from('gnu/long/name\0'));
    ext.read(0x4b, Buffer.from('gnu/long/link\0'));
    const first = entry();
    expect(ext.apply(first)).toBeUndefined();
    expect(first).toMatchObject({ name: 'gnu/long/name', linkname: 'gnu/long/link', size: 5 });
    ext.read(X, Buffer.from(record('path', 'pax/path') + record('linkpath', 'pax/link') + record('size', '9000000000')));
    const second = entry();
    expect(ext.apply(second)?.get('path')).toBe('pax/path');
    expect(second).toMatchObject({ name: 'pax/path', linkname: 'pax/link', size: 9000000000 });
    // A GNU long name with a pax header that names no path: both apply.
    ext.read(0x4c, Buffer.from('gnu/long/name\0'));
    ext.read(X, Buffer.from(record('mtime', '7')));
    const third = entry();
    expect(ext.apply(third)?.get('mtime')).toBe('7');
    expect(third).toMatchObject({ name: 'gnu/long/name', linkname: 'link' });
    const fourth = entry();
    expect(ext.apply(fourth)).toBeUndefined();
    expect(fourth).toEqual(entry());
  });

  const L = 0x4c;
  const K = 0x4b;
  const pax = (key: string, value: string): [number, Buffer] => [X, Buffer.from(record(key, value))];
  const long = (type: number, name: string): [number, Buffer] => [type, Buffer.from(`${name}\0`)];
  const global = (): [number, Buffer] => [G, Buffer.from(record('comment', 'hi'))];
  /** Header sequences tar readers read two ways, and the reason each is refused with (as it is read, or as its entry takes it). */
  const AMBIGUOUS: [string, [number, Buffer][], string][] = [
    ['a pax header, then a global one', [pax('path', 'evil'), global()], 'a pax global header between a pax header and its entry (tar readers differ on whether the pax header still applies)'],
    ['an empty pax header, then a global one', [[X, Buffer.alloc(0)], global()], 'a pax global header between a pax header and its entry'],
    ['a GNU long name, then a global header', [long(L, 'evil'), global()], 'a pax global header between a GNU long name and its entry'],
    ['a GNU long link name, then a global header', [long(K, 'evil'), global()], 'a pax global header between a GNU long link name and its entry'],
    ['two pax headers', [pax('path', 'a'), pax('mtime', '1')], 'two pax headers for one entry (tar readers differ on which applies)'],
    ['two GNU long names', [long(L, 'a'), long(L, 'b')], 'two GNU long names for one entry'],
    ['two GNU long link names', [long(K, 'a'), long(K, 'b')], 'two GNU long link names for one entry'],
    ['a GNU long name and a pax path', [long(L, 'a'), pax('path', 'b')], 'a pax path and a GNU long name for one entry (tar readers differ on which names it)'],
    ['a pax path and a GNU long name', [pax('path', 'b'), long(L, 'a')], 'a pax path and a GNU long name for one entry'],
    ['a GNU long link name and a pax linkpath', [long(K, 'a'), pax('linkpath', 'b')], 'a pax linkpath and a GNU long link name for one entry (tar readers differ on which it links to)'],
  ];
  for (const [what, sequence, reason] of AMBIGUOUS) {
    it(`refuses ${what}, whether global headers are merged or not`, () => {
      for (const mergeGlobal of [true, false]) {
        const ext = new TarExtendedHeaders('the layer', { mergeGlobal });
        expect(() => {
          for (const [type, body] of sequence) ext.read(type, body);
          ext.apply(entry());
        }).toThrow(`the layer is corrupt or truncated: reading its tar failed (${reason}`);
      }
    });
  }

  it('refuses an entry that holds no data (link, device, directory, FIFO, an old-style directory) with a size, its own or a pax one', () => {
    const sized = (typeflag: number, name = 'n', size = 512): TarHeader => ({ name, mode: 0o755, size, typeflag, linkname: '' });
    for (const [flag, kind] of [['1', 'hard link'], ['2', 'symbolic link'], ['3', 'character device'], ['4', 'block device'], ['5', 'directory'], ['6', 'FIFO']] as const) {
      expect(() => new TarExtendedHeaders('t').apply(sized(flag.charCodeAt(0))), flag).toThrow(`reading its tar failed ('n' is a ${kind} of 512 bytes (tar readers differ on whether data follows it))`);
      expect(() => new TarExtendedHeaders('t').apply(sized(flag.charCodeAt(0), 'n', 0)), flag).not.toThrow();
    }
    expect(() => new TarExtendedHeaders('t').apply(sized(0, 'd/'))).toThrow("'d/' is a directory of 512 bytes");
    expect(() => new TarExtendedHeaders('t').apply(sized(0, 'f'))).not.toThrow();
    expect(() => new TarExtendedHeaders('t').apply(sized(0x30, 'f'))).not.toThrow();
    const ext = new TarExtendedHeaders('t');
    ext.read(X, Buffer.from(record('size', '7')));
    expect(() => ext.apply(sized(0x35, 'd', 0))).toThrow("'d' is a directory of 7 bytes");
  });

  it('refuses a GNU sparse file: an old GNU one (type S), a pax one (GNU.sparse.* records, 0.0, 0.1 and 1.0), or one under a merged global header', () => {
    const file = (typeflag = 0x30): TarHeader => ({ name: 'f', mode: 0o644, size: 512, typeflag, linkname: '' });
    expect(() => new TarExtendedHeaders('t').apply(file(0x53))).toThrow("reading its tar failed ('f' is a GNU sparse file (tar readers differ on its bytes: sparse entries are not supported))");
    const formats = [
      record('GNU.sparse.size', '4096') + record('GNU.sparse.numblocks', '1') + record('GNU.sparse.offset', '0') + record('GNU.sparse.numbytes', '512'),
      record('GNU.sparse.size', '4096') + record('GNU.sparse.numblocks', '1') + record('GNU.sparse.map', '0,512'),
      record('GNU.sparse.major', '1') + record('GNU.sparse.minor', '0') + record('GNU.sparse.name', 'f') + record('GNU.sparse.realsize', '4096'),
    ];
    for (const body of formats) {
      const ext = new TarExtendedHeaders('t');
      ext.read(X, Buffer.from(body));
      expect(() => ext.apply(file()), body).toThrow("'f' is a pax GNU sparse file");
    }
    const merged = new TarExtendedHeaders('t', { mergeGlobal: true });
    merged.read(G, Buffer.from(record('GNU.sparse.major', '1')));
    merged.read(X, Buffer.from(record('mtime', '1')));
    expect(() => merged.apply(file())).toThrow('a pax GNU sparse file');
    const other = new TarExtendedHeaders('t');
    other.read(X, Buffer.from(record('GNU.sparsely', '1') + record('SCHILY.xattr.GNU.sparse.x', '1')));
    expect(() => other.apply(file())).not.toThrow();
    expect(() => new TarExtendedHeaders('t').apply(file(0x30))).not.toThrow();
  });

  it('refuses extended headers no entry follows; a global header, or none pending, passes', () => {
    for (const [type, body] of [pax('path', 'a'), long(L, 'a'), long(K, 'a')]) {
      const ext = new TarExtendedHeaders('t');
      ext.read(type, body);
      expect(() => ext.checkNonePending()).toThrow(/reading its tar failed \(a (pax header|GNU long name|GNU long link name) with no entry after it\)/);
    }
    const ext = new TarExtendedHeaders('t');
    ext.read(...global());
    ext.read(...global());
    expect(() => ext.checkNonePending()).not.toThrow();
    ext.read(...pax('path', 'a'));
    ext.apply(entry());
    expect(() => ext.checkNonePending()).not.toThrow();
  });

  it('a bad pax size fails as the entry takes it', () => {
    const ext = new TarExtendedHeaders('layer');
    ext.read(X, Buffer.from(record('size', 'NaN')));
    expect(() => ext.apply(entry())).toThrow("layer is corrupt or truncated: reading its tar failed (a pax size 'NaN').");
  });

  it('global records: defaults of the later pax headers when merged (tar-stream), checked and left out otherwise (Go)', () => {
    for (const mergeGlobal of [true, false]) {
      const ext = new TarExtendedHeaders('t', { mergeGlobal });
      ext.read(G, Buffer.from(record('uname', 'root') + record('path', 'global')));
      ext.read(X, Buffer.from(record('uid', '7')));
      const pax = ext.apply(entry());
      expect(pax?.get('uname')).toBe(mergeGlobal ? 'root' : undefined);
      expect(pax?.get('uid')).toBe('7');
    }
    expect(() => new TarExtendedHeaders('t').read(G, Buffer.from('99 x=y\n'))).toThrow(/a malformed pax record/);
  });

  it('refuses an extended header over 1 MiB before its body is read', () => {
    const ext = new TarExtendedHeaders('t');
    expect(() => ext.checkSize(MAX_EXTENDED_HEADER)).not.toThrow();
    expect(() => ext.checkSize(MAX_EXTENDED_HEADER + 1)).toThrow(`a ${MAX_EXTENDED_HEADER + 1}-byte extended header`);
  });
});
