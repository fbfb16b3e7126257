/**
 * Temp directories that say whose they are, so a later run can remove those a killed run left.
 *
 * `createRunTempDir(prefix)` makes `<tmp>/<prefix>q.<host>.<boot>.<pidns>.<pid>.<ticks>.XXXXXX`: a
 * hash of this machine's hostname, the kernel's boot id (its first 8 hex digits), this process's
 * PID namespace, its pid and its start in clock ticks since boot (the namespace and the start base
 * 36; all but the hostname from /proc). A SIGKILL (OOM killer, a CI job cancelled hard) skips every
 * `finally`, so build contexts — a materialized env can be gigabytes — and private Docker configs
 * would stay forever. `sweepStaleRunTempDirs()` removes the directories of this machine whose
 * process is gone: its pid does not run, or runs but started at another tick (the pid was reused,
 * e.g. by the next run in a container where the CLI always gets the same pid), or it was made in
 * another boot and untouched for {@link OTHER_BOOT_IDLE_MS}.
 *
 * Another boot id is not proof of a reboot: two machines of the same hostname sharing the directory
 * (containers with a fixed hostname on one volume, CI runners) each see the other's boot id, and a
 * sweep that took it for an earlier boot removed the other machine's live build contexts mid-build.
 * Nothing names "this machine" across a reboot safely (/etc/machine-id is the same in every clone of
 * an image), so a directory of another boot goes only once no live run can own it: each run touches
 * its directories (their mtime) every {@link HEARTBEAT_MS} while it lives, so one untouched for a
 * day belongs to no live run, of this machine or another. The cost: the directories of runs a
 * reboot killed stay a day longer. Directories of other hosts (a shared TMPDIR), of other PID namespaces (containers
 * of this machine under the same hostname — pods with hostNetwork sharing a cache volume —, whose
 * pids mean nothing here) and of live processes are left alone,
 * as is everything not named this way, and every entry that is not a directory of this user (a
 * symlink, another user's directory of the same name).
 *
 * The start is counted from the boot, not on the wall clock: a wall-clock start is the kernel's
 * boot time (/proc/stat's btime) plus the ticks, and btime moves whenever the clock is stepped (NTP,
 * `date -s`) — a sweep after a step took every live run for a dead one and removed its build
 * contexts mid-build. Without /proc (macOS) the name is `<prefix>r.<host>.<pid>.<start ms>.XXXXXX`,
 * the form earlier versions wrote everywhere, whose start is node's on the wall clock; those are
 * still swept, with a margin ({@link SAME_START_MS}), and — naming no boot, so another machine of
 * this hostname looks the same — only once untouched for {@link OTHER_BOOT_IDLE_MS}. Earlier
 * versions do not recognise the `q.` form, so they leave such directories alone.
 */
import { createHash } from 'node:crypto';
import { readFileSync, readlinkSync } from 'node:fs';
import { lstat, mkdtemp, readdir, rm, utimes } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { currentBootId } from './boot-id.js';
import { diskFullError } from './disk-full.js';
import { errorMessage } from './errors.js';
import { processAlive } from './file-lock.js';
import { createLogger } from './logger.js';
import { makeDirectory, unwritableDirectoryError } from './make-directory.js';

const log = createLogger('temp');

/** A directory named for its run's boot and start tick (what this version writes where there is /proc). */
const NAME = /^prebuilt-.*q\.([0-9a-f]{8})\.([0-9a-f]{8})\.([0-9a-z]+)\.(\d+)\.([0-9a-z]+)\.[A-Za-z0-9]{6}$/;
/** A directory named for its run's start on the wall clock (earlier versions; this one without /proc). */
const WALL_CLOCK_NAME = /^prebuilt-.*r\.([0-9a-f]{8})\.(\d+)\.([0-9a-z]+)\.[A-Za-z0-9]{6}$/;
/**
 * Two wall-clock start times closer than this are the same process: a margin for the names of
 * earlier versions (node's uptime, btime's truncation to seconds).
 */
const SAME_START_MS = 2_000;

/** How often a run touches the directories it made (their mtime), to show a sweep of another boot that it lives. */
const HEARTBEAT_MS = 60 * 60 * 1000;
/**
 * A directory of another boot is removed once untouched for this long: {@link HEARTBEAT_MS} many
 * times over (a loaded machine, clocks of two machines a little apart).
 */
export const OTHER_BOOT_IDLE_MS = 24 * 60 * 60 * 1000;

/** The directories this process made and still touches (see {@link touchRunTempDirs}). */
const liveDirs = new Set<string>();
let heartbeat: NodeJS.Timeout | undefined;

/**
 * Sets the mtime of every directory this process made with {@link createRunTempDir} to now; one
 * gone (removed by its user) is forgotten. Run every {@link HEARTBEAT_MS} (an unref'd timer: it keeps
 * no process alive); exported for tests.
 */
export async function touchRunTempDirs(): Promise<void> {
  const now = new Date();
  for (const dir of liveDirs) {
    try {
      await utimes(dir, now, now);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') liveDirs.delete(dir);
      else log('cannot touch %s: %s', dir, errorMessage(error));
    }
  }
  if (liveDirs.size === 0 && heartbeat !== undefined) {
    clearInterval(heartbeat);
    heartbeat = undefined;
  }
}

function keepTouching(dir: string): void {
  liveDirs.add(dir);
  heartbeat ??= setInterval(() => void touchRunTempDirs(), HEARTBEAT_MS).unref();
}

let processStart: number | undefined;

function hostTag(): string {
  return createHash('sha256').update(hostname()).digest('hex').slice(0, 8);
}

