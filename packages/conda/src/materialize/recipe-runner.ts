import { createMaterializedRecipeRunner as materializedRunner, type PrunePreset, type RecipeRunner } from '@prebuilt/core';
import { createEnvMaterializer, type EnvMaterializerOptions } from './env-materializer.js';

export interface MaterializedRecipeRunnerOptions extends EnvMaterializerOptions {
  /** Where build contexts are created (default: the OS temp directory). */
  tempDir?: string;
  /** What to leave out of the env (core's prune presets); it feeds the envId when non-empty. Default nothing. */
  prune?: readonly PrunePreset[];
}

/**
 * The RecipeRunner of the default recipe with this package's materializer: core's materialized
 * recipe runner over {@link createEnvMaterializer}. Same as
 * `createRecipeRunner('materialized', { materializer: createEnvMaterializer(options) })`.
 */
export function createMaterializedRecipeRunner(options: MaterializedRecipeRunnerOptions = {}): RecipeRunner {
  return materializedRunner(createEnvMaterializer(options), { ...(options.tempDir ? { tempDir: options.tempDir } : {}), ...(options.prune ? { prune: options.prune } : {}) });
}
