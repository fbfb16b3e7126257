import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { InstallError } from './errors.js';
import { PlaceholderReplacer, checkTextGrowth } from './prefix-replace.js';

const FILE = { label: 'pkg-1.0-h0.conda', path: 'lib/libx.so' };

/**
 * The replacement as prebuilt made it before it streamed (the whole file in one buffer): the
 * reference the streamed output must equal byte for byte.
 */
function referenceText(data: Buffer, placeholder: string, prefix: string): Buffer {
  const needle = Buffer.from(placeholder, 'utf8');
  const replacement = Buffer.from(prefix, 'utf8');
  const parts: Buffer[] = [];
  let from = 0;
  for (let at = data.indexOf(needle); at >= 0; at = data.indexOf(needle, from)) {
    parts.push(data.subarray(from, at), replacement);
    from = at + needle.length;
  }
  parts.push(data.subarray(from));
  return Buffer.concat(parts);
}

function referenceBinary(data: Buffer, placeholder: string, prefix: string): Buffer {
  const needle = Buffer.from(placeholder, 'utf8');
  const replacement = Buffer.from(prefix, 'utf8');
  const out = Buffer.from(data);
  let at = out.indexOf(needle);
  while (at >= 0) {
    let end = out.indexOf(0, at + needle.length);
    if (end < 0) end = out.length;
    const rest = Buffer.from(out.subarray(at + needle.length, end));
    let pos = at;
    pos += replacement.copy(out, pos);
    pos += referenceText(rest, placeholder, prefix).copy(out, pos);
    out.fill(0, pos, end);
    at = out.indexOf(needle, end);
  }
  return out;
}

/** The replacer's output with the file pushed in chunks of `size` bytes; the largest piece it held at once too. */
function streamed(data: Buffer, placeholder: string, prefix: string, mode: 'text' | 'binary', size: number): { out: Buffer; count: number } {
  const replacer = new PlaceholderReplacer(placeholder, prefix, mode, FILE);
  const pieces: Buffer[] = [];
  for (let at = 0; at < data.length; at += size) pieces.push(...replacer.push(data.subarray(at, at + size)));
  pieces.push(...replacer.end());
  return { out: Buffer.concat(pieces), count: replacer.count };
}

/** A file made of random pieces of `alphabet`, placeholders, parts of placeholders and NULs. */
function hostileFile(placeholder: string, pieces: number): Buffer {
  const parts: Buffer[] = [];
  const bytes = randomBytes(pieces * 2);
  for (let i = 0; i < pieces; i++) {
    const choice = bytes[i * 2]! % 6;
    const n = bytes[i * 2 + 1]! % 7;
    if (choice === 0) parts.push(Buffer.from(placeholder));
    else if (choice === 1) parts.push(Buffer.from(placeholder.slice(0, 1 + (n % placeholder.length))));
    else if (choice === 2) parts.push(Buffer.alloc(1 + (n % 2), 0));
    else if (choice === 3) parts.push(Buffer.from(placeholder.slice(-1 - (n % placeholder.length))));
    else parts.push(Buffer.from('ab/:'.repeat(1 + n).slice(0, 1 + n)));
  }
  return Buffer.concat(parts);
}

