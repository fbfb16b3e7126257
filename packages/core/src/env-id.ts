/**
 * `envId`: the identity of an env's image content.
 *
 * It hashes exactly what ends up in the image and nothing else: the locked files (url + sha256
 * of each, order-independent), the target platform, the base image *digest* (never its mutable
 * tag), the recipe that lays the env out (name + version) and, when any, the prune presets (what
 * the image leaves out) with the revision of what they match. Equal inputs give equal ids on
 * every machine; any change of an input gives a new id. An unpruned env hashes no prune field at
 * all: its id is the one it had before pruning existed.
 *
 * The id is the first {@link ENV_ID_LENGTH} hex characters (64 bits) of a sha256 over the
 * canonical JSON of those inputs — short enough for an image tag, long enough that two envs
 * of one project never collide by accident.
 */
import type { CondaPlatform, LockedEnv, LockedPackage } from './env-model.js';
import { canonicalJson, sha256Hex } from './identity.js';
import { normalisePrunePresets, PRUNE_REVISION, type PrunePreset } from './prune.js';

/** Version of the envId recipe; bump it when the hashed form changes. */
export const ENV_ID_VERSION = 1;

/** Hex characters in an envId. */
export const ENV_ID_LENGTH = 16;

export interface EnvIdInput {
  /** The locked files; only `url` and `sha256` count, order does not matter. */
  packages: readonly Pick<LockedPackage, 'url' | 'sha256'>[];
  platform: CondaPlatform;
  /** Manifest (or index) digest of the base image, e.g. `sha256:…`. */
  baseImageDigest: string;
  /** The recipe that turns the lock into an image, e.g. `{ name: 'materialized', version: 1 }`. */
  recipe: { name: string; version: string | number };
  /** What the image leaves out (prune.ts); sorted and deduplicated, and hashed (with `PRUNE_REVISION`) only when non-empty. */
  prune?: readonly PrunePreset[];
}

const DIGEST = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;

/** The canonical form that {@link envId} hashes. Throws a TypeError on malformed input. */
function canonicalEnvIdInput(input: EnvIdInput): Record<string, unknown> {
  if (!DIGEST.test(input.baseImageDigest)) {
    throw new TypeError(`envId: base image digest '${input.baseImageDigest}' is not a digest like sha256:<hex>`);
  }
  if (input.recipe.name.trim() === '') throw new TypeError('envId: the recipe name is empty');
  const files = input.packages.map((p) => {
    if (!/^[0-9a-f]{64}$/.test(p.sha256)) throw new TypeError(`envId: ${p.url} has no valid sha256`);
    return `${p.url} ${p.sha256}`;
  });
  const sorted = [...new Set(files)].sort();
  const prune = normalisePrunePresets(input.prune ?? []);
  return {
    envIdVersion: ENV_ID_VERSION,
    files: sorted,
    platform: input.platform,
    baseImageDigest: input.baseImageDigest,
    recipe: { name: input.recipe.name, version: String(input.recipe.version) },
    ...(prune.length > 0 ? { prune, pruneRevision: PRUNE_REVISION } : {}),
  };
}

/** The short hex id of an env's image content (see the module comment). */
export function envId(input: EnvIdInput): string {
  return sha256Hex(canonicalJson(canonicalEnvIdInput(input))).slice(0, ENV_ID_LENGTH);
}

/**
 * {@link envId} of a locked env: its files and platform, plus the base image digest and the recipe
 * (a RecipeRunner will do: its name, version and prune presets).
 */
export function computeEnvId(input: {
  lock: Pick<LockedEnv, 'platform'> & { packages: readonly Pick<LockedPackage, 'url' | 'sha256'>[] };
  baseDigest: string;
  recipe: { name: string; version: string | number; prune?: readonly PrunePreset[] };
}): string {
  const { name, version, prune } = input.recipe;
  return envId({
    packages: input.lock.packages,
    platform: input.lock.platform,
    baseImageDigest: input.baseDigest,
    recipe: { name, version },
    ...(prune ? { prune } : {}),
  });
}

/** One platform's image of a multi-platform image. */
export interface IndexMemberId {
  platform: CondaPlatform;
  envId: string;
}

/**
 * The id of a multi-platform image (an image index over one env's per-platform images): the first
 * {@link ENV_ID_LENGTH} hex of a sha256 over its (platform, envId) pairs, sorted by platform. The
 * same per-platform images give the same id in any order; any of them changing gives a new one.
 */
export function indexId(members: readonly IndexMemberId[]): string {
  if (members.length < 2) throw new TypeError('indexId: an image index names at least two platforms');
  const pairs = members.map((m) => `${m.platform} ${m.envId}`).sort();
  if (new Set(members.map((m) => m.platform)).size !== members.length) throw new TypeError(`indexId: a platform is named twice (${pairs.join(', ')})`);
  return sha256Hex(canonicalJson({ envIdVersion: ENV_ID_VERSION, index: pairs })).slice(0, ENV_ID_LENGTH);
}
