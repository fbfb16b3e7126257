/**
 * The prefix jail, mechanism by mechanism, with every order of the entries: whatever the order,
 * nothing outside the staging prefix is written, replaced or read, and every refusal is a typed
 * error naming the package and the member. The staging prefix sits two levels below the canaries
 * (`<tmp>/context/prefix`), where the climbing links aim.
 */
import { execFileSync } from 'node:child_process';
import { lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ArchiveError, InstallError } from './errors.js';
import { PrefixWriter } from './prefix-writer.js';

type Op =
  | { op: 'symlink'; path: string; target: string }
  | { op: 'write'; path: string; content: string }
  | { op: 'mkdir'; path: string }
  | { op: 'read'; path: string }
  /** A hard link to a file outside the prefix (as the extraction cache's files are linked in). */
  | { op: 'link'; path: string };

const LABEL = 'evil-1.0-h0.tar.bz2';

function permutations<T>(items: readonly T[]): T[][] {
  if (items.length <= 1) return [[...items]];
  return items.flatMap((item, i) => permutations([...items.slice(0, i), ...items.slice(i + 1)]).map((rest) => [item, ...rest]));
}

let root: string;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'prebuilt-jail-'));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

async function snapshot(dir: string, skip: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (rel: string): Promise<void> => {
    for (const name of await readdir(join(dir, rel))) {
      const path = rel === '' ? name : `${rel}/${name}`;
      if (path === skip) continue;
      const info = await lstat(join(dir, path));
      if (info.isDirectory()) {
        out.set(path, 'dir');
        await walk(path);
      } else out.set(path, info.isFile() ? await readFile(join(dir, path), 'utf8') : `-> ${await readlink(join(dir, path))}`);
    }
  };
  await walk('');
  return out;
}

/** The text of a file opened through the jail (as a hardlink's copy reads it). */
async function readOpened(writer: PrefixWriter, path: string, label: string): Promise<string> {
  const handle = await writer.openFile(path, label);
  try {
    return await handle.readFile('utf8');
  } finally {
    await handle.close();
  }
}

/** Runs `ops` in order against a fresh prefix; returns the errors and what reads returned. */
async function run(ops: readonly Op[], n: number): Promise<{ errors: Error[]; reads: string[] }> {
  const base = join(root, `run-${n}`);
  await mkdir(join(base, 'canary-dir'), { recursive: true });
  await writeFile(join(base, 'canary-dir', 'canary.txt'), 'canary\n');
  await writeFile(join(base, 'canary-dir', 'secret.txt'), 'host secret\n');
  await mkdir(join(base, 'context'));
  await writeFile(join(base, 'context', 'beside.txt'), 'beside\n');
  await writeFile(join(base, 'cache-file'), 'cached\n');
  const before = await snapshot(base, 'context/prefix');
  const writer = await PrefixWriter.open(join(base, 'context', 'prefix'));
  const errors: Error[] = [];
  const reads: string[] = [];
  for (const op of ops) {
    try {
      if (op.op === 'symlink') await writer.symlink(op.path, op.target, LABEL);
      else if (op.op === 'write') await writer.writeFile(op.path, op.content, 0o644, LABEL);
      else if (op.op === 'mkdir') await writer.mkdir(op.path, LABEL);
      else if (op.op === 'link') await writer.linkIn(op.path, join(base, 'cache-file'), LABEL);
      else reads.push(await readOpened(writer, op.path, LABEL));
    } catch (error) {
      errors.push(error as Error);
    }
  }
  try {
    await writer.verifyLinks();
  } catch (error) {
    errors.push(error as Error);
  }
  for (const error of errors) {
    expect(error instanceof ArchiveError || error instanceof InstallError, String(error)).toBe(true);
    expect(error.message).toContain(LABEL);
  }
  // Nothing outside the prefix changed, whatever happened inside.
  expect(await snapshot(base, 'context/prefix')).toEqual(before);
  return { errors, reads };
}

