import { checkRecipeInput, envLines, labelLines, recipeLabels, type Recipe, type RecipeInput } from './recipe.js';

/** Bump when the Dockerfile or the prefix layout this recipe expects changes: it feeds the envId. */
// 2: the env moved from /opt/prebuilt/envs/<envId> to /opt/prebuilt/env.
export const MATERIALIZED_RECIPE_VERSION = '2';

/** The directory of the build context holding the materialized prefix. */
export const PREFIX_CONTEXT_DIR = 'prefix';

/**
 * The default recipe: the host has laid out the env prefix (see `materializeEnv` in
 * @prebuilt/conda) into `prefix/` of the build context, and the Dockerfile only copies it.
 * It uses nothing but FROM, COPY, ENV and LABEL: no RUN, so no network, no solver and no CPU
 * emulation in the builder — cross-platform builds are plain copies, and every build service
 * builds the same image from the same context.
 */
export function materializedRecipe(input: RecipeInput): Recipe {
  checkRecipeInput(input);
  const recipe = { name: 'materialized' as const, version: MATERIALIZED_RECIPE_VERSION };
  const dockerfile = [
    `# prebuilt ${recipe.name} recipe v${recipe.version}: env ${input.envId}`,
    `FROM ${input.base.pinned}`,
    `COPY ${PREFIX_CONTEXT_DIR}/ ${input.prefix}/`,
    ...envLines(input.prefix),
    ...labelLines(recipeLabels(input, recipe)),
    '',
  ].join('\n');
  return { ...recipe, dockerfile, contextFiles: [], prefixContextDir: PREFIX_CONTEXT_DIR };
}
