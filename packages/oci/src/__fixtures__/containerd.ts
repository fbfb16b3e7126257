// A private containerd for tests: its own socket, root and state directory under a temp dir
// (never the system instance), optionally with the stargz snapshotter as a proxy plugin.
import { execFile, spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { mkdir, mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll } from 'vitest';

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
  if (!daemon?.pid || daemon.exitCode !== null || daemon.signalCode !== null) return;
  daemon.kill('SIGTERM');
  await new Promise((r) => (daemon.exitCode !== null || daemon.signalCode !== null ? r(undefined) : daemon.once('exit', r)));
}

/**
 * Starts containerd on `<dir>/containerd.sock`; with `stargz`, a proxy snapshotter plugin named
 * `stargz` on `<dir>/stargz.sock`, served by the `containerd-stargz-grpc` the caller starts.
 */
export async function startContainerd(options: ContainerdOptions = {}): Promise<PrivateContainerd> {
  return startContainerdIn(await mkdtemp(join(tmpdir(), 'prebuilt-containerd-')), options);
}

export interface ContainerdOptions {
  stargz?: boolean;
  /**
   * A directory with another containerd and its shims (e.g. the test services' containerd 1.7 under
   * `modernDocker.root`/usr/bin), put first on its PATH; default: the system's containerd.
   */
  binDir?: string;
  /** More directories for its PATH, after `binDir` (e.g. where mkfs.erofs is, for the erofs differ). */
  path?: string[];
  /**
   * The erofs snapshotter and differ of containerd >= 2.1 (`binDir` must hold one; config version 3):
   * linux/amd64 layers are unpacked as EROFS images (`mkfs.erofs --tar=f` for tar layers), the
   * overlayfs snapshotter with the walking differ stays available.
   */
  erofs?: boolean;
  /** containerd's output goes to `<dir>/containerd.log` (default: discarded). */
  log?: boolean;
}

/** The erofs snapshotter and differ, unpacking linux/amd64 images (containerd >= 2.1, config version 3). */
const EROFS_CONFIG = [
  '[plugins."io.containerd.service.v1.diff-service"]',
  '  default = ["erofs", "walking"]',
  '[[plugins."io.containerd.transfer.v1.local".unpack_config]]',
  '  platform = "linux/amd64"',
  '  snapshotter = "erofs"',
  '  differ = "erofs"',
  '[[plugins."io.containerd.transfer.v1.local".unpack_config]]',
  '  platform = "linux/amd64"',
  '  snapshotter = "overlayfs"',
  '  differ = "walking"',
];

/** containerd's config.toml for a daemon whose socket, root and state are in `dir`. */
function configToml(dir: string, socket: string, options: ContainerdOptions): string {
  const lines = [
    options.erofs ? 'version = 3' : 'version = 2',
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
    ...(options.erofs ? EROFS_CONFIG : []),
  ];
  return `${lines.join('\n')}\n`;
}

/** startContainerd in a directory made already (the stargz snapshotter's socket may be in it). */
async function startContainerdIn(dir: string, options: ContainerdOptions): Promise<PrivateContainerd> {
  const socket = join(dir, 'containerd.sock');
  await mkdir(join(dir, 'root'));
  await writeFile(join(dir, 'config.toml'), configToml(dir, socket, options));
  const { binDir } = options;
  const path = [...(binDir ? [binDir] : []), ...(options.path ?? []), process.env['PATH'] ?? ''].join(':');
  const output = options.log ? await open(join(dir, 'containerd.log'), 'a') : undefined;
  const stdio: StdioOptions = output ? ['ignore', output.fd, output.fd] : 'ignore';
  const daemon = spawn(binDir ? join(binDir, 'containerd') : 'containerd', ['-c', join(dir, 'config.toml')], { stdio, env: { ...process.env, PATH: path } });
  await output?.close();
  const stop = async (): Promise<void> => {
    await stopDaemon(daemon);
    // Snapshots may still be mounted under the directory; unmount before removing.
    await exec('sh', ['-c', `grep -o " ${dir}[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l`]).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  };
  const ctr = binDir ? join(binDir, 'ctr') : 'ctr';
  try {
    await waitFor(async () => (await have(ctr, ['-a', socket, 'version'])) !== undefined, `containerd on ${socket}`);
  } catch (error) {
    await stop();
    throw error;
  }
  return { dir, socket, stop };
}

