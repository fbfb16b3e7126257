import { mkdir, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { PreparedBuild, RecipeRunner } from '../contracts.js';
import { createRunTempDir } from '../run-temp-dir.js';
import { materializedRecipe, MATERIALIZED_RECIPE_VERSION } from './materialized.js';
import { micromambaRecipe, MICROMAMBA_RECIPE_VERSION, type MicromambaRecipeOptions } from './micromamba.js';
import type { ContextFile, Recipe, RecipeInput, RecipeName } from './recipe.js';

/** The version of a recipe (it feeds the envId). */
export function recipeVersion(name: RecipeName): string {
  return name === 'materialized' ? MATERIALIZED_RECIPE_VERSION : MICROMAMBA_RECIPE_VERSION;
}

/** Renders the named recipe. */
export function renderRecipe(name: RecipeName, input: RecipeInput, options: MicromambaRecipeOptions = {}): Recipe {
  return name === 'materialized' ? materializedRecipe(input) : micromambaRecipe(input, options);
}

/** Writes context files below `dir`, creating directories. */
export async function writeContextFiles(dir: string, files: readonly ContextFile[]): Promise<void> {
  for (const file of files) {
    const path = join(dir, file.path);
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, file.content, { mode: file.mode ?? 0o644 });
  }
}

/**
 * The RecipeRunner of the micromamba recipe: a temporary context holding the explicit lock and
 * the pip requirements. (The materialized recipe's runner is in @prebuilt/conda, which lays out
 * the prefix.)
 */
export function createMicromambaRecipeRunner(options: MicromambaRecipeOptions & { tempDir?: string } = {}): RecipeRunner {
  return {
    name: 'micromamba',
    version: MICROMAMBA_RECIPE_VERSION,
    async prepare(input): Promise<PreparedBuild> {
      const recipe = micromambaRecipe({ lock: input.lock, envId: input.envId, prefix: input.prefix, base: input.base }, options);
      const contextDir = await createRunTempDir(`prebuilt-context-${input.envId}-`, options.tempDir ? { tempDir: options.tempDir } : {});
      try {
        await writeContextFiles(contextDir, recipe.contextFiles);
      } catch (error) {
        await rm(contextDir, { recursive: true, force: true });
        throw error;
      }
      return { dockerfile: recipe.dockerfile, contextDir, dispose: () => rm(contextDir, { recursive: true, force: true }) };
    },
  };
}
