/**
 * Canonical hashing and the identity of an env request (`specHash`).
 *
 * Equal requests give equal hashes on every machine: keys are sorted, package names normalised,
 * insignificant whitespace dropped. Any meaningful change gives a new hash.
 */
import { createHash } from 'node:crypto';
import type { EnvRequest } from './env-model.js';

/**
 * Readable JSON with object keys sorted at every level and `undefined` members left out (as a lock
 * file or conda metadata is written): equal content gives equal text. No trailing newline.
 */
export function stableJson(value: unknown, indent = 2): string {
  return JSON.stringify(sortKeys(value), null, indent);
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value).sort()) {
      const v = (value as Record<string, unknown>)[key];
      if (v !== undefined) out[key] = sortKeys(v);
    }
    return out;
  }
  return value;
}

/**
 * JSON with object keys sorted (by UTF-16 code unit, recursively) and no whitespace.
 * Array order is kept. Throws a TypeError for values JSON cannot represent faithfully
 * (undefined, functions, symbols, bigint, non-finite numbers), so two different values
 * can never collapse into the same text.
 */
export function canonicalJson(value: unknown): string {
  return write(value, '$');
}

function write(value: unknown, path: string): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return JSON.stringify(value);
    case 'number':
      if (!Number.isFinite(value)) throw new TypeError(`canonicalJson: ${path} is ${value}, which JSON cannot represent`);
      return JSON.stringify(value);
    case 'object': {
      if (Array.isArray(value)) return `[${value.map((item, i) => write(item, `${path}[${i}]`)).join(',')}]`;
      const proto = Object.getPrototypeOf(value) as unknown;
      if (proto !== Object.prototype && proto !== null) {
        throw new TypeError(`canonicalJson: ${path} is a ${(value as object).constructor?.name ?? 'object'}, not a plain object`);
      }
      const record = value as Record<string, unknown>;
      const keys = Object.keys(record).sort();
      return `{${keys.map((key) => `${JSON.stringify(key)}:${write(record[key], `${path}.${key}`)}`).join(',')}}`;
    }
    default:
      throw new TypeError(`canonicalJson: ${path} is ${typeof value}, which JSON cannot represent`);
  }
}

/** Hex sha256 of a string (UTF-8) or bytes. */
export function sha256Hex(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** PEP 503 normalised PyPI name: lowercase, runs of `-`, `_`, `.` become one `-`. Extras are sorted. */
export function normalizePypiName(name: string): string {
  const trimmed = name.trim();
  const bracket = trimmed.indexOf('[');
  const base = (bracket === -1 ? trimmed : trimmed.slice(0, bracket)).trim().toLowerCase().replace(/[-_.]+/g, '-');
  if (bracket === -1) return base;
  const extras = trimmed
    .slice(bracket + 1)
    .replace(/\]\s*$/, '')
    .split(',')
    .map((extra) => extra.trim().toLowerCase().replace(/[-_.]+/g, '-'))
    .filter((extra) => extra !== '');
  return extras.length === 0 ? base : `${base}[${[...new Set(extras)].sort().join(',')}]`;
}

/** The PyPI project a request's name names: its {@link normalizePypiName} without the extras (`Requests[socks]` is `requests`). */
export function pypiProjectName(name: string): string {
  return normalizePypiName(name).replace(/\[.*$/, '');
}

/** Conda package name, lowercase; a `channel::` prefix is kept as written (channels are URLs or names). */
export function normalizeCondaName(name: string): string {
  const trimmed = name.trim();
  const sep = trimmed.lastIndexOf('::');
  if (sep === -1) return trimmed.toLowerCase();
  return `${trimmed.slice(0, sep).trim().replace(/\/+$/, '')}::${trimmed.slice(sep + 2).trim().toLowerCase()}`;
}

/**
 * Packages with normalised names. When two names normalise to the same one, their specs are
 * all required: the non-empty ones are joined with `,` (an empty spec means "any version").
 */
function normalizePackages(packages: Record<string, string>, kind: 'conda' | 'pypi'): Record<string, string> {
  const specs = new Map<string, Set<string>>();
  for (const [name, spec] of Object.entries(packages)) {
    const key = kind === 'pypi' ? normalizePypiName(name) : normalizeCondaName(name);
    // PEP 440 specifiers ignore whitespace; a conda match spec may use a space before its build string.
    const value = kind === 'pypi' ? spec.replace(/\s+/g, '') : spec.trim().replace(/\s+/g, ' ');
    const set = specs.get(key) ?? new Set<string>();
    if (value !== '') set.add(value);
    specs.set(key, set);
  }
  const out: Record<string, string> = {};
  for (const [key, set] of specs) out[key] = [...set].sort().join(',');
  return out;
}

function normalizeUrl(url: string): string {
  return url.trim().replace(/\/+$/, '');
}

/** Version of the specHash recipe; bump it when the canonical form changes. */
const SPEC_HASH_VERSION = 1;

/** The canonical form of a request that `specHash` hashes. */
function canonicalRequest(request: EnvRequest): Record<string, unknown> {
  return {
    specHashVersion: SPEC_HASH_VERSION,
    python: request.python.trim(),
    conda: normalizePackages(request.conda, 'conda'),
    pypi: normalizePackages(request.pypi, 'pypi'),
    channels: request.channels.map(normalizeUrl),
    indexUrl: request.indexUrl === null ? null : normalizeUrl(request.indexUrl),
    platform: request.platform,
  };
}

/** Hex sha256 of the canonical effective request. Keys the lock cache. */
export function specHash(request: EnvRequest): string {
  return sha256Hex(canonicalJson(canonicalRequest(request)));
}
