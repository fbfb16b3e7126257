import { InputError } from '@prebuilt/core/backend';

export interface TaggedReference {
  /** Everything before the tag, e.g. `127.0.0.1:5000/metaflow-prebuilt`. */
  repository: string;
  tag: string;
  /** The registry host the reference points at (`docker.io` when it names none). */
  registry: string;
}

/** Splits `host/repo:tag` into its parts. A push needs a tag, not a digest. */
export function parseTaggedReference(reference: string): TaggedReference {
  const slash = reference.lastIndexOf('/');
  const colon = reference.lastIndexOf(':');
  if (reference.includes('@') || colon <= slash || colon === reference.length - 1) {
    throw new InputError(`The image tag '${reference}' is not of the form <registry>/<repository>:<tag>.`, {
      hint: 'The registry backend produces push tags; check its imageTag().',
    });
  }
  const repository = reference.slice(0, colon);
  return { repository, tag: reference.slice(colon + 1), registry: registryHost(repository) };
}

/** The registry host of a repository reference, by Docker's rule: a first component with `.`/`:` or `localhost`. */
export function registryHost(repository: string): string {
  const first = repository.split('/')[0] ?? '';
  if (repository.includes('/') && (first.includes('.') || first.includes(':') || first === 'localhost')) return first;
  return 'docker.io';
}

/**
 * The image of the Dockerfile's `FROM` lines a builder named when a FROM failed (`named`: as written,
 * or as BuildKit writes it: `docker.io/library/` added, `:latest` added, a digest appended): the one
 * it names; with no name or none matching, the only one there is; else undefined.
 */
export function failedBaseImage(dockerfile: string, named: string | undefined): string | undefined {
  const images = baseImageReferences(dockerfile);
  if (named !== undefined) {
    const wanted = canonicalImage(named);
    const found = images.find((image) => {
      const full = canonicalImage(image);
      return wanted === full || wanted.startsWith(`${full}@`);
    });
    if (found) return found;
  }
  return images.length === 1 ? images[0] : undefined;
}

/** A reference as BuildKit names it: with its registry (`docker.io/library/` for an official image) and a tag (`latest`) when it has no digest. */
function canonicalImage(reference: string): string {
  const withHost = registryHost(reference) === 'docker.io' && !reference.startsWith('docker.io/') ? `docker.io/${reference.includes('/') ? '' : 'library/'}${reference}` : reference;
  const name = withHost.split('@')[0]!;
  const tagged = name.lastIndexOf(':') > name.lastIndexOf('/');
  return tagged || withHost.includes('@') ? withHost : `${withHost}:latest`;
}

/**
 * The images the Dockerfile's `FROM` lines pull: not `scratch`, not earlier stages, not references
 * built from `ARG`s (those cannot be known before the build).
 */
export function baseImageReferences(dockerfile: string): string[] {
  const stages = new Set<string>();
  const images: string[] = [];
  for (const line of dockerfile.split('\n')) {
    const match = /^\s*FROM\s+(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?/i.exec(line);
    if (!match) continue;
    const image = match[1]!;
    const lower = image.toLowerCase();
    if (lower !== 'scratch' && !stages.has(lower) && !image.includes('$') && !images.includes(image)) images.push(image);
    if (match[2]) stages.add(match[2].toLowerCase());
  }
  return images;
}

/** Splits `repo[:tag][@digest]` for a pull: `fromImage` and `tag` (a tag or a digest). */
export function pullParts(reference: string): { fromImage: string; tag: string } {
  const at = reference.indexOf('@');
  if (at >= 0) return { fromImage: reference.slice(0, at).replace(/:[^:/]+$/, ''), tag: reference.slice(at + 1) };
  const slash = reference.lastIndexOf('/');
  const colon = reference.lastIndexOf(':');
  return colon > slash ? { fromImage: reference.slice(0, colon), tag: reference.slice(colon + 1) } : { fromImage: reference, tag: 'latest' };
}
