import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { chown, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { createRunTempDir, OTHER_BOOT_IDLE_MS, sweepStaleRunTempDirs, touchRunTempDirs } from './run-temp-dir.js';

/** Just over {@link OTHER_BOOT_IDLE_MS} ago: a directory of another boot that old is swept. */
const dayAgo = (): Date => new Date(Date.now() - OTHER_BOOT_IDLE_MS - 60_000);

const moduleUrl = new URL('./run-temp-dir.ts', import.meta.url);
const distModule = fileURLToPath(moduleUrl).replace(/\/src\/run-temp-dir\.ts$/, '/dist/run-temp-dir.js');
const run = promisify(execFile);

/** Why a process cannot be given its own /proc/stat (a bind mount in a mount namespace of its own): needs root and unshare. */
const noMountNamespace = process.getuid?.() !== 0 ? 'needs root' : !existsSync('/usr/bin/unshare') ? 'needs unshare (util-linux)' : undefined;

/**
 * A child process that makes a run temp dir in `dir` (through this module), prints it, then waits.
 * `execAfterSeconds`: a shell under the same pid sleeps that long first, then execs node — a shim
 * (pnpm's .bin scripts end in `exec node`) or a loaded machine: the kernel's start of the pid comes
 * that long before node's own.
 */
function child(dir: string, execAfterSeconds?: number): Promise<{ pid: number; path: string; kill: (signal: NodeJS.Signals) => Promise<void> }> {
  const script = `const { createRunTempDir } = await import(${JSON.stringify(fileURLToPath(moduleUrl).replace(/\/src\/run-temp-dir\.ts$/, '/dist/run-temp-dir.js'))});
const path = await createRunTempDir('prebuilt-context-abc-', { tempDir: ${JSON.stringify(dir)} });
process.stdout.write(path + '\\n');
setInterval(() => {}, 1000);`;
  const node = ['--input-type=module', '-e', script];
  const proc = execAfterSeconds === undefined
    ? spawn(process.execPath, node, { stdio: ['ignore', 'pipe', 'inherit'] })
    : spawn('sh', ['-c', `sleep ${execAfterSeconds}; exec "$0" "$@"`, process.execPath, ...node], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let out = '';
    proc.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      if (out.endsWith('\n')) {
        resolve({
          pid: proc.pid!,
          path: out.trim(),
          kill: (signal) => new Promise((done) => {
            proc.on('close', () => done());
            proc.kill(signal);
          }),
        });
      }
    });
    proc.on('error', reject);
  });
}