describe('PlaceholderReplacer (streamed prefix replacement)', () => {
  it('gives the same bytes as the whole-file replacement, text and binary, at every chunk size (placeholders across chunk boundaries)', () => {
    const cases: [string, string][] = [
      ['@PREFIX@', '/opt/prebuilt/env'], // the prefix longer: text only (binary refuses it)
      ['/opt/anaconda1anaconda2anaconda3', '/opt/prebuilt/env'],
      ['aa', 'b'], // a placeholder overlapping itself
      ['aba', 'x'],
    ];
    for (const [placeholder, prefix] of cases) {
      for (let round = 0; round < 20; round++) {
        const data = hostileFile(placeholder, 60);
        for (const size of [1, 2, 3, 5, placeholder.length - 1, placeholder.length, placeholder.length + 1, 64, data.length + 1].filter((n) => n > 0)) {
          expect(streamed(data, placeholder, prefix, 'text', size).out.equals(referenceText(data, placeholder, prefix))).toBe(true);
          if (Buffer.byteLength(prefix) <= Buffer.byteLength(placeholder)) {
            expect(streamed(data, placeholder, prefix, 'binary', size).out.equals(referenceBinary(data, placeholder, prefix))).toBe(true);
          }
        }
      }
    }
  });

  it('finds a placeholder split across two chunks, in text and in a binary string (padded with NULs to its old length)', () => {
    const placeholder = '/opt/anaconda1anaconda2anaconda3';
    const data = Buffer.concat([Buffer.from('x=/opt/anacon'), Buffer.from('da1anaconda2anaconda3/lib\0tail')]);
    const text = new PlaceholderReplacer(placeholder, '/p', 'text', FILE);
    const out = Buffer.concat([...text.push(data.subarray(0, 13)), ...text.push(data.subarray(13)), ...text.end()]);
    expect(out.toString('latin1')).toBe('x=/p/lib\0tail');
    expect(text.count).toBe(1);
    const binary = new PlaceholderReplacer(placeholder, '/p', 'binary', FILE);
    const padded = Buffer.concat([...binary.push(data.subarray(0, 13)), ...binary.push(data.subarray(13)), ...binary.end()]);
    expect(padded.length).toBe(data.length);
    expect(padded.toString('latin1')).toBe(`x=/p/lib${'\0'.repeat(placeholder.length - 2)}\0tail`);
  });

  it('holds at most the placeholder length - 1 between chunks, however long a binary string runs', () => {
    const placeholder = 'P'.repeat(255);
    const prefix = '/opt/prebuilt/env';
    const replacer = new PlaceholderReplacer(placeholder, prefix, 'binary', FILE);
    let pushed = 0;
    let out = 0;
    const chunk = Buffer.alloc(64 * 1024, 'z');
    chunk.write(placeholder, 100);
    // One string over all 64 chunks (no NUL until the end): what the replacements took out is owed
    // as NULs at its end — a count, not bytes held.
    for (let i = 1; i <= 64; i++) {
      const pieces = replacer.push(chunk);
      pushed += chunk.length;
      out += pieces.reduce((n, p) => n + p.length, 0);
      expect(pushed - out - i * (placeholder.length - prefix.length)).toBeLessThan(placeholder.length);
    }
    out += replacer.end().reduce((n, p) => n + p.length, 0);
    expect(out).toBe(pushed);
    expect(replacer.count).toBe(64);
  });

  it('binary: a prefix longer than the placeholder, or a placeholder with a NUL, is an InstallError naming the file', () => {
    const longer = new PlaceholderReplacer('/short', '/opt/prebuilt/env', 'binary', FILE);
    expect(longer.push(Buffer.from('no placeholder\0'))).toHaveLength(1);
    expect(() => longer.push(Buffer.from('/short\0'))).toThrow(/the env prefix '\/opt\/prebuilt\/env' \(17 bytes\) is longer than the 6-byte placeholder in the binary file 'lib\/libx\.so'/);
    expect(() => new PlaceholderReplacer('/a\0b', '/p', 'binary', FILE)).toThrow(InstallError);
  });

  it('text growth over 64 MiB is refused, naming the count and the growth', () => {
    expect(() => checkTextGrowth(1000, 'a', 'bb', FILE)).not.toThrow();
    expect(() => checkTextGrowth(2 * 1024 * 1024, 'a', '/opt/prebuilt/envs/0123456789abcdef', FILE)).toThrow(
      `pkg-1.0-h0.conda: replacing the 1-byte prefix placeholder 'a' in the text file 'lib/libx.so' (2097152 times) would make it ${2 * 1024 * 1024 * 34} bytes longer, more than the 67108864 prebuilt allows; refusing to install it.`,
    );
  });
});
