import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConfigError, InputError } from './errors.js';
import { compareBytes, listTree, normalisedMode, sourceDateEpoch } from './file-tree.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'prebuilt-tree-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('file tree', () => {
  it('lists every entry sorted bytewise by its whole path (a, a-c, a/b), with its kind', async () => {
    await mkdir(join(dir, 'a'));
    await writeFile(join(dir, 'a', 'b'), 'x', { mode: 0o755 });
    await writeFile(join(dir, 'a-c'), 'y');
    await symlink('a/b', join(dir, 'Z'));
    const tree = await listTree(dir, 'an image layer');
    expect(tree.map((e) => [e.rel, e.kind])).toEqual([
      ['Z', 'symlink'],
      ['a', 'directory'],
      ['a-c', 'file'],
      ['a/b', 'file'],
    ]);
    expect(normalisedMode('file', tree[3]!.mode)).toBe(0o755);
    expect(normalisedMode('file', tree[2]!.mode)).toBe(0o644);
    expect(normalisedMode('directory', 0o700)).toBe(0o755);
    expect(normalisedMode('symlink', undefined)).toBe(0o777);
    expect(['é', 'z', 'Z'].sort(compareBytes)).toEqual(['Z', 'z', 'é']);
  });

  it('compares as Buffer.compare of the UTF-8 bytes does, without encoding below U+D800: prefixes, astral characters, U+E000–U+FFFF, lone surrogates', () => {
    const bytewise = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b));
    const alphabet = ['a', 'b', 'Z', '/', '.', '\0', 'é', '\u07ff', '\u0800', '\ud7ff', '\ue000', '\uffff', '😀', '\u{10ffff}', '\ud800', '\udc00'];
    let seed = 7;
    const random = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const word = () => Array.from({ length: random(5) }, () => alphabet[random(alphabet.length)]!).join('');
    const words = Array.from({ length: 400 }, word);
    for (const a of words) {
      for (const b of words.slice(0, 60)) expect([a, b, compareBytes(a, b)]).toEqual([a, b, bytewise(a, b)]);
      expect(compareBytes(a, `${a}a`)).toBe(-1);
    }
    // U+E000 sorts after U+1F600 in UTF-16 code units, before it in UTF-8 bytes.
    expect(['😀', '\ue000', 'lib/😀.py', 'lib/\ue000.py'].sort(compareBytes)).toEqual(['lib/\ue000.py', 'lib/😀.py', '\ue000', '😀']);
  });

  it('refuses a FIFO, saying where it cannot go', async () => {
    execFileSync('mkfifo', [join(dir, 'pipe')]);
    const error = await listTree(dir, 'an image context').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InputError);
    expect((error as InputError).message).toBe(`'${join(dir, 'pipe')}' is neither a file, a directory nor a symlink; it cannot go into an image context.`);
  });

  it('reads SOURCE_DATE_EPOCH: unset or empty is 0, a non-number is a ConfigError', () => {
    expect(sourceDateEpoch({})).toBe(0);
    expect(sourceDateEpoch({ SOURCE_DATE_EPOCH: '' })).toBe(0);
    expect(sourceDateEpoch({ SOURCE_DATE_EPOCH: '1700000000' })).toBe(1700000000);
    expect(() => sourceDateEpoch({ SOURCE_DATE_EPOCH: 'yesterday' })).toThrow(ConfigError);
  });
});
