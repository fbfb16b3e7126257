import { InputError } from '../errors.js';

/**
 * The file a recipe runner may write beside the materialized prefix in the build context
 * (`<contextDir>/prefix-layers.json`): which prefix entries each package installed. Build services
 * that assemble layers themselves (`@prebuilt/oci`) use it to give every package its own layer;
 * others ignore it — the Dockerfile never copies it.
 */
export const PREFIX_LAYERS_FILE = 'prefix-layers.json';
export const PREFIX_LAYERS_VERSION = 1;

export interface PrefixLayersPackage {
  kind: 'conda' | 'pypi';
  name: string;
  version: string;
  filename: string;
  sha256: string;
  /** Entries relative to the prefix (files, symlinks, directories the package made), sorted. */
  files: string[];
  /**
   * `sha256:<hex>` of what those entries are (kind, mode, content), when the materializer knows it
   * without reading them back: entries with equal keys are equal, so a build service may reuse a
   * layer made of the same packages' keys. Absent: unknown.
   */
  contentKey?: string;
}

export interface PrefixLayers {
  version: typeof PREFIX_LAYERS_VERSION;
  /** The context directory holding the prefix, e.g. `prefix`. */
  prefixDir: string;
  /** In install order. Entries of the prefix in no package's list belong to the env as a whole. */
  packages: PrefixLayersPackage[];
}

/** Serializes a PrefixLayers (stable key order, trailing newline). */
export function serializePrefixLayers(layers: PrefixLayers): string {
  return `${JSON.stringify(
    {
      version: layers.version,
      prefixDir: layers.prefixDir,
      packages: layers.packages.map((p) => ({ kind: p.kind, name: p.name, version: p.version, filename: p.filename, sha256: p.sha256, files: p.files, ...(p.contentKey ? { contentKey: p.contentKey } : {}) })),
    },
    null,
    1,
  )}\n`;
}

/** Parses and checks a prefix-layers.json; `source` names it in errors. */
export function parsePrefixLayers(text: string, source: string): PrefixLayers {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (error) {
    throw new InputError(`${source} is not valid JSON`, { file: source, cause: error, hint: 'Prepare the build context again (the recipe runner writes this file).' });
  }
  const bad = (why: string): InputError => new InputError(`${source} is not a prefix-layers file: ${why}`, { file: source, hint: 'Prepare the build context again (the recipe runner writes this file).' });
  if (typeof data !== 'object' || data === null) throw bad('not an object');
  const d = data as Record<string, unknown>;
  if (d['version'] !== PREFIX_LAYERS_VERSION) throw bad(`version ${JSON.stringify(d['version'])}, expected ${PREFIX_LAYERS_VERSION}`);
  if (typeof d['prefixDir'] !== 'string' || d['prefixDir'] === '' || d['prefixDir'].includes('..') || d['prefixDir'].startsWith('/')) throw bad('prefixDir is not a relative directory');
  if (!Array.isArray(d['packages'])) throw bad('packages is not a list');
  const packages: PrefixLayersPackage[] = d['packages'].map((raw: unknown, i: number) => {
    const p = raw as Record<string, unknown>;
    if (typeof p !== 'object' || p === null) throw bad(`packages[${i}] is not an object`);
    for (const key of ['name', 'version', 'filename', 'sha256'] as const) if (typeof p[key] !== 'string') throw bad(`packages[${i}].${key} is not a string`);
    if (p['kind'] !== 'conda' && p['kind'] !== 'pypi') throw bad(`packages[${i}].kind is neither conda nor pypi`);
    const files = p['files'];
    if (!Array.isArray(files) || files.some((f) => typeof f !== 'string' || f === '' || f.startsWith('/') || f.split('/').includes('..'))) {
      throw bad(`packages[${i}].files is not a list of relative paths`);
    }
    const contentKey = p['contentKey'];
    if (contentKey !== undefined && (typeof contentKey !== 'string' || !/^sha256:[0-9a-f]{64}$/.test(contentKey))) throw bad(`packages[${i}].contentKey is not a sha256 digest`);
    return {
      kind: p['kind'],
      name: p['name'] as string,
      version: p['version'] as string,
      filename: p['filename'] as string,
      sha256: p['sha256'] as string,
      files: files as string[],
      ...(contentKey ? { contentKey } : {}),
    };
  });
  return { version: PREFIX_LAYERS_VERSION, prefixDir: d['prefixDir'].replace(/\/+$/, ''), packages };
}
