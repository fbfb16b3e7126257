// A private containerd for tests: its own socket, root and state directory under a temp dir
// (never the system instance), optionally with the stargz snapshotter as a proxy plugin.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const exec = promisify(execFile);

/** stdout of a command, or undefined when it fails. */
export async function have(command: string, args: string[]): Promise<string | undefined> {
  return exec(command, args, { timeout: 10_000 }).then(
    ({ stdout }) => stdout.trim(),
    () => undefined,
  );
}

/** Why containerd cannot run containers here, or undefined. */
export async function containerdMissing(): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return 'containerd needs root to run containers';
  if (!(await have('containerd', ['--version']))) return 'containerd is not installed (Debian package containerd, a dependency of docker.io)';
  if (!(await have('ctr', ['--version']))) return 'ctr is not installed';
  if (!(await have('runc', ['--version']))) return 'runc is not installed';
  return undefined;
}

export interface PrivateContainerd {
  dir: string;
  socket: string;
  /** Stops the daemon, unmounts what it left mounted and removes its directory. */
  stop: () => Promise<void>;
}

async function waitFor(check: () => Promise<boolean>, what: string, seconds = 10): Promise<void> {
  for (let i = 0; i < seconds * 10; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what} did not answer within ${seconds} s`);
}

async function stopDaemon(daemon: ChildProcess | undefined): Promise<void> {
  if (!daemon?.pid || daemon.exitCode !== null) return;
  daemon.kill('SIGTERM');
  await new Promise((r) => (daemon.exitCode !== null ? r(undefined) : daemon.once('exit', r)));
}

/**
 * Starts containerd on `<dir>/containerd.sock`; with `stargz`, a proxy snapshotter plugin named
 * `stargz` on `<dir>/stargz.sock`, served by the `containerd-stargz-grpc` the caller starts.
 */
export async function startContainerd(options: { stargz?: boolean } = {}): Promise<PrivateContainerd> {
  const dir = await mkdtemp(join(tmpdir(), 'prebuilt-containerd-'));
  const socket = join(dir, 'containerd.sock');
  await mkdir(join(dir, 'root'));
  const lines = [
    'version = 2',
    `root = "${join(dir, 'root')}"`,
    `state = "${join(dir, 'state')}"`,
    'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
    '[grpc]',
    `  address = "${socket}"`,
    '[ttrpc]',
    `  address = "${socket}.ttrpc"`,
    '[debug]',
    '  address = ""',
    '[metrics]',
    '  address = ""',
    ...(options.stargz ? ['[proxy_plugins]', '  [proxy_plugins.stargz]', '    type = "snapshot"', `    address = "${join(dir, 'stargz.sock')}"`] : []),
  ];
  await writeFile(join(dir, 'config.toml'), `${lines.join('\n')}\n`);
  const daemon = spawn('containerd', ['-c', join(dir, 'config.toml')], { stdio: 'ignore' });
  const stop = async (): Promise<void> => {
    await stopDaemon(daemon);
    // Snapshots may still be mounted under the directory; unmount before removing.
    await exec('sh', ['-c', `grep -o " ${dir}[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l`]).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await waitFor(async () => (await have('ctr', ['-a', socket, 'version'])) !== undefined, `containerd on ${socket}`);
  } catch (error) {
    await stop();
    throw error;
  }
  return { dir, socket, stop };
}

/** Why the stargz snapshotter cannot run here (containerd's reasons, or its binaries missing), or undefined. */
export async function stargzMissing(): Promise<string | undefined> {
  const reason = await containerdMissing();
  if (reason) return reason;
  if ((await have('sh', ['-c', 'command -v containerd-stargz-grpc'])) === undefined) {
    return 'containerd-stargz-grpc is not installed (Debian bookworm\'s stargz-snapshotter 0.12 ships only ctr-remote; bash scripts/build-stargz-grpc.sh builds it)';
  }
  if ((await have('ctr-remote', ['--version'])) === undefined) return 'ctr-remote is not installed (Debian package stargz-snapshotter)';
  return undefined;
}

/**
 * A private containerd with `containerd-stargz-grpc` as its `stargz` snapshotter, configured by
 * `stargzToml` (the snapshotter's config.toml); `stop` stops both and removes their directory.
 */
export async function startStargzNode(stargzToml: string): Promise<PrivateContainerd> {
  const containerd = await startContainerd({ stargz: true });
  const dir = containerd.dir;
  await mkdir(join(dir, 'stargz-root'));
  await writeFile(join(dir, 'stargz.toml'), stargzToml);
  const snapshotter = spawn('containerd-stargz-grpc', ['--address', join(dir, 'stargz.sock'), '--root', join(dir, 'stargz-root'), '--config', join(dir, 'stargz.toml')], { stdio: 'ignore' });
  const stop = async (): Promise<void> => {
    await stopDaemon(snapshotter);
    await containerd.stop();
  };
  // The snapshotter listens a little after it starts (on a busy machine, seconds).
  const listening = async (): Promise<boolean> => existsSync(join(dir, 'stargz.sock')) && (await have('ctr', ['-a', containerd.socket, 'plugins', 'ls', '-d', 'id==stargz'])) !== undefined;
  try {
    await waitFor(listening, `the stargz snapshotter on ${dir}/stargz.sock`, 30);
  } catch (error) {
    await stop();
    throw error;
  }
  return { ...containerd, stop };
}
