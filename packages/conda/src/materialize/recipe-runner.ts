import { rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import {
  createRunTempDir,
  diskFullError,
  materializedRecipe,
  MATERIALIZED_RECIPE_VERSION,
  PREFIX_LAYERS_FILE,
  PREFIX_LAYERS_VERSION,
  serializePrefixLayers,
  writeContextFiles,
  writeFileAtomic,
  type PreparedBuild,
  type RecipeRunner,
} from '@prebuilt/core';
import { PackageCache, type PackageCacheOptions } from '../cache/package-cache.js';
import { materializeEnv, type MaterializeResult } from './materialize.js';

export interface MaterializedRecipeRunnerOptions extends PackageCacheOptions {
  /** A cache to share (default: a PackageCache from the cache options). */
  cache?: PackageCache;
  /** Where build contexts are created (default: the OS temp directory). */
  tempDir?: string;
  /** Seconds since 1970 for every mtime in the prefix (default: SOURCE_DATE_EPOCH, else 0). */
  mtime?: number;
  /** Receives each materialized env's result, e.g. to show its warnings (link scripts). */
  onMaterialized?: (envId: string, result: MaterializeResult) => void;
}

/**
 * The RecipeRunner of the default recipe: materializes the locked env into `prefix/` of a fresh
 * build context and renders the materialized Dockerfile (COPY, ENV, LABEL only).
 */
export function createMaterializedRecipeRunner(options: MaterializedRecipeRunnerOptions = {}): RecipeRunner {
  const cache = options.cache ?? new PackageCache(options);
  return {
    name: 'materialized',
    version: MATERIALIZED_RECIPE_VERSION,
    async prepare(input): Promise<PreparedBuild> {
      const recipe = materializedRecipe({ lock: input.lock, envId: input.envId, prefix: input.prefix, base: input.base });
      const contextDir = await createRunTempDir(`prebuilt-context-${input.envId}-`, options.tempDir ? { tempDir: options.tempDir } : {});
      try {
        const result = await materializeEnv({
          lock: input.lock,
          prefix: input.prefix,
          outDir: join(contextDir, recipe.prefixContextDir ?? 'prefix'),
          cache,
          ...(options.mtime !== undefined ? { mtime: options.mtime } : {}),
          ...(input.signal ? { signal: input.signal } : {}),
          onProgress: (progress) => {
            if (progress.phase === 'download') {
              input.onProgress?.({ phase: 'downloading', done: progress.download.filesDone, total: progress.download.filesTotal });
            } else {
              input.onProgress?.({ phase: 'materializing', done: progress.done, total: progress.total });
            }
          },
        });
        await writeContextFiles(contextDir, recipe.contextFiles);
        // Which prefix entries each package installed: lets a layer-assembling build service (oci)
        // give every package its own layer. The Dockerfile never copies it.
        const prefixDir = recipe.prefixContextDir ?? 'prefix';
        await writeFileAtomic(
          join(contextDir, PREFIX_LAYERS_FILE),
          serializePrefixLayers({ version: PREFIX_LAYERS_VERSION, prefixDir, packages: result.packageFiles }),
        );
        options.onMaterialized?.(input.envId, result);
      } catch (error) {
        await rm(contextDir, { recursive: true, force: true });
        // A full disk names the build context's directory and TMPDIR (the package cache's own names METAFLOW_PREBUILT_CACHE_DIR).
        throw diskFullError(error, { dir: dirname(contextDir), doing: `materializing env ${input.envId} into ${contextDir}`, setting: 'TMPDIR' }) ?? error;
      }
      return { dockerfile: recipe.dockerfile, contextDir, dispose: () => rm(contextDir, { recursive: true, force: true }) };
    },
  };
}
