import { hostname } from 'node:os';
import { link, mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { randomBytes } from 'node:crypto';
import { CancelledError } from './errors.js';
import { createLogger } from './logger.js';

const log = createLogger('lock');

/** What a lock file holds: who holds it. */
export interface LockOwner {
  pid: number;
  host: string;
  since: string;
  /** What the holder does, for the message of a waiting process. */
  purpose?: string;
}

export interface FileLock {
  /** The owner that held the lock when this process had to wait for it (undefined: got it at once). */
  waitedFor: LockOwner | undefined;
  release(): Promise<void>;
}

export interface AcquireOptions {
  signal?: AbortSignal;
  /** Written into the lock file. */
  purpose?: string;
  /** Called once when the lock is held by another live process and this one starts waiting. */
  onWait?: (owner: LockOwner) => void;
  /** Poll interval while waiting, in ms. Default 250. */
  pollMs?: number;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: the process exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function readOwner(path: string): Promise<LockOwner | undefined | 'gone'> {
  try {
    const data = JSON.parse(await readFile(path, 'utf8')) as Partial<LockOwner>;
    if (typeof data.pid !== 'number' || typeof data.host !== 'string') return undefined;
    return data as LockOwner;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 'gone';
    return undefined;
  }
}

/** True when the owner is a process of this machine that no longer runs. */
function stale(owner: LockOwner): boolean {
  return owner.host === hostname() && owner.pid !== process.pid && !alive(owner.pid);
}

/**
 * An inter-process lock: a file holding the owner's pid and host, created exclusively and complete
 * (a private temp file hard-linked into place; link(2) fails when the name exists). A process
 * that finds it held waits (polling) until it is released; a lock whose owner on this machine is
 * dead (killed, crashed) is taken over. Release removes the file. The lock only saves duplicate
 * work: a lost race (two processes both taking over one stale lock) costs a duplicate build, never
 * a wrong result.
 */
export async function acquireFileLock(path: string, options: AcquireOptions = {}): Promise<FileLock> {
  const { signal } = options;
  const pollMs = options.pollMs ?? 250;
  await mkdir(dirname(path), { recursive: true });
  const me: LockOwner = { pid: process.pid, host: hostname(), since: new Date().toISOString(), ...(options.purpose ? { purpose: options.purpose } : {}) };
  let waitedFor: LockOwner | undefined;
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
      let released = false;
      return {
        waitedFor,
        async release() {
          if (released) return;
          released = true;
          const owner = await readOwner(path);
          if (owner !== 'gone' && owner?.pid === process.pid && owner.since === me.since) await rm(path, { force: true });
          log('released %s', path);
        },
      };
    }
    const owner = await readOwner(path);
    if (owner === 'gone') continue;
    // An unreadable lock file is corrupt (a complete one is linked into place): take it over too.
    if (owner === undefined || stale(owner)) {
      // Move the stale lock aside (only one taker succeeds), then check it was the stale one.
      const aside = `${path}.stale.${process.pid}.${randomBytes(4).toString('hex')}`;
      try {
        await rename(path, aside);
        const moved = await readOwner(aside);
        if (moved !== 'gone' && moved !== undefined && moved.pid !== owner?.pid && !stale(moved)) {
          // A live owner took the lock in between: put its file back unless the place is taken again.
          await link(aside, path).catch(() => undefined);
        } else {
          log('took over the stale lock %s (%s)', path, owner ? `dead process ${owner.pid}` : 'unreadable');
        }
      } catch {
        // another process moved it first
      }
      await rm(aside, { force: true });
      continue;
    }
    if (waitedFor === undefined) {
      waitedFor = owner;
      options.onWait?.(owner);
      log('waiting for %s (held by pid %d on %s)', path, owner.pid, owner.host);
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
