/** Extraction in worker threads: the same result as on the calling thread, errors rebuilt as their classes, bounded concurrency. */
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildCondaPackage, type CondaPackageSpec } from '@prebuilt/fixtures';
import { hashFile } from '../cache/sha256-file.js';
import { extractCondaPackage, type ExtractedEntry } from './conda-extract.js';
import { defaultWorkerCount, ExtractPool, processExtractPool, PROCESS_POOL_IDLE_MS, rebuildError, serialiseError, WORKER_START_MIN, workerScript } from './extract-pool.js';
import { ArchiveError } from './errors.js';
import { expansionError } from './expansion-budget.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'prebuilt-extract-pool-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const spec = (name: string): CondaPackageSpec => ({
  name,
  version: '1.0.0',
  subdir: 'linux-64',
  files: [
    { path: `bin/${name}`, content: '#!/bin/sh\necho "@PREFIX@"\n', mode: 0o755, prefix: 'text' },
    { path: `bin/${name}-link`, symlink: name },
    // Larger than the 1 MiB slack over the declared sizes: the budget must be counted as the tar is read.
    { path: `share/${name}/big.bin`, content: Buffer.alloc(3_000_000, 7) },
    { path: `lib/python3.11/site-packages/${name}/__init__.py`, content: 'x = 1\n' },
  ],
});

async function packageFile(name: string): Promise<string> {
  const artifact = (await buildCondaPackage({ ...spec(name), formats: ['.conda'] }))[0]!;
  const file = join(dir, artifact.filename);
  await writeFile(file, artifact.bytes);
  return file;
}

/** An entry without what differs between two extractions of one archive (scratch path, inode). */
const comparable = (entry: ExtractedEntry) => {
  if (entry.type !== 'file') return entry;
  const { file: _file, stamp, ...rest } = entry;
  return { ...rest, stamp: stamp ? { ...stamp, ino: 'any' } : undefined };
};

