import type { EnvMaterializer, RecipeRunner } from '../contracts.js';
import { ConfigError, PrebuiltError } from '../errors.js';
import { PRUNE_ENV, type PrunePreset } from '../prune.js';
import { prepareBuildContext } from './build-context.js';
import { writeContextFiles } from './context-files.js';
import { materializedRecipe, MATERIALIZED_RECIPE_VERSION } from './materialized.js';
import { createMaterializedRecipeRunner } from './materialized-runner.js';
import { micromambaRecipe, MICROMAMBA_RECIPE_VERSION, type MicromambaRecipeOptions } from './micromamba.js';
import type { Recipe, RecipeInput, RecipeName } from './recipe.js';

/** The version of a recipe (it feeds the envId). */
export function recipeVersion(name: RecipeName): string {
  return name === 'materialized' ? MATERIALIZED_RECIPE_VERSION : MICROMAMBA_RECIPE_VERSION;
}

/** Renders the named recipe. */
export function renderRecipe(name: RecipeName, input: RecipeInput, options: MicromambaRecipeOptions = {}): Recipe {
  return name === 'materialized' ? materializedRecipe(input) : micromambaRecipe(input, options);
}

/**
 * The RecipeRunner of the micromamba recipe: a temporary context holding the explicit lock and
 * the pip requirements.
 */
export function createMicromambaRecipeRunner(options: MicromambaRecipeOptions & { tempDir?: string; tempDirSetting?: string } = {}): RecipeRunner {
  return {
    name: 'micromamba',
    version: MICROMAMBA_RECIPE_VERSION,
    prepare(input) {
      const recipe = micromambaRecipe({ lock: input.lock, envId: input.envId, prefix: input.prefix, base: input.base }, options);
      return prepareBuildContext({
        envId: input.envId,
        dockerfile: recipe.dockerfile,
        ...(options.tempDir ? { tempDir: options.tempDir } : {}),
        ...(options.tempDirSetting ? { tempDirSetting: options.tempDirSetting } : {}),
        fill: (contextDir) => writeContextFiles(contextDir, recipe.contextFiles),
      });
    },
  };
}

/** The micromamba recipe installs in the image with micromamba and pip: it cannot leave files out. */
function checkNoPrune(prune: readonly PrunePreset[], setting: string): void {
  if (prune.length === 0) return;
  const leaveOut = setting === PRUNE_ENV ? `Unset ${PRUNE_ENV}` : `Leave out ${setting}`;
  throw new ConfigError(`${setting} (${prune.join(',')}) needs the materialized recipe; the micromamba recipe installs the env in the image and prunes nothing.`, {
    setting,
    hint: `${leaveOut}, or use the materialized recipe (METAFLOW_PREBUILT_RECIPE=materialized, the default).`,
  });
}

export interface RecipeRunnerOptions {
  /** Lays out the env's prefix for the materialized recipe (`@prebuilt/conda`'s `createEnvMaterializer()`). */
  materializer?: EnvMaterializer;
  /** Where build contexts are created, made when missing (default: the OS temp directory). */
  tempDir?: string;
  /** The setting that moves `tempDir`, named when it is full or cannot be written. */
  tempDirSetting?: string;
  /** The micromamba recipe's options (its image). */
  micromamba?: MicromambaRecipeOptions;
  /** What the materialized recipe leaves out of the env (prune.ts); the micromamba recipe prunes nothing. */
  prune?: readonly PrunePreset[];
  /** The setting `prune` came from, named when the micromamba recipe refuses it (prune.ts `pruneSetting`); default METAFLOW_PREBUILT_PRUNE. */
  pruneSetting?: string;
}

/** The runner of the named recipe (see `selectRecipeName`); the materialized recipe needs a materializer. */
export function createRecipeRunner(name: RecipeName, options: RecipeRunnerOptions = {}): RecipeRunner {
  const tempDir = { ...(options.tempDir ? { tempDir: options.tempDir } : {}), ...(options.tempDirSetting ? { tempDirSetting: options.tempDirSetting } : {}) };
  if (name === 'micromamba') {
    checkNoPrune(options.prune ?? [], options.pruneSetting ?? PRUNE_ENV);
    return createMicromambaRecipeRunner({ ...options.micromamba, ...tempDir });
  }
  if (!options.materializer) throw new PrebuiltError('internal', 'The materialized recipe needs an env materializer (@prebuilt/conda\'s createEnvMaterializer()).', 2);
  return createMaterializedRecipeRunner(options.materializer, { ...tempDir, ...(options.prune ? { prune: options.prune } : {}) });
}