/**
 * When this process started on the wall clock, for the `r.` form: the kernel's start of the pid
 * where there is /proc (as {@link startOf} reads another's: a sweep of an earlier version's
 * directory that names this pid compares it), else node's uptime. Read at the first need, not when
 * core is loaded (most commands make no temp dir).
 */
function ownStart(): number {
  processStart ??= startOf(process.pid) ?? Math.round(Date.now() - process.uptime() * 1000);
  return processStart;
}

/** The first 8 hex digits of the kernel's boot id (core's {@link currentBootId}); undefined without /proc. */
function currentBoot(): string | undefined {
  return currentBootId()?.slice(0, 8);
}

/** A process's start, in clock ticks since boot (field 22 of /proc/<pid>/stat); undefined when unknown (gone, no /proc). */
function startTicks(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Counted after the ')' that ends the command name (which may hold spaces and parentheses).
    const ticks = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
    return Number.isSafeInteger(ticks) ? ticks : undefined;
  } catch {
    return undefined;
  }
}

let ownTicks: number | undefined;

/** This process's PID namespace (the inode of /proc/self/ns/pid, base 36); undefined without /proc. */
let pidNamespace: string | null | undefined;
function currentPidNamespace(): string | undefined {
  if (pidNamespace === undefined) {
    try {
      pidNamespace = /^pid:\[(\d+)\]$/.exec(readlinkSync('/proc/self/ns/pid'))?.[1] ?? null;
      if (pidNamespace !== null) pidNamespace = Number(pidNamespace).toString(36);
    } catch {
      pidNamespace = null;
    }
  }
  return pidNamespace ?? undefined;
}

/** A fresh private temp directory named for this process (see the module comment). */
export async function createRunTempDir(prefix: string, options: { tempDir?: string } = {}): Promise<string> {
  ownTicks ??= startTicks(process.pid);
  const boot = currentBoot();
  const pidns = currentPidNamespace();
  const owner =
    boot !== undefined && pidns !== undefined && ownTicks !== undefined
      ? `q.${hostTag()}.${boot}.${pidns}.${process.pid}.${ownTicks.toString(36)}`
      : `r.${hostTag()}.${process.pid}.${ownStart().toString(36)}`;
  const dir = await mkdtemp(join(options.tempDir ?? tmpdir(), `${prefix}${owner}.`));
  keepTouching(dir);
  return dir;
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

/** When a process of this machine started (ms since 1970, on the wall clock as it is now), from /proc; undefined when unknown. */
function startOf(pid: number): number | undefined {
  const ticks = startTicks(pid);
  if (ticks === undefined) return undefined;
  try {
    const boot = Number(/^btime (\d+)$/m.exec(readFileSync('/proc/stat', 'utf8'))?.[1]);
    if (!Number.isFinite(boot)) return undefined;
    return boot * 1000 + ticks * 10; // USER_HZ is 100 on Linux
  } catch {
    return undefined;
  }
}

/**
 * Whether the process that made a directory named for its boot, pid and start tick still runs:
 * this boot, and the pid started at that very tick. Exact, and the wall clock plays no part. (The
 * caller leaves alone a directory of another PID namespace.)
 */
function tickOwnerRuns(boot: string, pid: number, ticks: number): boolean {
  const now = currentBoot();
  // Another boot's: the caller decides by its mtime.
  if (now !== undefined && boot !== now) return false;
  if (pid === process.pid) return (ownTicks ??= startTicks(process.pid)) === ticks;
  if (!processAlive(pid)) return false;
  const actual = startTicks(pid);
  return actual === undefined || actual === ticks;
}

/** Whether the process that made a directory of this machine (pid, wall-clock start time) still runs. */
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
async function ownDirectory(path: string, options: { idleFor?: number } = {}): Promise<boolean> {
  try {
    const stats = await lstat(path);
    if (options.idleFor !== undefined && Date.now() - stats.mtimeMs < options.idleFor) return false;
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
    const byTick = NAME.exec(name);
    const byClock = byTick ? null : WALL_CLOCK_NAME.exec(name);
    // Of another boot (an earlier one of this machine, or another machine of this hostname sharing the directory): only once idle.
    let idleFor: number | undefined;
    if (byTick) {
      const boot = currentBoot();
      if (boot === undefined || byTick[2] !== boot) idleFor = OTHER_BOOT_IDLE_MS;
      // Another PID namespace's of this boot (same hostname): its pid means nothing here.
      const otherNamespace = byTick[3] !== currentPidNamespace() && byTick[2] === boot;
      if (byTick[1] !== mine || otherNamespace || tickOwnerRuns(byTick[2]!, Number(byTick[4]), parseInt(byTick[5]!, 36))) continue;
    } else if (byClock) {
      // No boot in the name: another machine of this hostname (its pid means nothing here) looks the same. Only once idle.
      idleFor = OTHER_BOOT_IDLE_MS;
      if (byClock[1] !== mine || ownerRuns(Number(byClock[2]), parseInt(byClock[3]!, 36))) continue;
    } else {
      continue;
    }
    const pid = (byTick ? byTick[4] : byClock![2])!;
    const path = join(dir, name);
    if (!(await ownDirectory(path, idleFor === undefined ? {} : { idleFor }))) continue;
    try {
      await rm(path, { recursive: true, force: true });
      removed.push(path);
      log('removed %s, left by a run that is gone (pid %s)', path, pid);
    } catch (error) {
      log('cannot remove %s: %s', path, errorMessage(error));
    }
  }
  return removed;
}
