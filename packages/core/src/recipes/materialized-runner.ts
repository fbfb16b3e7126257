import { join } from 'node:path';
import { writeFileAtomic } from '../atomic-write.js';
import type { EnvMaterializer, RecipeRunner } from '../contracts.js';
import { prepareBuildContext } from './build-context.js';
import { materializedRecipe, MATERIALIZED_RECIPE_VERSION, PREFIX_CONTEXT_DIR } from './materialized.js';
import { PREFIX_LAYERS_FILE, PREFIX_LAYERS_VERSION, serializePrefixLayers } from './prefix-layers.js';
import { writeContextFiles } from './context-files.js';
import { normalisePrunePresets, type PrunePreset } from '../prune.js';

/**
 * The RecipeRunner of the default recipe: renders the materialized Dockerfile (COPY, ENV, LABEL
 * only), has the materializer (`@prebuilt/conda`'s `createEnvMaterializer()`) lay the locked env
 * out into `prefix/` of a fresh build context (leaving out what `options.prune` names), and writes
 * `prefix-layers.json` beside it from what the materializer returned.
 */
export function createMaterializedRecipeRunner(materializer: EnvMaterializer, options: { tempDir?: string; tempDirSetting?: string; prune?: readonly PrunePreset[] } = {}): RecipeRunner {
  const prune = normalisePrunePresets(options.prune ?? []);
  return {
    name: 'materialized',
    version: MATERIALIZED_RECIPE_VERSION,
    ...(prune.length > 0 ? { prune } : {}),
    prepare(input) {
      const recipe = materializedRecipe({ lock: input.lock, envId: input.envId, prefix: input.prefix, base: input.base });
      const prefixDir = recipe.prefixContextDir ?? PREFIX_CONTEXT_DIR;
      return prepareBuildContext({
        envId: input.envId,
        dockerfile: recipe.dockerfile,
        ...(options.tempDir ? { tempDir: options.tempDir } : {}),
        ...(options.tempDirSetting ? { tempDirSetting: options.tempDirSetting } : {}),
        doing: (contextDir) => `materializing env ${input.envId} into ${contextDir}`,
        fill: async (contextDir) => {
          const prefix = await materializer.materialize({
            lock: input.lock,
            envId: input.envId,
            prefix: input.prefix,
            outDir: join(contextDir, prefixDir),
            ...(prune.length > 0 ? { prune } : {}),
            ...(input.signal ? { signal: input.signal } : {}),
            ...(input.onProgress ? { onProgress: input.onProgress } : {}),
          });
          await writeContextFiles(contextDir, recipe.contextFiles);
          // Which prefix entries each package installed: lets a layer-assembling build service (oci)
          // give every package its own layer. The Dockerfile never copies it.
          await writeFileAtomic(join(contextDir, PREFIX_LAYERS_FILE), serializePrefixLayers({ version: PREFIX_LAYERS_VERSION, prefixDir, packages: prefix.packages }));
        },
      });
    },
  };
}
