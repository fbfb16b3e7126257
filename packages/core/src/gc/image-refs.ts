/**
 * The image references a document names, for `prebuilt gc`'s keep set: every string at one of
 * `keys` anywhere in a JSON value (an image map's `image`/`pinnedImage`/`digest`, a Kubernetes
 * object's `image`), wherever the document nests it.
 */
import { isImageDigest } from '../registry/digest.js';
import { parseImageRef } from '../registry/image-ref.js';

/** Keys whose string values name images, in image maps and Kubernetes / Argo objects. */
export const IMAGE_KEYS: ReadonlySet<string> = new Set(['image', 'pinnedImage', 'digest']);

/** Every string value at a key of `keys` in `value` (objects and arrays walked to any depth), each once. */
export function collectImageRefs(value: unknown, keys: ReadonlySet<string> = IMAGE_KEYS): string[] {
  const found = new Set<string>();
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const next = stack.pop();
    if (Array.isArray(next)) stack.push(...next);
    else if (typeof next === 'object' && next !== null) {
      for (const [key, child] of Object.entries(next)) {
        if (keys.has(key) && typeof child === 'string' && child.trim() !== '') found.add(child.trim());
        else stack.push(child);
      }
    }
  }
  return [...found];
}

/** What a reference names in a repository: a digest (authoritative), else a tag of a repository path. */
export type ImageRefTarget = { digest: string } | { repository: string; tag: string } | undefined;

/**
 * What `ref` names: `sha256:…` or `repo@sha256:…` (also `repo:tag@sha256:…`) a digest; `repo:tag` a
 * tag of the repository path (`team/envs`, without the host: a pull host may differ from the push
 * host); anything unparseable nothing.
 */
export function imageRefTarget(ref: string): ImageRefTarget {
  if (isImageDigest(ref)) return { digest: ref };
  try {
    const parsed = parseImageRef(ref);
    if (parsed.digest) return { digest: parsed.digest };
    return { repository: parsed.repository, tag: parsed.tag ?? 'latest' };
  } catch {
    return undefined;
  }
}

/**
 * Whether `ref` names `image` of the env repository (`repository`, its path as {@link imageRefTarget}
 * gives it): by its digest, or by one of its tags in that repository — what gc keeps for a keep
 * source naming `ref`.
 */
export function refNamesImage(ref: string, image: { digest: string; tags: readonly string[] }, repository: string): boolean {
  const target = imageRefTarget(ref);
  if (target === undefined) return false;
  return 'digest' in target ? target.digest === image.digest : target.repository === repository && image.tags.includes(target.tag);
}
