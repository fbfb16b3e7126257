import { execFileSync, spawn } from 'node:child_process';
import { lstat, mkdtemp, readFile, readdir, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CancelledError } from './errors.js';
import { acquireFileLock, describeLockOwner, LEASE_BEATS } from './file-lock.js';

async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '']);
  await new Promise((resolve) => child.on('close', resolve));
  return child.pid!;
}

describe('acquireFileLock', () => {
  it('renews its lease on the lock file itself, never through a symlink swapped in at its name', async () => {
    // Another user of a shared cache directory replaces the lock with a link to a file of the holder's.
    const dir = await mkdtemp(join(tmpdir(), 'prebuilt-lock-'));
    const path = join(dir, 'a.lock');
    const victim = join(dir, 'victim');
    await writeFile(victim, 'a file of the user\'s\n');
    const old = new Date('2020-01-01T00:00:00Z');
    await utimes(victim, old, old);
    const lock = await acquireFileLock(path, { heartbeatMs: 10 });
    await rm(path);
    await symlink(victim, path);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect((await stat(victim)).mtimeMs).toBe(old.getTime());
    await lock.release();
  });

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

  it('takes over a FIFO, a device or a symlink put at the lock path without reading through it (reading one hung or filled memory)', async () => {
    // Another user of a shared cache directory plants them at a download's public lock name (<sha256>.lock).
    const dir = await mkdtemp(join(tmpdir(), 'prebuilt-lock-'));
    const fifo = join(dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    const planted: [string, () => Promise<void>][] = [
      ['a FIFO', async () => void execFileSync('mkfifo', [join(dir, 'a.lock')])],
      ['a symlink to a FIFO', () => symlink(fifo, join(dir, 'b.lock'))],
      ['a symlink to /dev/zero', () => symlink('/dev/zero', join(dir, 'c.lock'))],
    ];
    for (const [i, [what, plant]] of planted.entries()) {
      const path = join(dir, `${'abc'[i]}.lock`);
      await plant();
      const started = Date.now();
      const lock = await Promise.race([acquireFileLock(path, { pollMs: 20 }), new Promise<'hung'>((resolve) => setTimeout(() => resolve('hung'), 5000).unref())]);
      expect(lock, what).not.toBe('hung');
      expect(Date.now() - started, what).toBeLessThan(5000);
      expect((await lstat(path)).isFile(), what).toBe(true);
      await (lock as Awaited<ReturnType<typeof acquireFileLock>>).release();
    }
    expect((await lstat(fifo)).isFIFO()).toBe(true);
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

  it('takes over a lock another host wrote whose lease ran out, at once', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'prebuilt-lock-'));
    const path = join(dir, 'd.lock');
    // A CI container that was killed: another hostname, a live-looking pid, a lease renewed a minute ago.
    await writeFile(path, JSON.stringify({ pid: process.pid, host: 'ci-runner-gone-7f3a', since: new Date(Date.now() - 120_000).toISOString(), heartbeatMs: 5_000 }));
    const old = new Date(Date.now() - 60_000);
    await utimes(path, old, old);
    const waits: string[] = [];
    const started = Date.now();
    const lock = await acquireFileLock(path, { pollMs: 20, onWait: (_owner, text) => waits.push(text) });
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(waits).toEqual([]);
    expect(JSON.parse(await readFile(path, 'utf8'))).toMatchObject({ pid: process.pid, host: hostname() });
    await lock.release();
    expect(await readdir(dir)).toEqual([]);
  });

  it('a lock another host wrote without a lease (an older prebuilt) expires after the default lease', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'prebuilt-lock-'));
    const path = join(dir, 'e.lock');
    await writeFile(path, JSON.stringify({ pid: 1, host: 'old-prebuilt-host', since: new Date(0).toISOString() }));
    const old = new Date(Date.now() - 3_600_000);
    await utimes(path, old, old);
    const lock = await acquireFileLock(path, { pollMs: 20 });
    expect(lock.waitedFor).toBeUndefined();
    await lock.release();
  });

  it('waits for a live holder on another host while it renews its lease, naming it, then takes the lock when it stops', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'prebuilt-lock-'));
    const path = join(dir, 'f.lock');
    const heartbeatMs = 50;
    await writeFile(path, JSON.stringify({ pid: 4242, host: 'ci-runner-other', since: new Date().toISOString(), purpose: 'build reg/x:env-1', heartbeatMs }));
    // The holder "on the other host": renews the lease (mtime) every heartbeat for a while, then stops.
    const renew = setInterval(() => {
      const now = new Date();
      void utimes(path, now, now).catch(() => undefined);
    }, heartbeatMs);
    const renewFor = heartbeatMs * LEASE_BEATS * 3;
    setTimeout(() => clearInterval(renew), renewFor);
    const waits: string[] = [];
    const started = Date.now();
    const lock = await acquireFileLock(path, { pollMs: 10, onWait: (_owner, text) => waits.push(text) });
    const waited = Date.now() - started;
    clearInterval(renew);
    expect(waits).toHaveLength(1);
    expect(waits[0]).toMatch(/^pid 4242 on host ci-runner-other \(build reg\/x:env-1\), holding it since \d\d:\d\d:\d\d UTC, lease renewed \d+s ago$/);
    expect(lock.waitedFor).toMatchObject({ pid: 4242, host: 'ci-runner-other' });
    // Held while renewed, taken within a lease (plus polling) after the renewals stopped.
    expect(waited).toBeGreaterThanOrEqual(renewFor - 20);
    expect(waited).toBeLessThan(renewFor + heartbeatMs * LEASE_BEATS + 1_000);
    await lock.release();
  });

  it('a holder renews its lease (the lock file mtime) every heartbeat while it holds the lock, and removes the file at release', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'prebuilt-lock-'));
    const path = join(dir, 'g.lock');
    const lock = await acquireFileLock(path, { heartbeatMs: 30 });
    const first = (await stat(path)).mtimeMs;
    await new Promise((resolve) => setTimeout(resolve, 30 * LEASE_BEATS * 2));
    expect((await stat(path)).mtimeMs).toBeGreaterThan(first);
    expect(JSON.parse(await readFile(path, 'utf8'))).toMatchObject({ pid: process.pid, heartbeatMs: 30 });
    await lock.release();
    const renewedAfterRelease = await stat(path).then(() => true, () => false);
    expect(renewedAfterRelease).toBe(false);
  });

  it('describes a holder for the waiting message', () => {
    const text = describeLockOwner({ pid: 7, host: 'h', since: '2026-12-04T20:31:02.000Z', purpose: 'download x' }, Date.parse('2026-12-04T20:31:10Z'), Date.parse('2026-12-04T20:31:13Z'));
    expect(text).toBe('pid 7 on host h (download x), holding it since 20:31:02 UTC, lease renewed 3s ago');
  });
});
