import { rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { PreparedBuild } from '../contracts.js';
import { diskFullError } from '../disk-full.js';
import { createRunTempDir, createRunTempDirIn } from '../run-temp-dir.js';

export interface BuildContextOptions {
  envId: string;
  dockerfile: string;
  /** Where the context directory is created, made when missing (default: the OS temp directory). */
  tempDir?: string;
  /** The setting that moves `tempDir`, named when it is full or cannot be written (default: none with `tempDir`, TMPDIR without). */
  tempDirSetting?: string;
  /** Fills the fresh context directory. */
  fill(contextDir: string): Promise<void>;
  /** What filling it is, for a full disk's message (`materializing env …`); without it the error is rethrown as it is. */
  doing?: (contextDir: string) => string;
}

/**
 * A fresh build context for one env (`prebuilt-context-<envId>-…` in `tempDir` — the CLI's is
 * `<prebuilt cache>/contexts`, beside the extraction cache the env is hard-linked from — or the OS
 * temp directory; swept when its process is gone), filled by the recipe runner; removed again when filling it fails,
 * and by `dispose()` once the image is built.
 */
export async function prepareBuildContext(options: BuildContextOptions): Promise<PreparedBuild> {
  const setting = options.tempDir ? options.tempDirSetting : 'TMPDIR';
  const prefix = `prebuilt-context-${options.envId}-`;
  const doing = `making the build context of env ${options.envId}`;
  // Under tempDir, made when missing (one that cannot be made says why and names the setting), or the OS temp directory.
  const contextDir = options.tempDir ? await createRunTempDirIn(options.tempDir, prefix, { doing, ...(setting ? { setting } : {}) }) : await createRunTempDir(prefix);
  const dispose = (): Promise<void> => rm(contextDir, { recursive: true, force: true });
  try {
    await options.fill(contextDir);
  } catch (error) {
    await dispose();
    // A full disk names the build context's directory and the setting that moves it.
    throw (options.doing && diskFullError(error, { dir: dirname(contextDir), doing: options.doing(contextDir), ...(setting ? { setting } : {}) })) || error;
  }
  return { dockerfile: options.dockerfile, contextDir, dispose };
}
