import { DiskFullError, PrebuiltError } from './errors.js';

const CODES = new Set(['ENOSPC', 'EDQUOT']);

/** Whether `error`, or an error it wraps (its `cause` chain), is a full disk or an exceeded quota. */
export function isDiskFull(error: unknown): boolean {
  for (let current = error, depth = 0; current instanceof Error && depth < 10; current = current.cause, depth += 1) {
    if (PrebuiltError.isInstance(current) && current.code === 'disk-full') return true;
    if (CODES.has(String((current as NodeJS.ErrnoException).code))) return true;
    if (/\bENOSPC\b|no space left on device/i.test(current.message)) return true;
  }
  return false;
}

/**
 * `error` as a DiskFullError naming the directory and the setting that moves it, when it is a full
 * disk; undefined otherwise. A DiskFullError raised deeper (it already names its directory) is
 * returned as it is.
 */
export function diskFullError(
  error: unknown,
  where: { dir: string; doing: string; setting?: string },
): PrebuiltError | undefined {
  for (let current = error, depth = 0; current instanceof Error && depth < 10; current = current.cause, depth += 1) {
    if (PrebuiltError.isInstance(current) && current.code === 'disk-full') return current;
  }
  if (!isDiskFull(error)) return undefined;
  const quota = error instanceof Error && (error as NodeJS.ErrnoException).code === 'EDQUOT';
  return new DiskFullError(
    `No space left on the device of ${where.dir} while ${where.doing}${quota ? ' (disk quota exceeded)' : ''}.`,
    { dir: where.dir, ...(where.setting ? { setting: where.setting } : {}) },
    {
      cause: error,
      hint: where.setting
        ? `Free space there, or set ${where.setting} to a directory on a disk with room.`
        : 'Free space on that disk and run again.',
    },
  );
}
