/**
 * The disk the benches' private daemons (dockerd, containerd, the stargz snapshotter) keep their
 * data on: the node's disk of a pull benchmark.
 *
 * This machine's root file system is ext4 **without a journal**. There, to allocate an inode,
 * ext4 skips every inode freed in the last 60 s (`recently_deleted`; 360 s while the inode table
 * block is dirty), rereading inode-table blocks for each: after a large delete — the previous
 * sample's image removed — every file a pull creates costs 200–800 µs instead of ~80 µs, and
 * `tar -x` of the realistic env takes 2–14 s instead of 1.1 s. Nodes run ext4 with a journal (or
 * XFS), where ext4 does not make that check. So by default (`--node-disk journal`) a run makes a
 * fresh ext4 with a journal (mkfs.ext4's defaults) on a loop device, in a sparse file under
 * /var/tmp/prebuilt-bench, mounts it, and removes it at the end. `--node-disk root` keeps the
 * daemons' data on the root file system, as the figures before round 25 were measured.
 *
 * A sparse file only grows: blocks freed inside the loop file system stay allocated in the file, so
 * a long run (B10: ~1 GB written per sample) can fill the host's disk, and the loop device then
 * fails its writes (the file system aborts its journal and goes read-only mid-run). `trim()`
 * (`fstrim`) hands the freed blocks back to the host; B10 runs it after each sample's untimed reset,
 * B9's lazy samples before each fresh snapshotter starts.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const exec = promisify(execFile);

export const NODE_DISKS = ['journal', 'root'];

/**
 * The node's disk of `kind` (`journal` or `root`); `dir(name)` makes a new directory on it. The
 * loop file system is unmounted and its file removed by the cleanup given to `onCleanup` — give
 * this before starting the daemons that use it, so that it runs after they stop.
 */
export async function nodeDisk(kind, onCleanup) {
  if (!NODE_DISKS.includes(kind)) throw new Error(`--node-disk ${kind}: expected one of ${NODE_DISKS.join(', ')}`);
  if (kind === 'root') {
    const root = await mkdtemp('/var/tmp/prebuilt-bench/node-root-');
    onCleanup(() => rm(root, { recursive: true, force: true }));
    return { kind, root, dir: (name) => mkdtemp(join(root, `${name}-`)), trim: async () => undefined };
  }
  await mkdir('/var/tmp/prebuilt-bench', { recursive: true });
  const image = `/var/tmp/prebuilt-bench/node-disk-${process.pid}.img`;
  const root = `/var/tmp/prebuilt-bench/node-disk-${process.pid}`;
  await exec('truncate', ['-s', '60G', image]);
  onCleanup(() => rm(image, { force: true }));
  await exec('mkfs.ext4', ['-q', '-F', image]);
  await mkdir(root, { recursive: true });
  await exec('mount', ['-o', 'loop', image, root]);
  onCleanup(async () => {
    // Daemons' leftover mounts first (overlay, FUSE), then the loop file system (lazily, if still busy).
    await exec('sh', ['-c', `grep -o " ${root}/[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l`]).catch(() => undefined);
    await exec('umount', [root]).catch(() => exec('umount', ['-l', root]));
    await rm(root, { recursive: true, force: true });
  });
  return { kind, root, dir: (name) => mkdtemp(join(root, `${name}-`)), trim: () => exec('fstrim', [root]).then(() => undefined) };
}
