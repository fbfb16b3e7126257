import { execFileSync } from 'node:child_process';
import { chmod, chown, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { writeFileAtomic } from './atomic-write.js';

/** Every fsync and rename writeFileAtomic makes, in order (the fs module injected: real calls, recorded). */
const journal = vi.hoisted(() => [] as string[]);
vi.mock('node:fs/promises', async (importOriginal) => {
  const fs = await importOriginal<typeof import('node:fs/promises')>();
  return {
    ...fs,
    open: async (...args: Parameters<typeof fs.open>) => {
      const handle = await fs.open(...args);
      const sync = handle.sync.bind(handle);
      handle.sync = async () => {
        journal.push(`fsync ${String(args[0])}`);
        await sync();
      };
      return handle;
    },
    rename: async (from: string, to: string) => {
      journal.push(`rename ${from} -> ${to}`);
      await fs.rename(from, to);
    },
  };
});

describe('writeFileAtomic', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'prebuilt-atomic-'));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it('replaces the file, creates missing directories and sets the mode', async () => {
    const path = join(dir, 'a', 'b', 'state.json');
    await writeFileAtomic(path, 'one');
    await writeFileAtomic(path, 'two', { mode: 0o600 });
    expect(await readFile(path, 'utf8')).toBe('two');
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect(await readdir(join(dir, 'a', 'b'))).toEqual(['state.json']);
  });

  it('flushes the temp file before the rename and the directory after it', async () => {
    const path = join(dir, 'images.json');
    journal.length = 0;
    await writeFileAtomic(path, '{}');
    expect(journal).toHaveLength(3);
    const [fileSync, renamed, dirSync] = journal;
    const temp = /^fsync (.*\.tmp)$/.exec(fileSync!)?.[1];
    expect(temp).toBeDefined();
    expect(renamed).toBe(`rename ${temp} -> ${path}`);
    expect(dirSync).toBe(`fsync ${dir}`);
  });

  // root reads a 0333 directory anyway: as root the write runs as nobody (setpriv), in a directory of nobody's.
  it('still writes the file where its directory cannot be opened to flush it (mode 0333)', async () => {
    const sub = join(dir, 'unreadable');
    const target = join(sub, 'state.json');
    await mkdir(sub);
    await chmod(sub, 0o333);
    if (process.getuid?.() === 0) {
      await chmod(dir, 0o755);
      await chown(sub, 65534, 65534);
      const dist = fileURLToPath(new URL('../dist/atomic-write.js', import.meta.url));
      const script = `import { writeFileAtomic } from ${JSON.stringify(dist)}; await writeFileAtomic(${JSON.stringify(target)}, 'x');`;
      execFileSync('/usr/bin/setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '--input-type=module', '-e', script], { stdio: 'pipe' });
    } else {
      await writeFileAtomic(target, 'x');
    }
    await chmod(sub, 0o700);
    expect(await readFile(target, 'utf8')).toBe('x');
  });

  it('leaves no temp file behind when the write cannot complete', async () => {
    const path = join(dir, 'target');
    await mkdir(path);
    await writeFile(join(path, 'inside'), 'x');
    await expect(writeFileAtomic(path, 'data')).rejects.toThrow();
    expect(await readdir(dir)).toEqual(['target']);
  });
});