async function everyOrder(ops: readonly Op[], check: (result: { errors: Error[]; reads: string[] }, order: Op[]) => void): Promise<number> {
  let n = 0;
  for (const order of permutations(ops)) check(await run(order, n++), order);
  return n;
}

/** `a/up -> .` and `a/b/up -> .`, so `a/up/b/up/../../../..` is lexically the root and really two levels above it. */
const LIFTS: Op[] = [
  { op: 'symlink', path: 'a/up', target: '.' },
  { op: 'symlink', path: 'a/b/up', target: '.' },
];
const CLIMB = 'a/up/b/up/../../../..';

describe('PrefixWriter: the prefix is a jail, in every order of entries', () => {
  it('a chain of in-prefix links that climbs out, written through (120 orders)', async () => {
    const ops: Op[] = [...LIFTS, { op: 'symlink', path: 'esc', target: CLIMB }, { op: 'write', path: 'esc/canary-dir/canary.txt', content: 'pwned\n' }, { op: 'mkdir', path: 'esc/canary-dir/newdir' }];
    const orders = await everyOrder(ops, ({ errors }, order) => {
      // With all links in place before the write, the escape is refused naming the member.
      const escIndex = order.findIndex((o) => o.op === 'symlink' && o.path === 'esc');
      const liftsFirst = order.slice(0, escIndex).filter((o) => o.op === 'symlink' && o.path !== 'esc').length === 2;
      const writesFirst = order.slice(0, escIndex).some((o) => o.op !== 'symlink');
      if (liftsFirst && !writesFirst) expect(errors.map((e) => e.message).join('\n')).toMatch(/'esc' leads outside the env prefix/);
    });
    expect(orders).toBe(120);
  });

  it('a link replaced by one that climbs out after it was written through (720 orders)', async () => {
    const ops: Op[] = [
      ...LIFTS,
      { op: 'symlink', path: 's', target: 'inside' },
      { op: 'write', path: 's/first.txt', content: 'x\n' },
      { op: 'symlink', path: 's', target: CLIMB },
      { op: 'write', path: 's/canary-dir/canary.txt', content: 'pwned\n' },
    ];
    await everyOrder(ops, ({ errors }, order) => {
      // Once the climbing link replaced the first, the write through it is refused naming the link.
      const climbAt = order.findIndex((o) => o.op === 'symlink' && o.target === CLIMB);
      const writeAt = order.findIndex((o) => o.op === 'write' && o.path.startsWith('s/canary-dir'));
      const firstLinkAt = order.findIndex((o) => o.op === 'symlink' && o.target === 'inside');
      const firstWriteAt = order.findIndex((o) => o.op === 'write' && o.path === 's/first.txt');
      if (firstLinkAt < climbAt && firstWriteAt < climbAt && firstLinkAt < firstWriteAt && climbAt < writeAt) {
        expect(errors.map((e) => e.message).join('\n')).toMatch(/'s(\/canary-dir\/canary\.txt)?' leads outside the env prefix|pointing outside|a directory is never replaced/);
      }
    });
  });

  it('files linked in under a directory the jail already resolved stay inside: that directory is never replaced by a link that climbs out (120 orders)', async () => {
    // `u1 -> .` and `u2 -> .`: `d -> u1/u2/../..` is lexically the root and really two levels above it.
    const ops: Op[] = [
      { op: 'symlink', path: 'u1', target: '.' },
      { op: 'symlink', path: 'u2', target: '.' },
      { op: 'link', path: 'd/f1' },
      { op: 'symlink', path: 'd', target: 'u1/u2/../..' },
      { op: 'link', path: 'd/canary-dir/canary.txt' },
    ];
    await everyOrder(ops, ({ errors }, order) => {
      const text = errors.map((e) => e.message).join('\n');
      const dirFirst = order.findIndex((o) => o.op === 'link') < order.findIndex((o) => o.op === 'symlink' && o.path === 'd');
      // Once the jail made `d` a directory (and resolves it without a walk), a link there is refused.
      if (dirFirst) expect(text).toMatch(/installs 'd', but the prefix already has a directory there/);
      // Else a write through `d` climbing out is refused (when made or at the end), or `d` led to
      // directories the jail made in place of `u1`/`u2`; the snapshot shows nothing outside changed.
      if (!dirFirst) expect(text).toMatch(/'d(\/canary-dir\/canary\.txt|\/f1)?' leads outside the env prefix|installs 'u[12]', but the prefix already has a directory there/);
    });
  });

  it('a hardlink (read back through the jail) reached through a link that leads out later (120 orders)', async () => {
    const ops: Op[] = [
      { op: 'symlink', path: 'x', target: 'inside' },
      { op: 'write', path: 'x/canary-dir/secret.txt', content: 'decoy\n' },
      { op: 'symlink', path: 'x', target: 'd/y/../..' },
      { op: 'symlink', path: 'd/y', target: '..' },
      { op: 'read', path: 'x/canary-dir/secret.txt' },
    ];
    await everyOrder(ops, ({ reads }) => {
      for (const read of reads) expect(read).not.toContain('host secret');
    });
  });

  it('a link that is inside when made and leads out once a later link exists is refused at the end (6 orders)', async () => {
    const ops: Op[] = [
      { op: 'symlink', path: 'x', target: 'y/..' },
      { op: 'symlink', path: 'y', target: '.' },
      { op: 'write', path: 'x/f.txt', content: 'x\n' },
    ];
    await everyOrder(ops, ({ errors }, order) => {
      const linksFirst = order[2]!.op === 'write';
      if (linksFirst) expect(errors.map((e) => e.message).join('\n')).toMatch(/'x(\/f\.txt)?' leads outside the env prefix/);
    });
  });

  it('symlink loops, links to absolute paths and reads through a link to a host file are refused', async () => {
    const { errors, reads } = await run(
      [
        { op: 'symlink', path: 'loop1', target: 'loop2' },
        { op: 'symlink', path: 'loop2', target: 'loop1' },
        { op: 'write', path: 'loop1/f', content: 'x' },
        { op: 'symlink', path: 'abs', target: '/etc' },
        { op: 'read', path: 'abs/hostname' },
      ],
      0,
    );
    expect(reads).toEqual([]);
    const text = errors.map((e) => e.message).join('\n');
    expect(text).toMatch(/symlink loop at 'loop[12]'/);
    expect(text).toMatch(/symlink 'abs' pointing outside the prefix/);
  });

  it('in-prefix links to directories are followed (lib64 -> lib), and the entry is owned at its real path', async () => {
    const writer = await PrefixWriter.open(join(root, 'prefix'));
    await writer.mkdir('lib', 'pkg-a');
    await writer.symlink('lib64', 'lib', 'pkg-a');
    await writer.writeFile('lib64/libx.so', 'elf', 0o755, 'pkg-b');
    await writer.verifyLinks();
    expect(await readFile(join(root, 'prefix', 'lib', 'libx.so'), 'utf8')).toBe('elf');
    expect(writer.owners().get('lib/libx.so')).toBe('pkg-b');
    expect(await readOpened(writer, 'lib64/libx.so', 'pkg-c')).toBe('elf');
  });

  it('openFile refuses what is not a regular file of the prefix: a directory, a FIFO, a symlink that leads out, a missing path', async () => {
    const base = join(root, 'open');
    await mkdir(join(base, 'outside'), { recursive: true });
    await writeFile(join(base, 'outside', 'secret.txt'), 'host secret\n');
    // A FIFO and a link to a host file already in the (not fresh) prefix, made behind the writer's back.
    await mkdir(join(base, 'prefix', 'lib'), { recursive: true });
    execFileSync('mkfifo', [join(base, 'prefix', 'lib', 'pipe')]);
    await symlink(join(base, 'outside', 'secret.txt'), join(base, 'prefix', 'lib', 'planted'));
    const writer = await PrefixWriter.open(join(base, 'prefix'));
    await writer.writeFile('lib/real.txt', 'real\n', 0o644, LABEL);
    await writer.symlink('lib/alias.txt', 'real.txt', LABEL);
    const refused = async (path: string, pattern: RegExp): Promise<void> => {
      const error = await writer.openFile(path, LABEL, 'lib/copy').catch((e: unknown) => e);
      expect(error, path).toBeInstanceOf(ArchiveError);
      expect((error as Error).message).toMatch(pattern);
    };
    await refused('lib', /hardlink 'lib\/copy' to 'lib', which is not a file in the package/);
    await refused('lib/pipe', /hardlink 'lib\/copy' to 'lib\/pipe', which is not a file in the package/);
    await refused('lib/planted', /leads outside the env prefix/);
    await refused('lib/missing', /refers to 'lib\/copy', which is not in the prefix/);
    // An in-prefix symlink is resolved by the walk, and the file it names is opened.
    expect(await readOpened(writer, 'lib/alias.txt', LABEL)).toBe('real\n');
  });

  it("writtenBy lists a label's own entries at their real paths, a replaced one kept while owners names its new writer", async () => {
    const writer = await PrefixWriter.open(join(root, 'prefix'));
    await writer.mkdir('lib', 'pkg-a');
    await writer.symlink('lib64', 'lib', 'pkg-a');
    await writer.writeFile('lib64/a.py', 'a', 0o644, 'pkg-a');
    await writer.writeFile('lib/b.py', 'b', 0o644, 'pkg-b');
    await writer.writeFile('lib/a.py', 'a2', 0o644, 'pkg-b');
    expect([...writer.writtenBy('pkg-a')]).toEqual(['lib', 'lib64', 'lib/a.py']);
    expect([...writer.writtenBy('pkg-b')]).toEqual(['lib/b.py', 'lib/a.py']);
    expect([...writer.writtenBy('pkg-c')]).toEqual([]);
    expect(writer.owners().get('lib/a.py')).toBe('pkg-b');
  });

  it('a reserved directory (conda-meta) cannot be written by a package, directly or through a link', async () => {
    const writer = await PrefixWriter.open(join(root, 'prefix'));
    await writer.mkdir('conda-meta', 'conda-meta');
    writer.reserve('conda-meta');
    await expect(writer.writeFile('conda-meta/x.json', '{}', 0o644, LABEL)).rejects.toThrow(/writes 'conda-meta\/x.json' into conda-meta\//);
    await writer.symlink('cm', 'conda-meta', LABEL);
    await expect(writer.writeFile('cm/x.json', '{}', 0o644, LABEL)).rejects.toThrow(/writes 'cm\/x.json' into conda-meta\//);
    await writer.writeFile('conda-meta/x.json', '{}', 0o644, 'materializer', { reserved: true });
  });

  it('an over-long member name is a plain ArchiveError naming the package and the member', async () => {
    const writer = await PrefixWriter.open(join(root, 'prefix'));
    const long = `lib/${'n'.repeat(300)}`;
    const error = await writer.writeFile(long, 'x', 0o644, LABEL).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ArchiveError);
    expect((error as Error).message).toMatch(/evil-1\.0-h0\.tar\.bz2 has a member whose name is too long for the file system: 'lib\/nnnn/);
    const deep = Array.from({ length: 30 }, () => 'd'.repeat(200)).join('/');
    const deepError = await writer.writeFile(`${deep}/f`, 'x', 0o644, LABEL).catch((e: unknown) => e);
    expect(deepError).toBeInstanceOf(ArchiveError);
    expect((deepError as Error).message).toMatch(/too long for the file system/);
  });
});
