// containerd >= 2.1 with the erofs snapshotter and differ, for tests that show an image runs there:
// the test services' containerd (Debian forky's, `erofsContainerd` in services.json: no daemon,
// only its unpacked root) started as a private instance for one test file (own socket, root, state
// and log under a temp dir), with the mkfs.erofs >= 1.8 its differ runs on its PATH and the
// system's runc (forky's needs glibc 2.38). Images are pulled and run with `--snapshotter erofs`:
// each layer becomes `<snapshot>/layer.erofs`, mounted by the kernel (erofs, no loop device) when a
// container uses it. A tar layer is converted by `mkfs.erofs --tar=f` (a line in containerd's log);
// a native EROFS layer would not be.
//
// Reuse (e.g. for the oci service's native EROFS layers), in a describeOrFailInCi(name, reason, …):
//   const reason = missingFor(['registries', 'baseImage']) ?? (await erofsContainerdMissing());
//   image = await buildEnvImage('x', { env: { METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION: 'erofs', … } });
//   const node = useErofsContainerd();   // then node().pull(image.tag), node().run(image.tag, [...]),
//                                        // node().layers(), node().mkfsRuns() (base layers' only)
import { execFile } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { have, startContainerd, useDaemon, type PrivateContainerd } from './containerd.js';
import { missingFor, services } from './services.js';

const exec = promisify(execFile);

/** Where the erofs snapshotter keeps its snapshots, under containerd's root. */
export const EROFS_SNAPSHOTTER_ROOT = join('root', 'io.containerd.snapshotter.v1.erofs', 'snapshots');

/** Why containerd 2.1 with the erofs snapshotter cannot run containers here, or undefined. */
export async function erofsContainerdMissing(): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return 'containerd needs root to run containers';
  const absent = missingFor(['erofsContainerd']);
  if (absent) return absent;
  if (!(await have('runc', ['--version']))) return 'runc is not installed: apt-get install -y runc (Debian forky\'s runc needs glibc 2.38, so the system\'s is used)';
  const filesystems = await readFile('/proc/filesystems', 'utf8').catch(() => '');
  if (!/\berofs$/m.test(filesystems)) return 'the kernel has no erofs filesystem (/proc/filesystems): modprobe erofs, or a kernel with CONFIG_EROFS_FS';
  return undefined;
}

/** A committed erofs snapshot: its `layer.erofs`, and where the kernel has it mounted (erofs) now, if it does. */
export interface ErofsLayer {
  file: string;
  mountedAt: string | undefined;
}

export interface ErofsContainerd extends PrivateContainerd {
  /** containerd 2.1's ctr against this daemon: its stdout. */
  ctr: (args: string[], timeoutMs?: number) => Promise<string>;
  /** `ctr images pull --plain-http --snapshotter erofs`: fetched and unpacked to EROFS. */
  pull: (ref: string) => Promise<void>;
  /** `ctr run --rm --net-host --snapshotter erofs` of a pulled image: the command's stdout. */
  run: (ref: string, command: string[]) => Promise<string>;
  /** The erofs snapshots that hold a `layer.erofs` (one per unpacked layer), and their mounts. */
  layers: () => Promise<ErofsLayer[]>;
  /** How many times the erofs differ ran mkfs.erofs (each a tar layer converted), from containerd's log. */
  mkfsRuns: () => Promise<number>;
}

let runs = 0;

/** The erofs mounts in /proc/mounts: source (the layer.erofs) → mount point. */
async function erofsMounts(): Promise<Map<string, string>> {
  const lines = (await readFile('/proc/mounts', 'utf8')).split('\n').map((line) => line.split(' '));
  return new Map(lines.filter((fields) => fields[2] === 'erofs').map((fields) => [fields[0]!, fields[1]!]));
}

/** Starts the test services' containerd 2.1 with the erofs snapshotter; check erofsContainerdMissing first. */
export async function startErofsContainerd(): Promise<ErofsContainerd> {
  const erofs = services.erofsContainerd!;
  const binDir = join(erofs.root, 'usr', 'bin');
  const containerd = await startContainerd({ binDir, path: [dirname(erofs.mkfsErofs.path)], erofs: true, log: true });
  const ctr = async (args: string[], timeout = 300_000): Promise<string> =>
    (await exec(join(binDir, 'ctr'), ['-a', containerd.socket, ...args], { timeout, maxBuffer: 1 << 26 })).stdout;
  const layers = async (): Promise<ErofsLayer[]> => {
    const root = join(containerd.dir, EROFS_SNAPSHOTTER_ROOT);
    const [ids, mounts] = await Promise.all([readdir(root).catch(() => []), erofsMounts()]);
    const found: ErofsLayer[] = [];
    for (const id of ids.sort((a, b) => Number(a) - Number(b))) {
      const file = join(root, id, 'layer.erofs');
      if ((await readdir(join(root, id))).includes('layer.erofs')) found.push({ file, mountedAt: mounts.get(file) });
    }
    return found;
  };
  const mkfsRuns = async (): Promise<number> => {
    const log = await readFile(join(containerd.dir, 'containerd.log'), 'utf8');
    return log.split('\n').filter((line) => /running \S*mkfs\.erofs /.test(line)).length;
  };
  return {
    ...containerd,
    ctr,
    pull: async (ref) => void (await ctr(['images', 'pull', '--plain-http', '--snapshotter', 'erofs', ref])),
    run: (ref, command) => ctr(['run', '--rm', '--net-host', '--snapshotter', 'erofs', ref, `prebuilt-erofs-${process.pid}-${runs++}`, ...command], 120_000),
    layers,
    mkfsRuns,
  };
}

/** A private containerd 2.1 with the erofs snapshotter for the enclosing describe: started before its tests, stopped after them. */
export function useErofsContainerd(): () => ErofsContainerd {
  return useDaemon(startErofsContainerd);
}
