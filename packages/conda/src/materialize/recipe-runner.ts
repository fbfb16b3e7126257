import { createMaterializedRecipeRunner as materializedRunner, type RecipeRunner } from '@prebuilt/core';
import { createEnvMaterializer, type EnvMaterializerOptions } from './env-materializer.js';

export interface MaterializedRecipeRunnerOptions extends EnvMaterializerOptions {
  /** Where build contexts are created (default: the OS temp directory). */
  tempDir?: string;
}

/**
 * The RecipeRunner of the default recipe with this package's materializer: core's materialized
 * recipe runner over {@link createEnvMaterializer}. Same as
 * `createRecipeRunner('materialized', { materializer: createEnvMaterializer(options) })`.
 */
export function createMaterializedRecipeRunner(options: MaterializedRecipeRunnerOptions = {}): RecipeRunner {
  return materializedRunner(createEnvMaterializer(options), options.tempDir ? { tempDir: options.tempDir } : {});
}
