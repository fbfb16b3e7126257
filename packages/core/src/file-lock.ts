import { hostname } from 'node:os';
import { link, lutimes, open, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { randomBytes } from 'node:crypto';
import { readCacheEntry } from './cache-file.js';
import { CancelledError } from './errors.js';
import { createLogger } from './logger.js';
import { makeDirectory } from './make-directory.js';

const log = createLogger('lock');

/** The largest lock file read (one holds a few hundred bytes of JSON). */
const MAX_LOCK_FILE_BYTES = 64 * 1024;

/** What a lock file holds: who holds it. */
export interface LockOwner {
  pid: number;
  host: string;
  since: string;
  /** What the holder does, for the message of a waiting process. */
  purpose?: string;
  /**
   * How often the holder renews its lease (touches the lock file's mtime), in ms. A lock not
   * renewed for LEASE_BEATS heartbeats is stale, whatever host wrote it. Absent in locks written
   * by prebuilt versions without leases.
   */
  heartbeatMs?: number;
}

/** Default heartbeat of a held lock: its file's mtime is renewed this often (ms). */
const LOCK_HEARTBEAT_MS = 5_000;
/** A lock whose lease was not renewed for this many of its holder's heartbeats is stale. */
export const LEASE_BEATS = 6;

export interface FileLock {
  /** The owner that held the lock when this process had to wait for it (undefined: got it at once). */
  waitedFor: LockOwner | undefined;
  release(): Promise<void>;
}

export interface AcquireOptions {
  signal?: AbortSignal;
  /** Written into the lock file. */
  purpose?: string;
  /**
   * Called once when the lock is held by another live process and this one starts waiting, with
   * the holder and a description of it (pid, host, purpose, since when, last lease renewal).
   */
  onWait?: (owner: LockOwner, description: string) => void;
  /** Poll interval while waiting, in ms. Default 250. */
  pollMs?: number;
  /** How often this holder renews its lease, in ms (default LOCK_HEARTBEAT_MS). */
  heartbeatMs?: number;
}

/** Whether a process of this machine runs (EPERM: it exists but belongs to someone else). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

interface Held {
  owner: LockOwner;
  /** The lock file's mtime: its holder's last heartbeat. */
  renewedMs: number;
}

async function readOwner(path: string): Promise<Held | undefined | 'gone'> {
  // Never through a symlink, never blocking (cache-file.ts): another user of a shared directory may
  // plant a symlink (to /dev/zero, to a FIFO) or a FIFO at a lock's public name; reading one hung the
  // build or filled memory. Anything but a small regular file is corrupt, and taken over.
  const read = await readCacheEntry(path, MAX_LOCK_FILE_BYTES);
  if (read === 'missing') return 'gone';
  if (read === 'unusable') return undefined;
  try {
    const data = JSON.parse(read.bytes.toString('utf8')) as Partial<LockOwner>;
    if (typeof data.pid !== 'number' || typeof data.host !== 'string') return undefined;
    return { owner: data as LockOwner, renewedMs: read.stats.mtimeMs };
  } catch {
    return undefined;
  }
}

function sameOwner(a: LockOwner, b: LockOwner): boolean {
  return a.pid === b.pid && a.host === b.host && a.since === b.since;
}

/** The lease of a lock in ms; undefined for a lock of this machine written without heartbeats (its pid decides). */
function leaseMs(owner: LockOwner): number | undefined {
  if (typeof owner.heartbeatMs === 'number' && owner.heartbeatMs > 0) return owner.heartbeatMs * LEASE_BEATS;
  return owner.host === hostname() ? undefined : LOCK_HEARTBEAT_MS * LEASE_BEATS;
}

/**
 * True when the holder is gone: a process of this machine that no longer runs (at once), or a
 * holder on any host whose lease was not renewed within its term by the wall clock (a CI
 * container that was killed: its hostname never comes back).
 */
function staleNow(held: Held, now = Date.now()): boolean {
  const { owner } = held;
  if (owner.host === hostname() && owner.pid !== process.pid && !processAlive(owner.pid)) return true;
  const lease = leaseMs(owner);
  return lease !== undefined && now - held.renewedMs > lease;
}

/** "pid 12 on host ci-7 (build reg/x:env-1), holding it since 20:31:02 UTC, lease renewed 2s ago". */
export function describeLockOwner(owner: LockOwner, renewedMs?: number, now = Date.now()): string {
  const since = Number.isNaN(Date.parse(owner.since)) ? owner.since : `${new Date(owner.since).toISOString().slice(11, 19)} UTC`;
  const renewed = renewedMs === undefined ? '' : `, lease renewed ${Math.max(0, Math.round((now - renewedMs) / 1000))}s ago`;
  return `pid ${owner.pid} on host ${owner.host}${owner.purpose ? ` (${owner.purpose})` : ''}, holding it since ${since}${renewed}`;
}

