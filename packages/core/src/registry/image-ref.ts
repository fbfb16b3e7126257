import { InputError } from '../errors.js';
import { isImageDigest } from './digest.js';

/** Docker Hub's canonical registry name, as image references spell it. */
export const DOCKER_HUB = 'docker.io';
/** The host Docker Hub's registry API answers on. */
const DOCKER_HUB_API_HOST = 'index.docker.io';

/** A parsed image reference such as `127.0.0.1:5000/team/app:1.0` or `python@sha256:…`. */
export interface ImageRef {
  /** Registry host (with port), `docker.io` for Docker Hub. */
  registry: string;
  /** Repository path inside the registry, e.g. `library/python`. */
  repository: string;
  /** The tag as given; undefined when the reference has none. */
  tag: string | undefined;
  /** The digest as given (`sha256:…`); undefined when the reference has none. */
  digest: string | undefined;
  /** What to ask the registry for: the digest, else the tag, else `latest`. */
  reference: string;
}

const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const HOST = /^(?:\[[0-9a-fA-F:.]+\]|[a-zA-Z0-9](?:[a-zA-Z0-9.-]*[a-zA-Z0-9])?)(?::(\d{1,5}))?$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const DIGEST = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$/;

function invalid(input: string, why: string): InputError {
  return new InputError(`invalid image reference '${input}': ${why}`, {
    hint: 'Write it as [host[:port]/]repository[:tag][@sha256:<64 hex>], e.g. 127.0.0.1:5000/team/app:1.0 or python:3.11-slim.',
  });
}

/** True when the first path component of a reference names a registry host rather than a namespace. */
function looksLikeHost(component: string): boolean {
  return component.includes('.') || component.includes(':') || component === 'localhost' || component.startsWith('[') || component !== component.toLowerCase();
}

/**
 * Why `host` is not a registry host (`name[:port]` or `[ipv6][:port]`, the port from 1 to 65535),
 * for a message; undefined when it is one.
 */
export function registryHostProblem(host: string): string | undefined {
  const match = HOST.exec(host);
  if (!match) return `'${host}' is not a registry host of the form host[:port]`;
  const port = match[1];
  if (port !== undefined && (Number(port) < 1 || Number(port) > 65535)) return `the port ${port} of '${host}' is not between 1 and 65535`;
  return undefined;
}

/**
 * Why `component` is not one path component of a repository name (OCI distribution grammar), for
 * a message: an empty part, capital letters, or other characters; undefined when it is one.
 */
export function repositoryComponentProblem(component: string): string | undefined {
  if (COMPONENT.test(component)) return undefined;
  if (component === '') return "it has an empty part (a doubled '/', or one at an end)";
  if (COMPONENT.test(component.toLowerCase())) return `'${component}' has capital letters, and repository names are lowercase`;
  return `'${component}' is not a valid repository name component (lowercase letters, digits, separators '.', '_', '__', '-')`;
}

/**
 * Parses an image reference the way Docker does: a first component with a `.` or `:` or equal to
 * `localhost` is the registry host; otherwise the registry is Docker Hub, where one-component names
 * live under `library/`. `index.docker.io` is the same as `docker.io`.
 */
export function parseImageRef(input: string): ImageRef {
  const text = input.trim();
  if (text === '') throw invalid(input, 'it is empty');
  if (/\s/.test(text)) throw invalid(input, 'it contains whitespace');

  let rest = text;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at !== -1) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (digest.startsWith('sha256:') && !isImageDigest(digest)) throw invalid(input, `'${digest}' is not a sha256 digest (64 lowercase hex digits)`);
    if (!DIGEST.test(digest)) throw invalid(input, `'${digest}' is not a digest (algorithm:hex)`);
  }

  let registry = DOCKER_HUB;
  const slash = rest.indexOf('/');
  if (slash !== -1 && looksLikeHost(rest.slice(0, slash))) {
    registry = rest.slice(0, slash);
    rest = rest.slice(slash + 1);
    const hostProblem = registryHostProblem(registry);
    if (hostProblem !== undefined) throw invalid(input, hostProblem);
  }

  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon !== -1) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) throw invalid(input, `'${tag}' is not a valid tag (letters, digits, '_', '.', '-'; at most 128)`);
  }

  if (rest === '') throw invalid(input, 'the repository name is missing');
  const components = rest.split('/');
  for (const component of components) {
    const problem = repositoryComponentProblem(component);
    if (problem !== undefined) throw invalid(input, problem);
  }
  if (registry === DOCKER_HUB_API_HOST) registry = DOCKER_HUB;
  const repository = registry === DOCKER_HUB && components.length === 1 ? `library/${rest}` : rest;
  if (repository.length > 255) throw invalid(input, 'the repository name is longer than 255 characters');

  return { registry, repository, tag, digest, reference: digest ?? tag ?? 'latest' };
}

/** The canonical, fully qualified form: `registry/repository[:tag][@digest]` (`:latest` when neither is given). */
export function formatImageRef(ref: Pick<ImageRef, 'registry' | 'repository' | 'tag' | 'digest'>): string {
  const tag = ref.tag ?? (ref.digest === undefined ? 'latest' : undefined);
  return `${ref.registry}/${ref.repository}${tag === undefined ? '' : `:${tag}`}${ref.digest === undefined ? '' : `@${ref.digest}`}`;
}

/** The host the registry API is reached on: `index.docker.io` for Docker Hub, the registry itself otherwise. */
export function registryApiHost(registry: string): string {
  return registry === DOCKER_HUB ? DOCKER_HUB_API_HOST : registry;
}

/**
 * The host part of `host[:port]` (brackets of an IPv6 literal removed). An IPv6 literal without
 * brackets (more than one colon, as a URL's hostname may come) is a host without a port.
 */
export function hostWithoutPort(registry: string): string {
  if (registry.startsWith('[')) {
    const end = registry.indexOf(']');
    return end === -1 ? registry : registry.slice(1, end);
  }
  const colon = registry.lastIndexOf(':');
  return colon === -1 || registry.indexOf(':') !== colon ? registry : registry.slice(0, colon);
}

/**
 * True for a host on this machine: localhost (and `*.localhost`), 127.0.0.0/8, ::1, and
 * 127.0.0.0/8 mapped into IPv6 (`::ffff:127.0.0.1`, which the URL parser writes in hex as
 * `::ffff:7f00:1`). Takes `host[:port]`, `[ipv6]:port`, or a URL's hostname (with or without the
 * brackets, a trailing dot). Registries on such hosts are reached over plain HTTP by default.
 */
export function isLoopbackHost(registry: string): boolean {
  const host = hostWithoutPort(registry).toLowerCase().replace(/\.$/, '');
  if (host === 'localhost' || host.endsWith('.localhost') || host === '::1') return true;
  return /^(?:::ffff:)?127(?:\.\d{1,3}){3}$/.test(host) || /^::ffff:7f[0-9a-f]{2}:[0-9a-f]{1,4}$/.test(host);
}
