import { chmod, mkdir, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { EnvironmentError, PrebuiltError } from './errors.js';

/**
 * `mkdir -p`: creates `dir` and its missing parents, one level at a time. Node 20's
 * `mkdir(dir, { recursive: true })` never returns where a file system answers ENOENT for an entry
 * under a directory that exists (/proc, /sys: `METAFLOW_PREBUILT_CACHE_DIR=/proc/x` spun at full
 * CPU and ignored SIGTERM); here that ENOENT is the error. A path through a file (ENOTDIR) or one the
 * user may not write (EACCES, EROFS) is the error too, as with `mkdir -p`.
 *
 * With `mode` (0700 for state and cache directories, as XDG asks), every directory it makes gets
 * exactly that mode whatever the umask (under umask 000 a parent made 0777 would let any user rename
 * what prebuilt keeps there and plant their own); directories that already exist are left as they are.
 */
export async function makeDirectory(dir: string, options: { mode?: number } = {}): Promise<void> {
  const missing: string[] = [];
  for (let current = resolve(dir); ; ) {
    const found = await stat(current).then(
      (s) => s,
      (error: NodeJS.ErrnoException) => {
        if (error.code === 'ENOENT') return undefined;
        throw error;
      },
    );
    if (found) {
      // `dir` itself exists: it must be a directory (a missing part's parent that is a file fails its mkdir below).
      if (missing.length === 0 && !found.isDirectory()) {
        throw Object.assign(new Error(`ENOTDIR: not a directory, mkdir '${dir}'`), { code: 'ENOTDIR', path: dir, syscall: 'mkdir' });
      }
      break;
    }
    missing.push(current);
    const parent = dirname(current);
    if (parent === current) break;
    current = parent;
  }
  for (const path of missing.reverse()) {
    const made = await mkdir(path, options.mode === undefined ? undefined : { mode: options.mode }).then(
      () => true,
      async (error: NodeJS.ErrnoException) => {
        if (error.code !== 'EEXIST') throw error;
        // Made meanwhile by another process: fine when it is a directory (or a link to one, as with
        // `mkdir -p`); a file put there is ENOTDIR, as when it was there first.
        const there = await stat(path).catch(() => undefined);
        if (!there?.isDirectory()) throw Object.assign(new Error(`ENOTDIR: not a directory, mkdir '${path}'`), { code: 'ENOTDIR', path, syscall: 'mkdir' });
        return false;
      },
    );
    // The umask may have narrowed (or, for a mode wider than 0700, kept from) what was asked.
    if (made && options.mode !== undefined) await chmod(path, options.mode);
  }
}

/** Why a directory cannot be made, by the system's error code. */
const UNWRITABLE: Record<string, string> = {
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'a read-only file system',
  ENOENT: 'its file system does not take new entries there',
  ENOTDIR: 'a file is in the way',
};

/**
 * `error` of making or writing in `where.dir` as an EnvironmentError (exit 2) saying why the
 * directory cannot be written and the setting that moves it (or the caller's own `hint`), when it is
 * one of those (permission, a read-only or pseudo file system, a file in the way); undefined otherwise.
 */
export function unwritableDirectoryError(error: unknown, where: { dir: string; doing: string; setting?: string; hint?: string; path?: string }): PrebuiltError | undefined {
  const code = String((error as NodeJS.ErrnoException | undefined)?.code);
  const why = UNWRITABLE[code];
  if (why === undefined || PrebuiltError.isInstance(error)) return undefined;
  const path = where.path ?? (error as NodeJS.ErrnoException).path ?? where.dir;
  return new EnvironmentError(`Cannot write ${path} while ${where.doing}: ${why} (${code}).`, {
    cause: error,
    // Where the file goes does not depend on the current directory: moving it is the caller's to say (a setting, an option).
    hint: where.hint ?? (where.setting ? `Set ${where.setting} to a directory you can write, or fix that directory's permissions.` : `Fix the permissions of ${where.dir} for this user.`),
  });
}