/**
 * An inter-process lock: a file holding the owner's pid and host, created exclusively and complete
 * (a private temp file hard-linked into place; link(2) fails when the name exists). A process
 * that finds it held waits (polling) until it is released. The holder renews a lease while it
 * holds the lock: it touches the file's mtime every `heartbeatMs`. A lock is taken over when its
 * owner is a dead process of this machine (at once), when its lease ran out by the wall clock
 * (LEASE_BEATS heartbeats; any host: a killed CI container on a shared cache volume never comes
 * back), or when this process saw its mtime unchanged for the lease's length (a holder whose clock
 * runs ahead). Release stops the heartbeat and removes the file. The lock only saves duplicate
 * work: a lost race (two processes both taking over one stale lock), or a holder whose clock is
 * behind the waiter's by more than the lease, costs a duplicate build, never a wrong result.
 */
export async function acquireFileLock(path: string, options: AcquireOptions = {}): Promise<FileLock> {
  const { signal } = options;
  const pollMs = options.pollMs ?? 250;
  const heartbeatMs = Math.max(1, options.heartbeatMs ?? LOCK_HEARTBEAT_MS);
  await makeDirectory(dirname(path));
  const me: LockOwner = {
    pid: process.pid,
    host: hostname(),
    since: new Date().toISOString(),
    ...(options.purpose ? { purpose: options.purpose } : {}),
    heartbeatMs,
  };
  let waitedFor: LockOwner | undefined;
  // The lease as this process saw it: the holder and mtime last read, and when (by our clock) it changed.
  let seen: { owner: LockOwner; renewedMs: number; at: number } | undefined;
  for (;;) {
    if (signal?.aborted) throw new CancelledError(`Waiting for the lock ${path} was cancelled.`, { cause: signal.reason });
    // Write the owner to a private file, then link it into place: the lock file appears complete or not at all.
    const temp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    const handle = await open(temp, 'wx', 0o644);
    try {
      await handle.writeFile(JSON.stringify(me));
    } finally {
      await handle.close();
    }
    let got = false;
    try {
      await link(temp, path);
      got = true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') {
        await rm(temp, { force: true });
        throw error;
      }
    }
    await rm(temp, { force: true });
    if (got) {
      log('locked %s', path);
      return held(path, me, waitedFor, heartbeatMs);
    }
    const current = await readOwner(path);
    if (current === 'gone') continue;
    const now = Date.now();
    if (current !== undefined && (!seen || !sameOwner(seen.owner, current.owner) || seen.renewedMs !== current.renewedMs)) {
      seen = { owner: current.owner, renewedMs: current.renewedMs, at: now };
    }
    const lease = current === undefined ? undefined : leaseMs(current.owner);
    const unrenewed = lease !== undefined && seen !== undefined && now - seen.at > lease;
    // An unreadable lock file is corrupt (a complete one is linked into place): take it over too.
    if (current === undefined || staleNow(current, now) || unrenewed) {
      await takeOver(path, current);
      seen = undefined;
      continue;
    }
    if (waitedFor === undefined) {
      waitedFor = current.owner;
      options.onWait?.(current.owner, describeLockOwner(current.owner, current.renewedMs, now));
      log('waiting for %s (held by %s)', path, describeLockOwner(current.owner, current.renewedMs, now));
    }
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      }, pollMs);
      const onAbort = (): void => {
        clearTimeout(timer);
        reject(new CancelledError(`Waiting for the lock ${path} was cancelled.`, { cause: signal?.reason }));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }
}

/** Moves a stale lock aside (only one taker succeeds), then checks that it was the stale one. */
async function takeOver(path: string, stale: Held | undefined): Promise<void> {
  const aside = `${path}.stale.${process.pid}.${randomBytes(4).toString('hex')}`;
  try {
    await rename(path, aside);
    const moved = await readOwner(aside);
    if (moved !== 'gone' && moved !== undefined && (!stale || !sameOwner(moved.owner, stale.owner)) && !staleNow(moved)) {
      // A live owner took the lock in between: put its file back unless the place is taken again.
      await link(aside, path).catch(() => undefined);
    } else {
      const why = !stale ? 'unreadable' : stale.owner.host === hostname() && !processAlive(stale.owner.pid) ? `dead process ${stale.owner.pid}` : 'lease expired';
      log('took over the stale lock %s (%s; was %s)', path, why, stale ? describeLockOwner(stale.owner, stale.renewedMs) : 'corrupt');
    }
  } catch {
    // another process moved it first
  }
  await rm(aside, { force: true });
}

/** A held lock: renews its lease every heartbeat until released. */
function held(path: string, me: LockOwner, waitedFor: LockOwner | undefined, heartbeatMs: number): FileLock {
  let released = false;
  const heartbeat = setInterval(() => {
    const now = new Date();
    // Touching a lock another process took over (we were presumed dead) only lengthens its lease.
    // lutimes: a symlink swapped in at the lock's name (a shared cache) gets its own times changed,
    // never those of the file it points at.
    lutimes(path, now, now).catch((error: unknown) => log('cannot renew the lease of %s: %s', path, (error as Error).message));
  }, heartbeatMs);
  heartbeat.unref();
  return {
    waitedFor,
    async release() {
      if (released) return;
      released = true;
      clearInterval(heartbeat);
      const current = await readOwner(path);
      if (current !== 'gone' && current !== undefined && sameOwner(current.owner, me)) await rm(path, { force: true });
      log('released %s', path);
    },
  };
}
