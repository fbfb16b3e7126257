import { spawn } from 'node:child_process';
import { mkdtemp, readFile, readdir, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CancelledError } from './errors.js';
import { acquireFileLock } from './file-lock.js';

async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '']);
  await new Promise((resolve) => child.on('close', resolve));
  return child.pid!;
}

describe('acquireFileLock', () => {
  it('serializes holders in one process: the second waits until the first releases', async () => {
    const path = join(await mkdtemp(join(tmpdir(), 'prebuilt-lock-')), 'a.lock');
    const first = await acquireFileLock(path, { purpose: 'first' });
    expect(JSON.parse(await readFile(path, 'utf8'))).toMatchObject({ pid: process.pid, host: hostname(), purpose: 'first' });
    const waits: number[] = [];
    let secondHeld = false;
    const second = acquireFileLock(path, { pollMs: 20, onWait: (owner) => waits.push(owner.pid) }).then((lock) => {
      secondHeld = true;
      return lock;
    });
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect(secondHeld).toBe(false);
    await first.release();
    const lock = await second;
    expect(waits).toEqual([process.pid]);
    expect(lock.waitedFor?.pid).toBe(process.pid);
    await lock.release();
    expect(await readdir(join(path, '..'))).toEqual([]);
  });

  it('takes over the lock of a dead process and a corrupt lock file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'prebuilt-lock-'));
    const path = join(dir, 'b.lock');
    await writeFile(path, JSON.stringify({ pid: await deadPid(), host: hostname(), since: new Date().toISOString() }));
    const lock = await acquireFileLock(path, { pollMs: 20 });
    expect(lock.waitedFor).toBeUndefined();
    expect(JSON.parse(await readFile(path, 'utf8')).pid).toBe(process.pid);
    await lock.release();
    await writeFile(path, '{"pid": 12');
    const again = await acquireFileLock(path, { pollMs: 20 });
    await again.release();
    expect(await readdir(dir)).toEqual([]);
  });

  it('waits for a live process of this machine, and stops waiting when aborted', async () => {
    const path = join(await mkdtemp(join(tmpdir(), 'prebuilt-lock-')), 'c.lock');
    const holder = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 30000)']);
    try {
      await writeFile(path, JSON.stringify({ pid: holder.pid, host: hostname(), since: new Date().toISOString() }));
      const controller = new AbortController();
      const waiting = acquireFileLock(path, { pollMs: 20, signal: controller.signal });
      setTimeout(() => controller.abort(), 100);
      await expect(waiting).rejects.toBeInstanceOf(CancelledError);
      expect(JSON.parse(await readFile(path, 'utf8')).pid).toBe(holder.pid);
    } finally {
      holder.kill();
    }
  });
});
