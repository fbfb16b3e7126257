import type { EnvMaterializer, EnvProgress } from '@prebuilt/core';
import { PackageCache, type PackageCacheOptions } from '../cache/package-cache.js';
import { materializeEnv, type MaterializeProgress, type MaterializeResult } from './materialize.js';

export interface EnvMaterializerOptions extends PackageCacheOptions {
  /** A cache to share (default: a PackageCache from the cache options). */
  cache?: PackageCache;
  /** Seconds since 1970 for every mtime in the prefix (default: SOURCE_DATE_EPOCH, else 0). */
  mtime?: number;
  /** Receives each materialized env's result, e.g. to show its warnings (link scripts). */
  onMaterialized?: (envId: string, result: MaterializeResult) => void;
}

/** A materializer's progress as core's deploy reports it: files downloaded, then packages installed. */
function envProgress(progress: MaterializeProgress): EnvProgress {
  return progress.phase === 'download'
    ? { phase: 'downloading', done: progress.download.filesDone, total: progress.download.filesTotal }
    : { phase: 'materializing', done: progress.done, total: progress.total };
}

/**
 * Core's `EnvMaterializer` over `materializeEnv` and the package cache: lays a locked env's prefix
 * out in the directory core's materialized recipe runner gives, and returns which entries each
 * package installed. Core renders the Dockerfile and writes the rest of the build context.
 */
export function createEnvMaterializer(options: EnvMaterializerOptions = {}): EnvMaterializer {
  const cache = options.cache ?? new PackageCache(options);
  return {
    async materialize(request) {
      const onProgress = request.onProgress;
      const result = await materializeEnv({
        lock: request.lock,
        prefix: request.prefix,
        outDir: request.outDir,
        cache,
        ...(request.prune ? { prune: request.prune } : {}),
        ...(options.mtime !== undefined ? { mtime: options.mtime } : {}),
        ...(request.signal ? { signal: request.signal } : {}),
        ...(onProgress ? { onProgress: (progress: MaterializeProgress) => onProgress(envProgress(progress)) } : {}),
      });
      options.onMaterialized?.(request.envId, result);
      return { packages: result.packageFiles };
    },
  };
}