describe('run temp dirs', () => {
  it('removes the dirs of a SIGKILLed run, keeps those of live runs, other hosts and everything not named so', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'prebuilt-sweep-'));
    const killed = await child(dir);
    await writeFile(join(killed.path, 'big-prefix-file'), 'x'.repeat(1000));
    await killed.kill('SIGKILL');
    const live = await child(dir);
    const mine = await createRunTempDir('prebuilt-buildx-', { tempDir: dir });
    const tag = createHash('sha256').update(hostname()).digest('hex').slice(0, 8);
    // Our own pid, but another start time: a run before this one that had the same pid (containers).
    const reused = join(dir, `prebuilt-context-def-r.${tag}.${process.pid}.${(Date.now() - 3_600_000).toString(36)}.AbC123`);
    const otherHost = join(dir, `prebuilt-context-def-r.0badc0de.${killed.pid}.${Date.now().toString(36)}.AbC123`);
    // Our own pid and start tick, but made before the last boot (another boot id): gone.
    const [boot, pidns, ticks] = /-q\.[0-9a-f]{8}\.([0-9a-f]{8})\.([0-9a-z]+)\.\d+\.([0-9a-z]+)\./.exec(mine)!.slice(1) as [string, string, string];
    const otherBoot = join(dir, `prebuilt-context-def-q.${tag}.${boot === '00000000' ? '11111111' : '00000000'}.${pidns}.${process.pid}.${ticks}.AbC123`);
    // This boot and our pid, another start tick: a run before this one that had the same pid.
    const reusedTick = join(dir, `prebuilt-context-def-q.${tag}.${boot}.${pidns}.${process.pid}.${(parseInt(ticks, 36) - 1).toString(36)}.AbC123`);
    // Another host's, with the q. form.
    const otherHostTick = join(dir, `prebuilt-context-def-q.0badc0de.${boot}.${pidns}.${killed.pid}.${ticks}.AbC123`);
    // Another PID namespace's of this boot, with a pid that does not run here: left alone (its namespace sweeps it).
    const otherNamespace = join(dir, `prebuilt-context-def-q.${tag}.${boot}.${pidns}x.${killed.pid}.${ticks}.AbC123`);
    // …but one of another namespace made before the last boot is gone.
    const otherNamespaceOldBoot = join(dir, `prebuilt-context-def-q.${tag}.${boot === '00000000' ? '11111111' : '00000000'}.${pidns}x.${killed.pid}.${ticks}.AbC123`);
    const unrelated = join(dir, 'prebuilt-context-old-style-XyZ789');
    for (const path of [reused, otherHost, unrelated, otherBoot, reusedTick, otherHostTick, otherNamespace, otherNamespaceOldBoot]) await mkdir(path);
    // Those of another boot were last touched by their run more than a day ago.
    for (const path of [reused, otherBoot, otherNamespaceOldBoot]) await utimes(path, dayAgo(), dayAgo());
    try {
      const removed = await sweepStaleRunTempDirs({ tempDir: dir });
      expect(removed.sort()).toEqual([killed.path, reused, otherBoot, reusedTick, otherNamespaceOldBoot].sort());
      expect((await readdir(dir)).sort()).toEqual([live.path, mine, otherHost, unrelated, otherHostTick, otherNamespace].map((p) => p.slice(dir.length + 1)).sort());
      expect(killed.path.slice(dir.length + 1)).toMatch(/^prebuilt-context-abc-q\.[0-9a-f]{8}\.[0-9a-f]{8}\.[0-9a-z]+\.\d+\.[0-9a-z]+\.[A-Za-z0-9]{6}$/);
      // What earlier versions sweep (the `r.` form, a wall-clock start): they leave these alone.
      expect(live.path.slice(dir.length + 1)).not.toMatch(/^prebuilt-.*r\.([0-9a-f]{8})\.(\d+)\.([0-9a-z]+)\.[A-Za-z0-9]{6}$/);
    } finally {
      await live.kill('SIGTERM');
    }
    // Once the live run is gone, its dir goes too.
    expect(await sweepStaleRunTempDirs({ tempDir: dir })).toEqual([live.path]);
  });

  it("keeps the dirs of another boot its run touched within the day: another machine of this hostname sharing the directory (containers with a fixed hostname on one volume, CI runners) is not a reboot of this one", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'prebuilt-sweep-boot-'));
    const mine = await createRunTempDir('prebuilt-context-', { tempDir: dir });
    const [tag, boot, pidns] = /-q\.([0-9a-f]{8})\.([0-9a-f]{8})\.([0-9a-z]+)\./.exec(mine)!.slice(1) as [string, string, string];
    const otherBoot = boot === '00000000' ? '11111111' : '00000000';
    // The other machine's live run: its pid and start tick mean nothing here (a pid that runs here, or not).
    const busy = join(dir, `prebuilt-context-def-q.${tag}.${otherBoot}.${pidns}.${process.pid}.1.AbC123`);
    const quiet = join(dir, `prebuilt-context-def-q.${tag}.${otherBoot}.${pidns}.4194303.1.AbC123`);
    // A run of another boot that last touched its directory more than a day ago: gone, whoever it was.
    const idle = join(dir, `prebuilt-context-def-q.${tag}.${otherBoot}.${pidns}.4194303.2.AbC123`);
    // The form without /proc (macOS) names no boot: a pid that does not run here may be another machine's live run.
    const wallClock = join(dir, `prebuilt-context-def-r.${tag}.4194303.${Date.now().toString(36)}.AbC123`);
    for (const path of [busy, quiet, idle, wallClock]) await mkdir(path);
    await utimes(quiet, new Date(Date.now() - OTHER_BOOT_IDLE_MS + 3_600_000), new Date(Date.now() - OTHER_BOOT_IDLE_MS + 3_600_000));
    await utimes(idle, dayAgo(), dayAgo());
    try {
      expect(await sweepStaleRunTempDirs({ tempDir: dir })).toEqual([idle]);
      expect((await readdir(dir)).sort()).toEqual([busy, quiet, wallClock, mine].map((p) => p.slice(dir.length + 1)).sort());
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a run touches the dirs it made while it lives (so a sweep of another boot sees it live), and forgets those removed', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'prebuilt-sweep-touch-'));
    try {
      const kept = await createRunTempDir('prebuilt-context-', { tempDir: dir });
      const removed = await createRunTempDir('prebuilt-context-', { tempDir: dir });
      await utimes(kept, dayAgo(), dayAgo());
      await rm(removed, { recursive: true });
      await touchRunTempDirs();
      expect(Date.now() - (await stat(kept)).mtimeMs).toBeLessThan(60_000);
      expect(existsSync(removed)).toBe(false);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('keeps the dirs of a live run whose node started seconds after its pid (exec from a shell shim, a loaded machine)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'prebuilt-sweep-late-'));
    // Past the 2 s that two start times may differ: the kernel's start of the pid is the shell's.
    const late = await child(dir, 2.5);
    try {
      expect(await sweepStaleRunTempDirs({ tempDir: dir })).toEqual([]);
      expect(await readdir(dir)).toEqual([late.path.slice(dir.length + 1)]);
    } finally {
      await late.kill('SIGTERM');
    }
    expect(await sweepStaleRunTempDirs({ tempDir: dir })).toEqual([late.path]);
  }, 20_000);

  it('removes only real directories of this user: an entry named for a dead run that another user made, or a symlink, is left alone', async () => {
    // In a shared temp dir anyone can make such a name (the host tag is the hash of the hostname):
    // inside another user's directory they can swap a subdirectory for a symlink while it is being
    // removed, and the removal would follow it into the victim's files.
    const dir = await mkdtemp(join(tmpdir(), 'prebuilt-sweep-owner-'));
    const tag = createHash('sha256').update(hostname()).digest('hex').slice(0, 8);
    const hourAgo = (Date.now() - 3_600_000).toString(36);
    const dead = (suffix: string): string => join(dir, `prebuilt-context-def-r.${tag}.${process.pid}.${hourAgo}.${suffix}`);
    const victim = await mkdtemp(join(tmpdir(), 'prebuilt-sweep-victim-'));
    await writeFile(join(victim, 'precious'), 'keep me');
    await symlink(victim, dead('Link01'));
    const own = dead('Mine01');
    await mkdir(own);
    const theirs = dead('Their1');
    await mkdir(theirs);
    const otherUser = process.getuid?.() === 0;
    if (otherUser) await chown(theirs, 65534, 65534); // as root, the test can make it another user's
    // Untouched for a day: the `r.` form names no boot, so only then is it taken for a dead run's.
    for (const path of [own, theirs]) await utimes(path, dayAgo(), dayAgo());
    const removed = await sweepStaleRunTempDirs({ tempDir: dir });
    expect(removed.sort()).toEqual(otherUser ? [own] : [own, theirs].sort());
    expect((await readdir(dir)).sort()).toEqual([dead('Link01'), ...(otherUser ? [theirs] : [])].map((p) => p.slice(dir.length + 1)).sort());
    expect(await readFile(join(victim, 'precious'), 'utf8')).toBe('keep me');
    for (const path of [dir, victim]) await rm(path, { recursive: true, force: true });
  });

  it.skipIf(noMountNamespace !== undefined)(`keeps the dirs of a live run after the wall clock was stepped (NTP, date -s): the boot time the kernel reports moved, its process did not (${noMountNamespace ?? 'root and unshare'})`, async () => {
    // After a step of the clock, /proc/stat's btime (the wall-clock time of the boot) moves by the
    // step, and the start of every running process computed from it with it. Simulated for the
    // sweeping process only: a /proc/stat whose btime differs by the step, bind-mounted over the
    // real one in a mount namespace of its own.
    const dir = await mkdtemp(join(tmpdir(), 'prebuilt-sweep-clock-'));
    const live = await child(dir);
    try {
      for (const step of [5, -5, 3600]) {
        const stat = await readFile('/proc/stat', 'utf8');
        const fake = join(dir, `stat${step}`);
        await writeFile(fake, stat.replace(/^btime (\d+)$/m, (_, btime: string) => `btime ${Number(btime) + step}`));
        const sweep = `const { sweepStaleRunTempDirs } = await import(${JSON.stringify(distModule)});
process.stdout.write(JSON.stringify(await sweepStaleRunTempDirs({ tempDir: ${JSON.stringify(dir)} })));`;
        const { stdout } = await run('unshare', ['-m', '--propagation', 'private', 'sh', '-c', 'mount --bind "$0" /proc/stat && exec "$@"', fake, process.execPath, '--input-type=module', '-e', sweep]);
        expect(JSON.parse(stdout), `clock stepped by ${step} s`).toEqual([]);
        expect(await readdir(dir), `clock stepped by ${step} s`).toContain(live.path.slice(dir.length + 1));
      }
    } finally {
      await live.kill('SIGTERM');
    }
    expect(await sweepStaleRunTempDirs({ tempDir: dir })).toEqual([live.path]);
    await rm(dir, { recursive: true, force: true });
  }, 20_000);

  it.skipIf(noMountNamespace !== undefined)(`keeps the dirs of a live run of another PID namespace of this machine under the same hostname (pods with hostNetwork sharing a cache volume): its pid means nothing here (${noMountNamespace ?? 'root and unshare'})`, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'prebuilt-sweep-pidns-'));
    const live = await child(dir);
    try {
      const sweep = `const { sweepStaleRunTempDirs } = await import(${JSON.stringify(distModule)});
process.stdout.write(JSON.stringify(await sweepStaleRunTempDirs({ tempDir: ${JSON.stringify(dir)} })));`;
      // A sweep from a PID namespace of its own (with its own /proc), as another container's run would be.
      const { stdout } = await run('unshare', ['--pid', '--fork', '--mount-proc', process.execPath, '--input-type=module', '-e', sweep]);
      expect(JSON.parse(stdout)).toEqual([]);
      expect(await readdir(dir)).toEqual([live.path.slice(dir.length + 1)]);
    } finally {
      await live.kill('SIGTERM');
    }
    // Its own namespace's sweep removes it once the run is gone.
    expect(await sweepStaleRunTempDirs({ tempDir: dir })).toEqual([live.path]);
    await rm(dir, { recursive: true, force: true });
  }, 20_000);
});
