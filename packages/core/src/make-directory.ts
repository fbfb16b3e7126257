import { mkdir, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';

/**
 * `mkdir -p`: creates `dir` and its missing parents, one level at a time. Node 20's
 * `mkdir(dir, { recursive: true })` never returns where a file system answers ENOENT for an entry
 * under a directory that exists (/proc, /sys: `METAFLOW_PREBUILT_CACHE_DIR=/proc/x` spun at full
 * CPU and ignored SIGTERM); here that ENOENT is the error. A path through a file (ENOTDIR) or one the
 * user may not write (EACCES, EROFS) is the error too, as with `mkdir -p`.
 */
export async function makeDirectory(dir: string): Promise<void> {
  const missing: string[] = [];
  for (let current = resolve(dir); ; ) {
    const found = await stat(current).then(
      (s) => s,
      (error: NodeJS.ErrnoException) => {
        if (error.code === 'ENOENT') return undefined;
        throw error;
      },
    );
    if (found) break;
    missing.push(current);
    const parent = dirname(current);
    if (parent === current) break;
    current = parent;
  }
  for (const path of missing.reverse()) {
    await mkdir(path).catch((error: NodeJS.ErrnoException) => {
      // Made meanwhile by another process: fine, when it is a directory.
      if (error.code !== 'EEXIST') throw error;
    });
  }
  if (missing.length === 0 && !(await stat(dir)).isDirectory()) {
    throw Object.assign(new Error(`ENOTDIR: not a directory, mkdir '${dir}'`), { code: 'ENOTDIR', path: dir, syscall: 'mkdir' });
  }
}
