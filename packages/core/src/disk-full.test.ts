import { describe, expect, it } from 'vitest';
import { diskFullError, isDiskFull } from './disk-full.js';
import { ExitCode, PrebuiltError } from './errors.js';

const errno = (code: string, message = `${code}: something, write`): NodeJS.ErrnoException => Object.assign(new Error(message), { code });

describe('full disks', () => {
  it('recognises ENOSPC and EDQUOT, also wrapped in causes, and nothing else', () => {
    expect(isDiskFull(errno('ENOSPC'))).toBe(true);
    expect(isDiskFull(errno('EDQUOT', 'quota'))).toBe(true);
    expect(isDiskFull(new Error('extracting pkg failed', { cause: new Error('writing', { cause: errno('ENOSPC') }) }))).toBe(true);
    expect(isDiskFull(errno('EACCES'))).toBe(false);
    expect(isDiskFull('ENOSPC')).toBe(false);
  });

  it('names the directory, what was being done and the setting that moves it; exit 2', () => {
    const error = diskFullError(errno('ENOSPC'), { dir: '/c/pkgs', doing: 'downloading x.conda', setting: 'METAFLOW_PREBUILT_CACHE_DIR' });
    expect(PrebuiltError.isInstance(error)).toBe(true);
    expect(error!.message).toBe('No space left on the device of /c/pkgs while downloading x.conda.');
    expect(error!.hint).toBe('Free space there, or set METAFLOW_PREBUILT_CACHE_DIR to a directory on a disk with room.');
    expect(error!.exitCode).toBe(ExitCode.usage);
    // Wrapped again higher up, the innermost (most precise) one stays.
    expect(diskFullError(new Error('outer', { cause: error }), { dir: '/tmp', doing: 'materializing', setting: 'TMPDIR' })).toBe(error);
    expect(diskFullError(errno('EACCES'), { dir: '/c', doing: 'x' })).toBeUndefined();
  });
});
