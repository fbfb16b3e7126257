/**
 * Where a `file:` URL of a lock may point: inside a local source the env is configured with — its
 * PyPI index when that is a `file:` index (for wheels), one of its `file:` channels (for conda
 * packages) — with symlinks resolved on both sides (`realpath`). A lock (a cloned flow's, committed,
 * or edited by hand) naming `file:///root/.docker/config.json`, `file:///idx/%2e%2e/…`, or a symlink
 * inside the index that points out, is refused before the file is opened: reading it would print
 * its size and sha256 in the mismatch error, or copy it into the package cache and the image.
 */
import { realpath } from 'node:fs/promises';
import { resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { EnvRequest, LockedPackage } from './env-model.js';

/** The sources of an env a `file:` URL may lie in. */
export type LocalSources = Pick<EnvRequest, 'indexUrl' | 'channels' | 'conda'>;

/** The local path a `file:` URL names (`.`/`..` and their percent-encodings resolved as a reader takes them); undefined when it names none (a host, an encoded `/`, not a URL). */
export function fileUrlPath(url: string): string | undefined {
  try {
    return resolve(fileURLToPath(new URL(url)));
  } catch {
    return undefined;
  }
}

/** The `file:` sources a package of this kind may come from: the file: index for a wheel, the file: channels (also a decorator's `file:///…::name`) for a conda package. */
export function localSourceUrls(sources: LocalSources, kind: LockedPackage['kind']): string[] {
  if (kind === 'pypi') return sources.indexUrl !== null && /^file:/i.test(sources.indexUrl) ? [sources.indexUrl] : [];
  const named = Object.keys(sources.conda).filter((k) => k.includes('::')).map((k) => k.slice(0, k.lastIndexOf('::')));
  return [...sources.channels, ...named].filter((c) => /^file:/i.test(c));
}

const within = (path: string, root: string): boolean => path === root || path.startsWith(root.endsWith(sep) ? root : `${root}${sep}`);

async function realOrUndefined(path: string): Promise<string | undefined> {
  try {
    return await realpath(path);
  } catch {
    return undefined;
  }
}

/**
 * The local sources' directories, each resolved (`realpath`) once: one per lock read or solve, passed
 * to {@link fileUrlInsideSources} for each of its packages. A lock of thousands of `file:` packages
 * resolved the same index or channel directories once per package.
 */
export class LocalSourceRoots {
  readonly #real = new Map<string, Promise<string | undefined>>();

  /** The directory a source URL names, and that directory with symlinks resolved (undefined when it cannot be: missing); undefined for no local path. */
  async of(sourceUrl: string): Promise<{ root: string; realRoot: string | undefined } | undefined> {
    const root = fileUrlPath(sourceUrl);
    if (root === undefined) return undefined;
    let real = this.#real.get(root);
    if (real === undefined) {
      real = realOrUndefined(root);
      this.#real.set(root, real);
    }
    return { root, realRoot: await real };
  }
}

/**
 * Whether the file `url` names lies inside one of `sourceUrls`' directories, symlinks resolved on
 * both sides; opens nothing (realpath only). A file that does not exist (yet) is judged by its path
 * as written: reading it fails on its own, with the reader's message. `roots`: the sources resolved
 * so far (one {@link LocalSourceRoots} over a lock's packages); a new one by default.
 */
export async function fileUrlInsideSources(url: string, sourceUrls: readonly string[], roots: LocalSourceRoots = new LocalSourceRoots()): Promise<boolean> {
  const path = fileUrlPath(url);
  if (path === undefined) return false;
  const real = await realOrUndefined(path);
  for (const source of sourceUrls) {
    const resolved = await roots.of(source);
    if (resolved === undefined) continue;
    const { root, realRoot } = resolved;
    if (real === undefined ? within(path, root) || (realRoot !== undefined && within(path, realRoot)) : realRoot !== undefined && within(real, realRoot)) return true;
  }
  return false;
}