/** A daemon `start`ed before the enclosing describe's tests and stopped after them (for its tests: the daemon). */
export function useDaemon<T extends { stop: () => Promise<void> }>(start: () => Promise<T>): () => T {
  let daemon: T | undefined;
  beforeAll(async () => {
    daemon = await start();
  }, 60_000);
  afterAll(() => daemon?.stop(), 60_000);
  return () => daemon!;
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

/** Whether a unix socket accepts a connection (something listens on it, not merely a socket file). */
export function accepts(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ path });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** containerd-stargz-grpc serving `<dir>/stargz.sock`; its stderr's last 4 KB kept for an error message. */
function spawnSnapshotter(dir: string): { child: ChildProcess; stderr: () => string } {
  const child = spawn('containerd-stargz-grpc', ['--address', join(dir, 'stargz.sock'), '--root', join(dir, 'stargz-root'), '--config', join(dir, 'stargz.toml')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let tail = '';
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (tail = (tail + chunk).slice(-4096)));
  return { child, stderr: () => tail.trim() };
}

/**
 * A private containerd with `containerd-stargz-grpc` as its `stargz` snapshotter, configured by
 * `stargzToml` (the snapshotter's config.toml); `stop` stops both and removes their directory.
 *
 * The snapshotter starts FIRST and containerd only once the snapshotter's socket accepts
 * connections: containerd's proxy plugin dials its socket as soon as containerd starts, polling
 * for the file every 10 ms, and a socket file that exists but does not listen yet (Go's
 * net.Listen binds, then listens: on a loaded machine the snapshotter can be descheduled between
 * the two) answers "connection refused" — which containerd's gRPC channel then keeps returning to
 * every snapshot call for its reconnect backoff (1 s, up to 3 s), while a check that only sees the
 * socket file and the plugin listed says ready. Ready here means a snapshot call through
 * containerd reached the snapshotter.
 */
export async function startStargzNode(stargzToml: string): Promise<PrivateContainerd> {
  const dir = await mkdtemp(join(tmpdir(), 'prebuilt-containerd-'));
  await mkdir(join(dir, 'stargz-root'));
  await writeFile(join(dir, 'stargz.toml'), stargzToml);
  const snapshotter = spawnSnapshotter(dir);
  let containerd: PrivateContainerd | undefined;
  const stop = async (): Promise<void> => {
    await stopDaemon(snapshotter.child);
    if (containerd) await containerd.stop();
    else await rm(dir, { recursive: true, force: true });
  };
  const alive = (): void => {
    const code = snapshotter.child.exitCode ?? snapshotter.child.signalCode;
    if (code !== null) throw new Error(`containerd-stargz-grpc exited (${code}) before serving ${dir}/stargz.sock: ${snapshotter.stderr() || 'no output'}`);
  };
  let probes = 0;
  const probe = async (): Promise<boolean> => {
    const snapshots = ['-a', containerd!.socket, 'snapshots', '--snapshotter', 'stargz'];
    const key = `prebuilt-ready-probe-${probes++}`; // a new key each try: one prepared by a try whose answer was lost is no obstacle
    if ((await have('ctr', [...snapshots, 'prepare', key])) === undefined) return false;
    return (await have('ctr', [...snapshots, 'rm', key])) !== undefined;
  };
  try {
    // On a busy machine the snapshotter listens seconds after it starts.
    await waitFor(async () => (alive(), accepts(join(dir, 'stargz.sock'))), `the stargz snapshotter on ${dir}/stargz.sock`, 30);
    containerd = await startContainerdIn(dir, { stargz: true });
    await waitFor(async () => (alive(), probe()), `a snapshot call through containerd to the stargz snapshotter on ${dir}/stargz.sock`, 30);
  } catch (error) {
    await stop();
    throw error;
  }
  return { ...containerd, stop };
}
