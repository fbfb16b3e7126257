import { createRequire } from 'node:module';
import type { BaseImageIdentity } from '../contracts.js';
import type { LockedEnv } from '../env-model.js';
import { ConfigError } from '../errors.js';
import { canonicalJson, sha256Hex } from '../identity.js';

/**
 * A recipe turns a locked env into a Dockerfile and the files its build context needs.
 * Its name and version feed the envId: changing what a recipe produces means bumping its version.
 */
const RECIPE_NAMES = ['materialized', 'micromamba'] as const;
export type RecipeName = (typeof RECIPE_NAMES)[number];

/** Environment variable selecting the recipe. */
const RECIPE_ENV = 'METAFLOW_PREBUILT_RECIPE';

export interface RecipeInput {
  lock: LockedEnv;
  envId: string;
  /** Absolute path of the env in the image, e.g. `/opt/prebuilt/env`. */
  prefix: string;
  /** The base image, resolved to a digest: the Dockerfile uses `base.pinned`. */
  base: BaseImageIdentity;
  /** prebuilt's version for the label (default: @prebuilt/core's version). */
  prebuiltVersion?: string;
}

/** A file the build context must contain, relative to the context directory. */
export interface ContextFile {
  path: string;
  content: string;
  mode?: number;
}

export interface Recipe {
  name: RecipeName;
  version: string;
  dockerfile: string;
  /** Files to write into the build context. */
  contextFiles: ContextFile[];
  /**
   * Where in the build context the materialized prefix must be placed (materialized recipe only):
   * the Dockerfile copies this directory's content to the prefix.
   */
  prefixContextDir?: string;
}

/** Picks the recipe: explicit value → `METAFLOW_PREBUILT_RECIPE` → `materialized`. A bad value is a ConfigError. */
export function selectRecipeName(options: { value?: string; env?: Record<string, string | undefined> } = {}): RecipeName {
  const raw = options.value || (options.env ?? process.env)[RECIPE_ENV] || 'materialized';
  const value = raw.trim().toLowerCase();
  if ((RECIPE_NAMES as readonly string[]).includes(value)) return value as RecipeName;
  throw new ConfigError(`Unknown recipe '${raw}'.`, {
    setting: RECIPE_ENV,
    hint: `Set ${RECIPE_ENV} (or the option 'recipe') to one of: ${RECIPE_NAMES.join(', ')}.`,
  });
}

/** A short hash of the locked files (kind, name, url, sha256) and the platform, for the image label. */
export function lockHash(lock: LockedEnv): string {
  return sha256Hex(
    canonicalJson({
      platform: lock.platform,
      packages: lock.packages.map((p) => ({ kind: p.kind, name: p.name, url: p.url, sha256: p.sha256 })),
    }),
  );
}

let coreVersion: string | undefined;
/** The version of @prebuilt/core, read from its package.json. */
export function prebuiltVersion(): string {
  coreVersion ??= (createRequire(import.meta.url)('../../package.json') as { version: string }).version;
  return coreVersion;
}

/** Label prefix of every label prebuilt sets. */
const LABEL_PREFIX = 'dev.prebuilt';

/** The labels of an env image. */
export function recipeLabels(input: RecipeInput, recipe: { name: string; version: string }): Record<string, string> {
  return {
    [`${LABEL_PREFIX}.env-id`]: input.envId,
    [`${LABEL_PREFIX}.lock-hash`]: lockHash(input.lock),
    [`${LABEL_PREFIX}.version`]: input.prebuiltVersion ?? prebuiltVersion(),
    [`${LABEL_PREFIX}.recipe`]: `${recipe.name}/${recipe.version}`,
    [`${LABEL_PREFIX}.prefix`]: input.prefix,
    [`${LABEL_PREFIX}.python`]: `${input.prefix}/bin/python`,
    [`${LABEL_PREFIX}.platform`]: input.lock.platform,
    [`${LABEL_PREFIX}.base`]: input.base.pinned,
  };
}

/** A Dockerfile string literal (for ENV and LABEL values). */
function dockerQuote(value: string): string {
  if (/[\n\r]/.test(value)) throw new ConfigError(`A Dockerfile value cannot contain a line break: ${JSON.stringify(value)}.`);
  return `"${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\$/g, '\\$')}"`;
}

/** Checks the inputs every recipe relies on. */
export function checkRecipeInput(input: RecipeInput): void {
  if (!/^\/[A-Za-z0-9._/-]+$/.test(input.prefix) || input.prefix.endsWith('/') || /\/\.\.?(\/|$)/.test(input.prefix)) {
    throw new ConfigError(`The env prefix '${input.prefix}' is not a plain absolute path (letters, digits, '.', '_', '-', '/').`);
  }
  // The whole value is one image reference: it is the FROM line's, where a space or line break would add to the Dockerfile.
  if (!/^[^\s"]+@sha256:[0-9a-f]{64}$/.test(input.base.pinned)) {
    throw new ConfigError(`The base image '${input.base.pinned}' is not pinned by digest.`, {
      hint: 'Resolve the base image with the registry backend (baseImageIdentity) before rendering a recipe.',
    });
  }
}

/** `ENV` line: PATH with the env's bin first (keeping the base's PATH, or the usual default), no bootstrap. */
export function envLines(prefix: string): string[] {
  return [
    `ENV PATH=${prefix}/bin:\${PATH:-/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin} \\`,
    `    METAFLOW_SKIP_INSTALL_DEPENDENCIES=1`,
  ];
}

export function labelLines(labels: Record<string, string>): string[] {
  const entries = Object.entries(labels);
  return entries.map(([key, value], i) => `${i === 0 ? 'LABEL ' : '      '}${key}=${dockerQuote(value)}${i < entries.length - 1 ? ' \\' : ''}`);
}
