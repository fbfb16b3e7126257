/**
 * Temp directories that say whose they are, so a later run can remove those a killed run left.
 *
 * `createRunTempDir(prefix)` makes `<tmp>/<prefix>r.<host>.<pid>.<start>.XXXXXX`: a hash of this
 * machine's hostname, this process's pid and its start time (ms since 1970, base 36). A SIGKILL
 * (OOM killer, a CI job cancelled hard) skips every `finally`, so build contexts — a materialized
 * env can be gigabytes — and private Docker configs would stay forever.
 * `sweepStaleRunTempDirs()` removes the directories of this machine whose process is gone: its pid
 * does not run, or runs but started at another time (the pid was reused, e.g. by the next run in a
 * container where the CLI always gets the same pid). Directories of other hosts (a shared TMPDIR)
 * and of live processes are left alone, as is everything not named this way, and every entry that
 * is not a directory of this user (a symlink, another user's directory of the same name).
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { lstat, mkdtemp, readdir, rm } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { diskFullError } from './disk-full.js';
import { errorMessage } from './errors.js';
import { processAlive } from './file-lock.js';
import { createLogger } from './logger.js';
import { makeDirectory, unwritableDirectoryError } from './make-directory.js';

const log = createLogger('temp');

const NAME = /^prebuilt-.*r\.([0-9a-f]{8})\.(\d+)\.([0-9a-z]+)\.[A-Za-z0-9]{6}$/;
/**
 * Two start times closer than this are the same process: exact for names this version writes (both
 * from /proc), a margin for those of earlier versions (node's uptime, btime's truncation to seconds).
 */
const SAME_START_MS = 2_000;

let processStart: number | undefined;

function hostTag(): string {
  return createHash('sha256').update(hostname()).digest('hex').slice(0, 8);
}

/**
 * When this process started, as another process's sweep reads it ({@link startOf}: the kernel's
 * start time of the pid), so the two agree exactly. Not `Date.now() - process.uptime()`: node's
 * uptime counts from node's own start, which comes after the kernel's by however long the exec
 * took — a shell shim that ends in `exec node` (pnpm's .bin scripts), a loaded machine — and once
 * that lag passed {@link SAME_START_MS}, a concurrent run's sweep took this live run for a dead
 * one and removed its build contexts mid-build. The uptime is only the fallback without /proc.
 * Read at the first temp dir or sweep, not when core is loaded (most commands make neither).
 */
function ownStart(): number {
  processStart ??= startOf(process.pid) ?? Math.round(Date.now() - process.uptime() * 1000);
  return processStart;
}

/** A fresh private temp directory named for this process (see the module comment). */
export async function createRunTempDir(prefix: string, options: { tempDir?: string } = {}): Promise<string> {
  return mkdtemp(join(options.tempDir ?? tmpdir(), `${prefix}r.${hostTag()}.${process.pid}.${ownStart().toString(36)}.`));
}

/**
 * {@link createRunTempDir} in `dir`, made first when missing (a directory of prebuilt's cache: the
 * build contexts', the oci service's work directory). One that cannot be made or written in is a
 * DiskFullError, or an EnvironmentError (exit 2) saying why, naming what was being done and the
 * setting that moves `dir`.
 */
export async function createRunTempDirIn(dir: string, prefix: string, where: { doing: string; setting?: string }): Promise<string> {
  try {
    await makeDirectory(dir);
    return await createRunTempDir(prefix, { tempDir: dir });
  } catch (error) {
    const at = { dir, ...where };
    throw diskFullError(error, at) ?? unwritableDirectoryError(error, at) ?? error;
  }
}

/** When a process of this machine started (ms since 1970), from /proc; undefined when unknown. */
function startOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 22 (starttime, in clock ticks since boot) counted after the ')' that ends the command name.
    const ticks = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
    const boot = Number(/^btime (\d+)$/m.exec(readFileSync('/proc/stat', 'utf8'))?.[1]);
    if (!Number.isFinite(ticks) || !Number.isFinite(boot)) return undefined;
    return boot * 1000 + ticks * 10; // USER_HZ is 100 on Linux
  } catch {
    return undefined;
  }
}

/** Whether the process that made a directory of this machine (pid, start time) still runs. */
function ownerRuns(pid: number, started: number): boolean {
  if (pid === process.pid) return Math.abs(started - ownStart()) < SAME_START_MS;
  if (!processAlive(pid)) return false;
  const actual = startOf(pid);
  return actual === undefined || Math.abs(actual - started) < SAME_START_MS;
}

/**
 * Whether `path` is a directory (not a symlink) of this user, as {@link createRunTempDir} makes
 * them. In a shared temp dir anyone can make an entry named for a dead run (the host tag is the
 * hash of the hostname); inside another user's directory they could swap a subdirectory for a
 * symlink while the sweep removes it, and the removal would follow it into this user's files. In
 * a directory of ours (mode 0700) nobody else can.
 */
async function ownDirectory(path: string): Promise<boolean> {
  try {
    const stats = await lstat(path);
    return stats.isDirectory() && (process.getuid === undefined || stats.uid === process.getuid());
  } catch {
    return false;
  }
}

/** Removes the temp directories of this machine's dead runs in `tempDir` (default the OS temp dir); returns their paths. */
export async function sweepStaleRunTempDirs(options: { tempDir?: string } = {}): Promise<string[]> {
  const dir = options.tempDir ?? tmpdir();
  const mine = hostTag();
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (error) {
    log('cannot list %s: %s', dir, errorMessage(error));
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    const match = NAME.exec(name);
    if (!match || match[1] !== mine) continue;
    if (ownerRuns(Number(match[2]), parseInt(match[3]!, 36))) continue;
    const path = join(dir, name);
    if (!(await ownDirectory(path))) continue;
    try {
      await rm(path, { recursive: true, force: true });
      removed.push(path);
      log('removed %s, left by a run that is gone (pid %s)', path, match[2]);
    } catch (error) {
      log('cannot remove %s: %s', path, errorMessage(error));
    }
  }
  return removed;
}
