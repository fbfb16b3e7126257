/**
 * Pruning: parts of an env that tasks never use, left out of its image at build time (opt-in,
 * `METAFLOW_PREBUILT_PRUNE`). The presets name what goes; which prefix paths each one matches is
 * decided here, once, for the materializer and the docs alike.
 */
import { closestName } from './backends/closest-name.js';
import { ConfigError } from './errors.js';

export const PRUNE_PRESETS = ['tests', 'static-libs', 'headers'] as const;
export type PrunePreset = (typeof PRUNE_PRESETS)[number];

/** Environment variable naming the presets (comma-separated; empty or unset: prune nothing). */
export const PRUNE_ENV = 'METAFLOW_PREBUILT_PRUNE';

/** The setting the presets come from, for messages: `--prune` for an explicit value (the CLI's option), else `METAFLOW_PREBUILT_PRUNE`. */
export function pruneSetting(options: { value?: string } = {}): string {
  return options.value !== undefined ? '--prune' : PRUNE_ENV;
}

/**
 * The presets of an explicit value (the CLI's `--prune`) or else `METAFLOW_PREBUILT_PRUNE`, sorted
 * and deduplicated; [] for none. An unknown preset is a ConfigError naming it and the valid ones.
 */
export function selectPrunePresets(options: { value?: string; env?: Record<string, string | undefined> } = {}): PrunePreset[] {
  const raw = options.value ?? (options.env ?? process.env)[PRUNE_ENV] ?? '';
  const names = raw.split(',').map((name) => name.trim().toLowerCase()).filter((name) => name !== '');
  const unknown = names.filter((name) => !(PRUNE_PRESETS as readonly string[]).includes(name));
  if (unknown.length > 0) {
    const from = pruneSetting(options);
    // A typo of a preset (`tset`, `header`) names the one it most likely means.
    const named = unknown.map((name) => {
      const meant = closestName(name, PRUNE_PRESETS);
      return `'${name}'${meant === undefined ? '' : ` (did you mean ${meant}?)`}`;
    });
    throw new ConfigError(`${from} names an unknown prune preset: ${named.join(', ')}.`, {
      setting: from,
      hint: `Set ${from} to a comma-separated list of: ${PRUNE_PRESETS.join(', ')} (empty: prune nothing).`,
    });
  }
  return normalisePrunePresets(names as PrunePreset[]);
}

/** Presets sorted and deduplicated: the form that enters the envId. */
export function normalisePrunePresets(presets: readonly PrunePreset[]): PrunePreset[] {
  return [...new Set(presets)].sort();
}

/**
 * Revision of what the presets match: it enters the envId of a pruned env (env-id.ts), so images
 * pruned by an older meaning are not taken for current ones. Bump it whenever a matcher changes.
 * 2: `tests` covers every `tests`/`test` directory below `lib/python3.X/` and `idlelib/idle_test`.
 */
export const PRUNE_REVISION = 2;

/**
 * Any directory named `tests` or `test` below `lib/python3.X/`, at any depth: the stdlib's
 * `test/` and nested suites (`unittest/test/`, `ctypes/test/`, `lib2to3/tests/`), packages' in
 * `site-packages` and a top-level `site-packages/tests/`; plus the stdlib's `idlelib/idle_test/`.
 */
const TEST_DIR = /^lib\/python3\.\d+\/(?:(?:[^/]+\/)*(?:tests|test)|idlelib\/idle_test)(?:\/|$)/;

const MATCHERS: Record<PrunePreset, (rel: string) => boolean> = {
  tests: (rel) => TEST_DIR.test(rel),
  'static-libs': (rel) => /[^/]\.a$/.test(rel),
  headers: (rel) => rel === 'include' || rel.startsWith('include/'),
};

/**
 * Whether a prefix entry (a path relative to the prefix, `/`-separated, as conda-meta records it)
 * is pruned by any of the presets: the entry itself or a directory above it matches. `testing`
 * directories (numpy.testing, …) are runtime API and never match.
 */
export function isPruned(rel: string, presets: readonly PrunePreset[]): boolean {
  return presets.some((preset) => MATCHERS[preset](rel));
}