describe('ExtractPool (worker threads)', () => {
  it('runs in worker threads once the package is built (the compiled worker script is found)', () => {
    expect(workerScript()).toMatch(/dist\/materialize\/extract-worker\.js$/);
    expect(new ExtractPool().threaded).toBe(true);
    expect(defaultWorkerCount(1)).toBe(1);
    expect(defaultWorkerCount(2)).toBe(1);
    expect(defaultWorkerCount(16)).toBe(2);
  });

  it('extracts as the calling thread does: the same entries, info files, file bytes and stamps, and the archive md5', async () => {
    const file = await packageFile('pooly');
    const label = file.slice(dir.length + 1);
    const pool = new ExtractPool({ workers: 1, startMin: 0 });
    try {
      const threaded = await pool.extract(file, label, join(dir, 'worker'), { mtime: 1_700_000_000, md5: true });
      expect(pool.workers).toBe(1);
      const local = await extractCondaPackage(file, label, join(dir, 'local'), { mtime: 1_700_000_000 });
      expect(threaded.md5).toBe(await hashFile(file, 'md5'));
      expect(threaded.entries.map(comparable)).toEqual(local.entries.map(comparable));
      expect([...threaded.info.keys()].sort()).toEqual([...local.info.keys()].sort());
      for (const [name, data] of local.info) {
        expect(Buffer.isBuffer(threaded.info.get(name))).toBe(true);
        expect(threaded.info.get(name)!.equals(data)).toBe(true);
      }
      const files = threaded.entries.filter((e) => e.type === 'file');
      expect(files.length).toBe(3);
      for (const entry of files) {
        expect(entry.file.startsWith(join(dir, 'worker'))).toBe(true);
        const twin = local.entries.find((e) => e.path === entry.path && e.type === 'file') as Extract<ExtractedEntry, { type: 'file' }>;
        expect((await readFile(entry.file)).equals(await readFile(twin.file))).toBe(true);
      }
    } finally {
      await pool.close();
    }
  });

  it('runs several extractions at once on one worker, and refuses work once closed', async () => {
    const files = await Promise.all(['one', 'two', 'three', 'four'].map(packageFile));
    const pool = new ExtractPool({ workers: 1, startMin: 0 });
    const results = await Promise.all(files.map((file, i) => pool.extract(file, file.slice(dir.length + 1), join(dir, `s${i}`))));
    expect(results.map((r) => r.entries.find((e) => e.type === 'symlink')?.path)).toEqual(['bin/one-link', 'bin/two-link', 'bin/three-link', 'bin/four-link']);
    expect(results.every((r) => r.md5 === undefined)).toBe(true);
    await pool.close();
    await expect(pool.extract(files[0]!, 'x.conda', join(dir, 'late'))).rejects.toThrow(/closed/);
  });

  it("rebuilds a worker's ArchiveError as an ArchiveError (package, message and hint kept)", async () => {
    const file = join(dir, 'broken-1.0-0.conda');
    await writeFile(file, Buffer.from('not a zip at all, just text pretending to be a package'));
    const pool = new ExtractPool({ workers: 1, startMin: 0 });
    try {
      const error = await pool.extract(file, 'broken-1.0-0.conda', join(dir, 'broken')).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ArchiveError);
      expect((error as ArchiveError).packageName).toBe('broken-1.0-0.conda');
      expect((error as ArchiveError).message).toMatch(/broken-1\.0-0\.conda/);
      // The pool still works after a failed extraction.
      const ok = await pool.extract(await packageFile('after'), 'after-1.0.0-0.conda', join(dir, 'after'));
      expect(ok.entries.length).toBeGreaterThan(0);
    } finally {
      await pool.close();
    }
  });

  it('carries errors across as data: classes, hints and system error codes', () => {
    const bomb = rebuildError(serialiseError(expansionError('bomb.conda', 'a/b', 'too big')));
    expect(bomb).toBeInstanceOf(ArchiveError);
    expect((bomb as ArchiveError).hint).toMatch(/decompression bomb/);
    const enospc = Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', errno: -28, syscall: 'write', path: '/x' });
    const back = rebuildError(serialiseError(enospc)) as NodeJS.ErrnoException;
    expect(back).toMatchObject({ code: 'ENOSPC', errno: -28, syscall: 'write', path: '/x', message: enospc.message });
    expect(rebuildError(serialiseError('plain')).message).toBe('plain');
  });

  it('starts no worker for a small archive while none runs; a large one starts it, and then small ones go to it too', async () => {
    const small = await packageFile('small');
    const big = join(dir, 'big-1.0.0-0.conda');
    // A real package padded past the threshold with an unread zip member (the zip directory keeps its members' places).
    const artifact = (await buildCondaPackage({ ...spec('big'), files: [...spec('big').files, { path: 'share/big/noise.bin', content: randomBytes(WORKER_START_MIN) }], formats: ['.conda'] }))[0]!;
    await writeFile(big, artifact.bytes);
    const pool = new ExtractPool({ workers: 1, startMin: WORKER_START_MIN });
    try {
      await pool.extract(small, 'small-1.0.0-0.conda', join(dir, 'a'));
      expect(pool.workers).toBe(0);
      await pool.extract(big, 'big-1.0.0-0.conda', join(dir, 'b'));
      expect(pool.workers).toBe(1);
      const again = await pool.extract(small, 'small-1.0.0-0.conda', join(dir, 'c'));
      expect(pool.workers).toBe(1);
      expect(again.entries.length).toBeGreaterThan(0);
    } finally {
      await pool.close();
    }
  });

  it('stays within its size however many callers extract at once (three envs), stops idle workers after idleMs and starts them again on demand', async () => {
    const files = await Promise.all(['e1a', 'e1b', 'e2a', 'e2b', 'e3a', 'e3b'].map(packageFile));
    const pool = new ExtractPool({ workers: 2, startMin: 0, idleMs: 150 });
    try {
      // Three "envs" asking at once, each with its extractions ahead (as materialize's extractAhead does).
      const envs = [0, 1, 2].map((env) => Promise.all(files.slice(env * 2, env * 2 + 2).map((file, i) => pool.extract(file, file.slice(dir.length + 1), join(dir, `env${env}-${i}`)))));
      const results = (await Promise.all(envs)).flat();
      expect(results.map((r) => r.entries.find((e) => e.type === 'symlink')?.path)).toEqual(['e1a', 'e1b', 'e2a', 'e2b', 'e3a', 'e3b'].map((n) => `bin/${n}-link`));
      expect(pool.peakWorkers).toBe(2);
      expect(pool.workers).toBe(2);
      await new Promise((resolve) => setTimeout(resolve, 400));
      expect(pool.workers).toBe(0);
      const again = await pool.extract(files[0]!, 'again.conda', join(dir, 'again'));
      expect(again.entries.length).toBeGreaterThan(0);
      expect(pool.workers).toBe(1);
    } finally {
      await pool.close();
    }
  });

  it('one pool serves the whole process, stopping its workers when idle', () => {
    expect(processExtractPool()).toBe(processExtractPool());
    expect(PROCESS_POOL_IDLE_MS).toBeGreaterThan(0);
  });

  it('extracts on the calling thread where the worker script is absent', async () => {
    const pool = new ExtractPool({ script: undefined });
    expect(pool.threaded).toBe(false);
    const got = await pool.extract(await packageFile('inline'), 'inline-1.0.0-0.conda', join(dir, 'inline'), { md5: true });
    expect(got.md5).toMatch(/^[0-9a-f]{32}$/);
    await pool.close();
  });
});
