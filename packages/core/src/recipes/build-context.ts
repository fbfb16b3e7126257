import { rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { PreparedBuild } from '../contracts.js';
import { diskFullError } from '../disk-full.js';
import { createRunTempDir } from '../run-temp-dir.js';

export interface BuildContextOptions {
  envId: string;
  dockerfile: string;
  /** Where the context directory is created (default: the OS temp directory). */
  tempDir?: string;
  /** Fills the fresh context directory. */
  fill(contextDir: string): Promise<void>;
  /** What filling it is, for a full disk's message (`materializing env …`); without it the error is rethrown as it is. */
  doing?: (contextDir: string) => string;
}

/**
 * A fresh build context for one env (`prebuilt-context-<envId>-…` in the temp directory, swept
 * when its process is gone), filled by the recipe runner; removed again when filling it fails,
 * and by `dispose()` once the image is built.
 */
export async function prepareBuildContext(options: BuildContextOptions): Promise<PreparedBuild> {
  const contextDir = await createRunTempDir(`prebuilt-context-${options.envId}-`, options.tempDir ? { tempDir: options.tempDir } : {});
  const dispose = (): Promise<void> => rm(contextDir, { recursive: true, force: true });
  try {
    await options.fill(contextDir);
  } catch (error) {
    await dispose();
    // A full disk names the build context's directory and TMPDIR (the package cache's own names METAFLOW_PREBUILT_CACHE_DIR).
    throw (options.doing && diskFullError(error, { dir: dirname(contextDir), doing: options.doing(contextDir), setting: 'TMPDIR' })) || error;
  }
  return { dockerfile: options.dockerfile, contextDir, dispose };
}
