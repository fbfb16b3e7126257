import { createHash } from 'node:crypto';
import { open, rename, rm, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { BaseImageIdentity, RegistryCredentials } from '../contracts.js';
import { diskFullError } from '../disk-full.js';
import { AuthError, CancelledError, ConfigError, EnvironmentError, errorMessage, InputError, LoginRequiredError, NetworkError, PrebuiltError, RegistryError, UnreachableError } from '../errors.js';
import { createLogger } from '../logger.js';
import { netFetch, type NetResponse } from '../net/net-fetch.js';
import { BODY_LIMITS, networkTimeouts, type NetworkTimeouts } from '../net/network-settings.js';
import { basicAuthorization, redactUrls } from '../net/url-credentials.js';
import { checkableDigest, isImageDigest, sha256Digest } from './digest.js';
import { dockerConfigCredentials, dockerConfigPath, normalizeDockerConfigKey, type DockerConfigOptions } from './docker-config.js';
import { formatImageRef, hostWithoutPort, isLoopbackHost, parseImageRef, registryApiHost, type ImageRef } from './image-ref.js';
import type { ManifestCache } from './manifest-cache.js';
import { isIndexMediaType, MANIFEST_ACCEPT, MediaType } from './media-types.js';
import { platformMatches, selectPlatformManifest, type ImageIndex, type ImageManifest, type OciPlatform } from './platform.js';
import {
  backoffDelay,
  DEFAULT_RETRY_POLICY,
  isConnectionRefused,
  isHostNotFound,
  isNothingThere,
  isRetryableNetworkError,
  isRetryableStatus,
  parseRetryAfter,
  rootMessage,
  sleep,
  type RetryPolicy,
} from './retry.js';
import { ListingBound } from './listing-bound.js';
import { SharedFetches } from './shared-fetch.js';
import { checkTokenRealm } from './token-realm.js';
import { parseWwwAuthenticate, type AuthChallenge } from './www-authenticate.js';

const log = createLogger('registry');

/** Blob uploads running in this process, by `registry/repository@digest` (see RegistryClient.uploadBlob). */
const uploadsInFlight = new Map<string, Promise<UploadBlobResult>>();

/** Gives the credentials for a registry host, or undefined for anonymous access. */
export type CredentialsProvider = (registry: string, options: { signal?: AbortSignal }) => Promise<RegistryCredentials | undefined>;

export interface RegistryClientOptions {
  /**
   * Explicit credentials (matched to a registry by host), or a provider function. Registries without
   * a match fall back to the Docker config unless `dockerConfig` is false.
   */
  credentials?: RegistryCredentials | readonly RegistryCredentials[] | CredentialsProvider;
  /** Read credentials from the user's Docker config (`auths`, `credsStore`, `credHelpers`). Default true. */
  dockerConfig?: boolean | DockerConfigOptions;
  /** Registries reached over plain HTTP. Loopback registries (127.0.0.0/8, localhost, ::1, 127.0.0.0/8 mapped into IPv6) always are unless listed in `secureRegistries`. */
  insecureRegistries?: readonly string[];
  /** Loopback registries that serve HTTPS. */
  secureRegistries?: readonly string[];
  /** Attempts and backoff for 429, 5xx and dropped connections. */
  retry?: Partial<RetryPolicy>;
  /**
   * Time one HTTP request may go without a byte (headers or body), in ms. Default
   * METAFLOW_PREBUILT_NETWORK_IDLE_TIMEOUT (60 s); the overall deadline is METAFLOW_PREBUILT_NETWORK_DEADLINE.
   */
  timeoutMs?: number;
  /** Idle timeout and deadline of every request (default from the environment; `timeoutMs` overrides the idle part). */
  timeouts?: NetworkTimeouts;
  userAgent?: string;
  /**
   * Another way than `docker login` to give `registry` credentials, for the hint of an auth error
   * (e.g. a registry backend's settings: `set METAFLOW_PREBUILT_LOCAL_REGISTRY_USERNAME and …`);
   * undefined for a registry it does not know.
   */
  credentialsHint?: (registry: string) => string | undefined;
  /**
   * What to do when nothing listens at `registry` (connection refused), in place of "check that it
   * is running", e.g. the `local` registry's `prebuilt local-registry start --port 5001` for a
   * loopback address; undefined for a registry it does not know.
   */
  unreachableHint?: (registry: string) => string | undefined;
  /**
   * Manifests kept by digest (see {@link RegistryClient.checkManifest}): an existence check of a
   * manifest it holds is a HEAD only. Default none: every check GETs.
   */
  manifestCache?: ManifestCache;
}

export interface RequestOptions {
  signal?: AbortSignal;
}

/** What a manifest HEAD tells: whether the tag or digest exists, and which manifest it names. */
export type ManifestHead =
  | { exists: false }
  | {
      exists: true;
      /** Digest of the manifest (or index) the reference names. */
      digest: string;
      mediaType: string;
      size: number | undefined;
    };

export type BlobHead = { exists: false } | { exists: true; size: number | undefined };

/** What RegistryClient.checkManifest found: whether the reference exists, and its manifest, verified; `cached` when it came from the manifest cache (a HEAD only). */
export type ManifestCheck = { exists: false } | { exists: true; result: ManifestResult; cached: boolean };

export interface ManifestResult {
  ref: ImageRef;
  /** Digest of `bytes`, verified against the registry's `Docker-Content-Digest`. */
  digest: string;
  mediaType: string;
  size: number;
  /** The manifest exactly as the registry served it. */
  bytes: Uint8Array;
  manifest: ImageManifest | ImageIndex;
  /** When a platform was selected from a manifest list / index: the digest of that index. */
  indexDigest?: string;
}

/** How a blob got into the target repository. */
export type BlobUploadStatus = 'exists' | 'mounted' | 'uploaded';

export interface UploadBlobOptions extends RequestOptions {
  /**
   * Repositories of the same registry (`team/base`, no host) that may already hold the blob:
   * each is offered to the registry as a cross-repository mount source before uploading.
   */
  mountFrom?: readonly string[];
  /**
   * Blobs larger than this go up in PATCH chunks of this size; smaller ones in one PUT. Default 8 MiB.
   * A file source is read one chunk of this size at a time.
   */
  chunkSize?: number;
  /** Called after each chunk with the bytes of this blob sent so far. */
  onProgress?: (sent: number, total: number) => void;
}

/**
 * A blob in a file (a layer written while it was compressed and hashed): uploaded a chunk at a
 * time, never read whole, so a blob of any size goes up with one chunk in memory. `size`, when
 * given, must be the file's.
 */
export interface BlobFile {
  file: string;
  size?: number;
}

/**
 * What {@link RegistryClient.uploadBlob} puts: the bytes (a config, a manifest, an SBOM), a file
 * (a layer), or a function giving either, called only when the blob must really be uploaded.
 */
export type BlobSource = Uint8Array | BlobFile | (() => Promise<Uint8Array | BlobFile>);

export interface UploadBlobResult {
  status: BlobUploadStatus;
  /** Body bytes sent for this blob (0 when it existed or was mounted). */
  bytesSent: number;
}

/** What a client has sent to registries: request body bytes, and blobs by how they got there. */
export interface TransferStats {
  bytesSent: number;
  blobsUploaded: number;
  blobsMounted: number;
  blobsExisting: number;
}

interface HttpResult {
  status: number;
  headers: Headers;
  body: Uint8Array;
  /** The URL that answered: the request's, or where its redirects led. */
  url: string;
}

/** How much of an answer's body to read: a 2xx body up to `limit` (more is an error); an error body only its first 64 KiB. */
interface ReadPlan {
  /** Bound of a successful body; undefined reads only a prefix of it (answers whose body is not used). */
  limit?: number;
  /** What the request is, for the wait report and the timeout message. */
  what: string;
  /**
   * Takes a successful body chunk by chunk instead of it being read into memory (each attempt anew).
   * Its own failures are PrebuiltErrors and end the request as they are; the body's are retried.
   */
  sink?: (chunks: AsyncIterable<Uint8Array>) => Promise<void>;
  /** Attempts at most; default the client's retry policy. */
  attempts?: number;
}

/** How long an upload that failed or was cancelled waits for the registry to drop its session (one DELETE). */
const ABANDON_UPLOAD_MS = 2000;

interface CachedToken {
  value: string;
  expiresAt: number;
}

type AuthMode = { kind: 'basic' } | { kind: 'bearer'; params: Record<string, string> };

const STATUS_TEXT: Record<number, string> = { 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 405: 'Method Not Allowed', 429: 'Too Many Requests', 500: 'Internal Server Error', 502: 'Bad Gateway', 503: 'Service Unavailable', 504: 'Gateway Timeout' };

function describeStatus(status: number): string {
  return STATUS_TEXT[status] ? `${status} ${STATUS_TEXT[status]}` : String(status);
}

/** Times a manifest PUT refused for a blob the registry then says it has is tried again. */
const MANIFEST_BLOB_RETRIES = 3;

/**
 * The digests a 400 answer to a manifest PUT names as unknown blobs (MANIFEST_BLOB_UNKNOWN), each
 * once, and only those the manifest references: a registry's answer naming others (hundreds fit
 * in an error body) would have each asked about, at every retry. None for any other answer.
 */
function unknownManifestBlobs(res: HttpResult, manifest: Uint8Array): string[] {
  if (res.status !== 400) return [];
  const referenced = Buffer.from(manifest).toString('utf8');
  try {
    const data = JSON.parse(Buffer.from(res.body).toString('utf8')) as { errors?: { code?: unknown; detail?: unknown }[] };
    const named = (data.errors ?? []).filter((e) => e.code === 'MANIFEST_BLOB_UNKNOWN').map((e) => (typeof e.detail === 'object' && e.detail !== null ? (e.detail as { digest?: unknown }).digest : e.detail));
    return [...new Set(named.filter((d): d is string => typeof d === 'string' && /^sha256:[0-9a-f]{64}$/.test(d) && referenced.includes(`"${d}"`)))];
  } catch {
    return [];
  }
}

/** The registry's own error text (`{"errors":[{"code","message"}]}`), if any, URLs in it shown as {@link redactUrls} does. */
function registryErrorDetail(body: Uint8Array): string {
  // A storage host a redirect reached may quote the pre-signed URL it refused: its secrets stay out of the message.
  return redactUrls(errorBodyText(body));
}

/** How much of a registry's JSON error text a message quotes. */
const ERROR_TEXT_CHARS = 500;

/**
 * An error body's text, on one line: the registry's JSON errors (their first {@link ERROR_TEXT_CHARS}
 * characters), else its first 200 bytes. One line because it is quoted in a message people read:
 * a line break in it could print a line of the registry's own below (a fake `hint:`).
 */
function errorBodyText(body: Uint8Array): string {
  if (body.length === 0) return '';
  const oneLine = (text: string): string => text.replace(/\s+/g, ' ').trim();
  try {
    const data = JSON.parse(Buffer.from(body).toString('utf8')) as { errors?: { code?: string; message?: string }[]; details?: string; error?: string };
    let text: string | undefined;
    if (Array.isArray(data.errors) && data.errors.length > 0) {
      text = data.errors.map((e) => [e.code, e.message].filter((part) => typeof part === 'string' && part !== '').join(': ')).join('; ');
    } else if (typeof data.details === 'string') text = data.details;
    else if (typeof data.error === 'string') text = data.error;
    if (text !== undefined) {
      const line = oneLine(text);
      return line.length > ERROR_TEXT_CHARS ? `${line.slice(0, ERROR_TEXT_CHARS)}…` : line;
    }
  } catch {
    // not JSON
  }
  return oneLine(Buffer.from(body.subarray(0, 200)).toString('utf8'));
}

/**
 * The next page of a registry's paginated listing: the path (and query) of the `rel="next"` target
 * of a `Link` header (RFC 8288), resolved against the registry. A next page on another host is a
 * RegistryError: credentials go to their own host only.
 */
export function nextPagePath(header: string | null, registry: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(',')) {
    const match = /^\s*<([^>]+)>\s*;(.*)$/.exec(part);
    if (!match || !/\brel="?next"?/i.test(match[2]!)) continue;
    const own = new URL(`https://${registry}`);
    const url = new URL(match[1]!, own);
    if (url.host !== own.host) {
      throw new RegistryError(`registry ${registry} named the next page of a listing on another host (${url.host}); prebuilt sends the credentials of ${registry} to its own host only`, { registry });
    }
    return url.pathname + url.search;
  }
  return undefined;
}

/**
 * Refuses a digest that is not `sha256:` and 64 hex digits before anything is fetched by it: the
 * bytes fetched are checked against it, and a digest of another form (another algorithm, a
 * hostile manifest's or index's `md5:…`) could not be, so the registry could answer anything.
 */
function uncheckableDigest(digest: unknown, what: string, registry: string): void {
  checkableDigest(digest, what, registry);
}

/**
 * Why `token` cannot go in a `Bearer` header — the first character that is not visible ASCII, as
 * `U+000A` — or undefined when it can. Such a token (a line break pasted into a Docker config, a
 * token server's hostile or broken answer) is refused without being quoted: the HTTP layer's own
 * refusal quotes the whole header, token and all, and that message is printed.
 */
function unsendableToken(token: string): string | undefined {
  if (/^[\x21-\x7e]+$/.test(token)) return undefined;
  const code = ([...token].find((c) => !/[\x21-\x7e]/.test(c)) ?? '').codePointAt(0) ?? 0;
  return `U+${code.toString(16).toUpperCase().padStart(4, '0')}`;
}

/** `Bearer <token>` for the registry token of the user's configuration; one that cannot go in a header is a ConfigError (exit 2: theirs to fix). */
function configuredBearer(token: string, source: string, registry: string): string {
  const bad = unsendableToken(token);
  if (bad === undefined) return `Bearer ${token}`;
  throw new ConfigError(`the registry token in ${source} for registry ${registry} holds a character a header cannot carry (${bad}); it is not sent`, {
    hint: `A token is one word of visible ASCII: check ${source} for a line break or space copied into it (the Docker config's registrytoken).`,
  });
}

/** `Bearer <token>` for a token a token server answered; one that cannot go in a header is a RegistryError (exit 1: the server's). */
function servedBearer(token: string, server: string, registry: string): string {
  const bad = unsendableToken(token);
  if (bad === undefined) return `Bearer ${token}`;
  throw new RegistryError(`the token from ${server} for registry ${registry} holds a character a header cannot carry (${bad}); it is not sent`, { registry }, {
    hint: 'A token is one word of visible ASCII: the token server answered with something else (a broken or hostile server); try again later, or ask its operator.',
  });
}

/** The media type a response's Content-Type names, without parameters ('' for none). */
function contentType(headers: Headers): string {
  return (headers.get('content-type') ?? '').split(';')[0]!.trim();
}

/**
 * A manifest's JSON and media type (its own `mediaType`, else the Content-Type it came with, else
 * told by its shape), checked to have what its kind needs; `name` names it in the RegistryError.
 */
function parseManifest(bytes: Uint8Array, headerType: string, name: string, registry: string): { manifest: ImageManifest | ImageIndex; mediaType: string } {
  let manifest: ImageManifest | ImageIndex;
  try {
    manifest = JSON.parse(Buffer.from(bytes).toString('utf8')) as ImageManifest | ImageIndex;
  } catch (error) {
    throw new RegistryError(`manifest ${name} is not valid JSON`, { registry }, { cause: error });
  }
  if (typeof manifest !== 'object' || manifest === null) throw new RegistryError(`manifest ${name} is not a JSON object`, { registry });
  const mediaType = manifest.mediaType ?? (MANIFEST_ACCEPT.includes(headerType) ? headerType : 'manifests' in manifest ? 'application/vnd.oci.image.index.v1+json' : 'application/vnd.oci.image.manifest.v1+json');
  const lacks = isIndexMediaType(mediaType)
    ? !Array.isArray((manifest as ImageIndex).manifests) && 'manifests list'
    : (!Array.isArray((manifest as ImageManifest).layers) && 'layers list') || (typeof (manifest as ImageManifest).config?.digest !== 'string' && 'config descriptor');
  if (lacks) throw new RegistryError(`manifest ${name} (${mediaType}) lacks its ${lacks}`, { registry });
  return { manifest, mediaType };
}

/** Statuses of a manifest HEAD that mean the registry does not answer HEAD for manifests: the GET is asked instead. */
const HEAD_REFUSED = new Set([400, 405, 406, 501]);

/** The manifest `cache` keeps under the digest a HEAD gave, parsed as a GET's would be; undefined when not kept or unusable. */
async function cachedManifest(cache: ManifestCache, image: ImageRef, head: { digest: string; mediaType: string }): Promise<ManifestResult | undefined> {
  const bytes = await cache.read(head.digest);
  return bytes && keptManifest(bytes, image, head);
}

/** Kept bytes (hashing to `head.digest`) as the ManifestResult a GET would give; undefined when unusable. */
function keptManifest(bytes: Uint8Array, image: ImageRef, head: { digest: string; mediaType: string }): ManifestResult | undefined {
  try {
    const { manifest, mediaType } = parseManifest(bytes, head.mediaType, manifestName(image, head.digest), image.registry);
    return { ref: image, digest: head.digest, mediaType, size: bytes.length, bytes, manifest };
  } catch (error) {
    log('the kept manifest %s is unusable (%s): reading it again', head.digest, errorMessage(error));
    return undefined;
  }
}

/** `registry/repository:tag` or `registry/repository@digest`. */
function manifestName(image: ImageRef, reference: string): string {
  return `${image.registry}/${image.repository}${reference.includes(':') ? '@' : ':'}${reference}`;
}

function manifestNotFound(image: ImageRef, reference: string): RegistryError {
  return new RegistryError(`manifest ${manifestName(image, reference)} was not found`, { registry: image.registry, status: 404 }, { hint: 'Check the repository and tag, and that the image was pushed.' });
}

function toRef(ref: string | ImageRef): ImageRef {
  return typeof ref === 'string' ? parseImageRef(ref) : ref;
}

function who(creds: RegistryCredentials | undefined): string {
  if (!creds) return 'anonymous access';
  if (creds.username && creds.username !== '<token>') return `user '${creds.username}'`;
  return 'the token';
}

/** Why one attempt of an exchange failed, and whether to try again (after `retryAfter` ms when the registry said). */
interface ExchangeFailure {
  reason: string;
  retryable: boolean;
  cause?: unknown;
  retryAfter?: number;
  status?: number;
}

/**
 * A small OCI distribution client: manifest and blob HEAD, manifest GET with platform selection,
 * anonymous/Basic/Bearer-challenge auth with a token cache per scope, credentials from explicit
 * values or the user's Docker config, retries with backoff and jitter, and a timeout on every request.
 */
export class RegistryClient {
  readonly #options: RegistryClientOptions;
  readonly #retry: RetryPolicy;
  readonly #timeouts: NetworkTimeouts;
  /** Credentials looked up, per registry (undefined: none found): a lookup that succeeded is not made again. */
  readonly #credentials = new Map<string, RegistryCredentials | undefined>();
  /** Credential lookups in flight, per registry: concurrent requests share one, each bounded by its own signal. */
  readonly #credentialLookups = new SharedFetches<RegistryCredentials | undefined>();
  readonly #tokens = new Map<string, CachedToken>();
  /** Token fetches in flight, per registry and scope: concurrent requests share one, each bounded by its own signal. */
  readonly #tokenFetches = new SharedFetches<string>();
  readonly #authModes = new Map<string, AuthMode>();
  /** Registries that have answered at least once: a refused connection to them is worth a retry. */
  readonly #answered = new Set<string>();
  readonly #stats: TransferStats = { bytesSent: 0, blobsUploaded: 0, blobsMounted: 0, blobsExisting: 0 };
  /** Registries whose manifest HEAD gave no digest or was refused: their manifests are read by GET straight away. */
  readonly #headsWithoutDigest = new Set<string>();

  constructor(options: RegistryClientOptions = {}) {
    this.#options = options;
    this.#retry = { ...DEFAULT_RETRY_POLICY, ...options.retry };
    if (!(this.#retry.attempts >= 1)) this.#retry.attempts = 1;
    const timeouts = options.timeouts ?? networkTimeouts();
    this.#timeouts = options.timeoutMs === undefined ? timeouts : { ...timeouts, idleMs: options.timeoutMs };
  }

  /** `http` for loopback and insecure registries, `https` otherwise. */
  scheme(registry: string): 'http' | 'https' {
    const key = normalizeDockerConfigKey(registry);
    const listed = (list: readonly string[] | undefined): boolean => (list ?? []).some((entry) => normalizeDockerConfigKey(entry) === key);
    if (listed(this.#options.insecureRegistries)) return 'http';
    if (listed(this.#options.secureRegistries)) return 'https';
    return isLoopbackHost(registry) ? 'http' : 'https';
  }

  /**
   * The credentials used for `registry` (explicit, else from the Docker config), looked up once per
   * client (a failed or cancelled lookup is made again by the next request). Concurrent requests
   * share one lookup, each waiting within its own signal: one request's cancel or deadline ends its
   * wait, never the lookup for the others (it is aborted once none waits).
   */
  credentialsFor(registry: string, options: RequestOptions = {}): Promise<RegistryCredentials | undefined> {
    const key = normalizeDockerConfigKey(registry);
    if (this.#credentials.has(key)) return Promise.resolve(this.#credentials.get(key));
    return this.#credentialLookups.join(key, `credentials for ${registry}`, options.signal, async (shared) => {
      const creds = await this.#lookupCredentials(registry, shared);
      this.#credentials.set(key, creds);
      return creds;
    });
  }

  async #lookupCredentials(registry: string, signal: AbortSignal | undefined): Promise<RegistryCredentials | undefined> {
    const given = this.#options.credentials;
    if (typeof given === 'function') return given(registry, signal ? { signal } : {});
    if (given) {
      const list = Array.isArray(given) ? (given as readonly RegistryCredentials[]) : [given as RegistryCredentials];
      const key = normalizeDockerConfigKey(registry);
      const match = list.find((c) => normalizeDockerConfigKey(c.registry) === key);
      if (match) return match;
    }
    if (this.#options.dockerConfig === false) return undefined;
    const configOptions: DockerConfigOptions = typeof this.#options.dockerConfig === 'object' ? { ...this.#options.dockerConfig } : {};
    if (signal) configOptions.signal = signal;
    const creds = await dockerConfigCredentials(registry, configOptions);
    log('credentials for %s: %s', registry, creds ? creds.source : 'none');
    return creds;
  }

  /**
   * Whether `ref` exists, and the digest and media type of the manifest it names. The digest is the
   * sha256 of the manifest bytes read here (see {@link checkManifest}: with a manifest cache, a HEAD
   * and the bytes kept under its digest, else a GET bounded at 4 MiB; a registry whose
   * Docker-Content-Digest disagrees with a GET's bytes is a RegistryError), so it may go into an image map. With
   * `verify: false` it is a HEAD and the digest is what the registry claims: only for a digest that
   * is checked later anyway (a base image pulled by that digest).
   */
  async headManifest(ref: string | ImageRef, options: RequestOptions & { verify?: boolean } = {}): Promise<ManifestHead> {
    const image = toRef(ref);
    const path = `/v2/${image.repository}/manifests/${image.reference}`;
    const signal = options.signal ? { signal: options.signal } : {};
    if (options.verify !== false) {
      const check = await this.checkManifest(image, signal);
      if (!check.exists) return { exists: false };
      return { exists: true, digest: check.result.digest, mediaType: check.result.mediaType, size: check.result.size };
    }
    const res = await this.#request(image.registry, image.repository, 'HEAD', path, { accept: MANIFEST_ACCEPT.join(', ') }, options.signal, { what: 'manifest check' });
    if (res.status === 404) return { exists: false };
    this.#expectOk(res, image.registry, 'HEAD', path);
    const digest = res.headers.get('docker-content-digest');
    const mediaType = (res.headers.get('content-type') ?? '').split(';')[0]!.trim();
    const length = res.headers.get('content-length');
    if (!digest) {
      // Some registries omit the digest on HEAD; the manifest's own bytes give it.
      const full = await this.getManifest(image, signal);
      return { exists: true, digest: full.digest, mediaType: full.mediaType, size: full.size };
    }
    return { exists: true, digest, mediaType, size: length === null ? undefined : Number(length) };
  }

  /**
   * Whether `ref` exists, and its manifest, verified: its digest is the sha256 of its bytes. With a
   * `manifestCache`, a HEAD (same Accept as the GET) asks for the digest first — Docker Hub counts a
   * manifest GET as a pull against its rate limit, a HEAD not — and a manifest the cache holds under
   * that digest (its bytes hashed again) is taken from there: no GET. Otherwise — not kept, or a
   * registry whose HEAD gives no sha256 Docker-Content-Digest or refuses HEAD (400, 405, 406, 501:
   * after one such answer the client GETs that registry's manifests straight away) — a GET reads
   * the manifest, and the cache keeps it. Without a cache, one GET.
   */
  async checkManifest(ref: string | ImageRef, options: RequestOptions = {}): Promise<ManifestCheck> {
    const image = toRef(ref);
    const cache = this.#options.manifestCache;
    // A reference by another digest than sha256 is refused by the GET, before any request.
    if (cache && (!image.reference.includes(':') || isImageDigest(image.reference))) {
      const head = await this.#headForDigest(image, options.signal);
      if (head === 'missing') return { exists: false };
      const cached = head && (await cachedManifest(cache, image, head));
      if (cached) {
        log('manifest %s: %s, kept in the cache (HEAD only)', formatImageRef(image), cached.digest);
        return { exists: true, result: cached, cached: true };
      }
    }
    try {
      const result = await this.#getManifest(image, image.reference, options.signal);
      await cache?.write(result.digest, result.bytes);
      return { exists: true, result, cached: false };
    } catch (error) {
      if (error instanceof RegistryError && error.status === 404) return { exists: false };
      throw error;
    }
  }

  /**
   * A manifest HEAD for the digest `image` names now: 'missing' for a 404; undefined when the answer
   * gives no sha256 digest to look up (none, another algorithm, HEAD refused) or one other than the
   * digest asked for — the GET then decides.
   */
  async #headForDigest(image: ImageRef, signal: AbortSignal | undefined): Promise<'missing' | { digest: string; mediaType: string } | undefined> {
    if (this.#headsWithoutDigest.has(image.registry)) return undefined;
    const path = `/v2/${image.repository}/manifests/${image.reference}`;
    const res = await this.#request(image.registry, image.repository, 'HEAD', path, { accept: MANIFEST_ACCEPT.join(', ') }, signal, { what: 'manifest check' });
    if (res.status === 404) return 'missing';
    const digest = res.headers.get('docker-content-digest')?.trim();
    if (HEAD_REFUSED.has(res.status) || (res.status >= 200 && res.status < 300 && !digest)) {
      log('registry %s answered a manifest HEAD with %d and %s: reading its manifests by GET', image.registry, res.status, digest ? `digest ${digest}` : 'no digest');
      this.#headsWithoutDigest.add(image.registry);
      return undefined;
    }
    this.#expectOk(res, image.registry, 'HEAD', path);
    if (!digest || !isImageDigest(digest) || (image.reference.includes(':') && image.reference !== digest)) return undefined;
    return { digest, mediaType: contentType(res.headers) };
  }

  /**
   * Fetches the manifest `ref` names and verifies its digest. With `platform` (e.g. `linux/amd64`),
   * a manifest list / image index is resolved to that platform's manifest (`indexDigest` keeps the
   * index's digest), and a single-platform image is checked against its config's os/architecture;
   * a platform the image lacks is an InputError.
   */
  async getManifest(ref: string | ImageRef, options: RequestOptions & { platform?: string } = {}): Promise<ManifestResult> {
    const image = toRef(ref);
    const result = await this.#manifestAt(image, image.reference, options.signal);
    if (!options.platform) return result;
    if (isIndexMediaType(result.mediaType)) {
      const entry = selectPlatformManifest(result.manifest as ImageIndex, options.platform, formatImageRef(image));
      // Only a digest binds the platform's manifest to the index: a tag there would be fetched unverified.
      uncheckableDigest(entry.digest, `manifest ${image.registry}/${image.repository}@${String(entry.digest)}`, image.registry);
      const child = await this.#manifestAt(image, entry.digest, options.signal);
      if (isIndexMediaType(child.mediaType)) {
        throw new RegistryError(`manifest ${entry.digest} for ${options.platform} in ${formatImageRef(image)} is itself an index`, { registry: image.registry });
      }
      return { ...child, indexDigest: result.digest };
    }
    const config = await this.#getJsonBlob(image, (result.manifest as ImageManifest).config.digest, options.signal);
    const actual = config as Partial<OciPlatform>;
    if (typeof actual.os === 'string' && typeof actual.architecture === 'string' && !platformMatches(actual as OciPlatform, options.platform)) {
      const offered = [actual.os, actual.architecture, actual.variant].filter(Boolean).join('/');
      throw new InputError(`image ${formatImageRef(image)} is built for ${offered}, not for platform ${options.platform}`, {
        hint: 'Choose a base image built for that platform (or a multi-platform one), or build for the platform it has.',
      });
    }
    return result;
  }

  /**
   * The identity of a base image for `platform`: the digest of the platform's manifest the
   * reference resolves to now, and the reference pinned by it.
   */
  async baseImageIdentity(ref: string, platform: string, options: RequestOptions = {}): Promise<BaseImageIdentity> {
    const result = await this.getManifest(ref, { ...options, platform });
    return { ref, digest: result.digest, pinned: `${result.ref.registry}/${result.ref.repository}@${result.digest}` };
  }

  async #getJsonBlob(image: ImageRef, digest: string, signal: AbortSignal | undefined): Promise<unknown> {
    const body = await this.getBlob(image, digest, signal ? { signal } : {});
    try {
      return JSON.parse(Buffer.from(body).toString('utf8')) as unknown;
    } catch (error) {
      throw new RegistryError(`blob ${digest} of ${formatImageRef(image)} is not JSON`, { registry: image.registry }, { cause: error });
    }
  }

  /**
   * The manifest `reference` names in `image`'s repository. With a manifest cache, one named by a
   * sha256 digest that the cache holds is those bytes — the very bytes a GET would give — once a
   * HEAD shows the registry has it (a 404 as the GET's); one it does not hold is read by a GET, as
   * without a cache, and kept. Anything else: a GET.
   */
  async #manifestAt(image: ImageRef, reference: string, signal: AbortSignal | undefined): Promise<ManifestResult> {
    const cache = this.#options.manifestCache;
    if (!cache || typeof reference !== 'string' || !isImageDigest(reference)) return this.#getManifest(image, reference, signal);
    const target = { ...image, reference };
    const kept = await cache.read(reference);
    if (kept) {
      const head = await this.#headForDigest(target, signal);
      if (head === 'missing') throw manifestNotFound(image, reference);
      const result = head && keptManifest(kept, target, head);
      if (result) return result;
    }
    const result = await this.#getManifest(image, reference, signal);
    await cache.write(result.digest, result.bytes);
    return result;
  }

  async #getManifest(image: ImageRef, reference: string, signal: AbortSignal | undefined): Promise<ManifestResult> {
    const path = `/v2/${image.repository}/manifests/${reference}`;
    if (typeof reference !== 'string') uncheckableDigest(reference, `manifest ${image.registry}/${image.repository}@${String(reference)}`, image.registry);
    const name = manifestName(image, reference);
    if (reference.includes(':')) uncheckableDigest(reference, `manifest ${name}`, image.registry);
    const res = await this.#request(image.registry, image.repository, 'GET', path, { accept: MANIFEST_ACCEPT.join(', ') }, signal, { what: 'manifest', limit: BODY_LIMITS.manifest });
    if (res.status === 404) throw manifestNotFound(image, reference);
    this.#expectOk(res, image.registry, 'GET', path);
    const digest = sha256Digest(res.body);
    const announced = res.headers.get('docker-content-digest');
    if (announced && announced.startsWith('sha256:') && announced !== digest) {
      throw new RegistryError(`registry ${image.registry} sent manifest ${name} with the digest header ${announced}, but its bytes hash to ${digest}; refusing a digest the registry merely claims`, { registry: image.registry }, {
        hint: 'The registry (or a proxy in front of it) is broken or tampering with manifests; check it before pushing or deploying again.',
      });
    }
    if (reference.startsWith('sha256:') && reference !== digest) {
      throw new RegistryError(`manifest ${name} does not match the requested digest: the bytes hash to ${digest}`, { registry: image.registry });
    }
    const { manifest, mediaType } = parseManifest(res.body, contentType(res.headers), name, image.registry);
    return { ref: image, digest, mediaType, size: res.body.length, bytes: res.body, manifest };
  }

  /** Whether a blob exists in a repository (`repository` like `127.0.0.1:5000/team/app`; a tag is ignored). */
  async headBlob(repository: string | ImageRef, digest: string, options: RequestOptions = {}): Promise<BlobHead> {
    const image = toRef(repository);
    const path = `/v2/${image.repository}/blobs/${digest}`;
    const res = await this.#request(image.registry, image.repository, 'HEAD', path, {}, options.signal, { what: 'blob check' });
    if (res.status === 404) return { exists: false };
    this.#expectOk(res, image.registry, 'HEAD', path);
    const length = res.headers.get('content-length');
    return { exists: true, size: length === null ? undefined : Number(length) };
  }

  /**
   * Fetches a blob (e.g. an image config) and verifies it against its sha256 digest (another kind
   * of digest is refused before the request). It is read into memory: at most `size` bytes when
   * given (a descriptor's size: the registry's word, so the caller holds it to what such a blob can
   * be, as readImageSbom does; a layer goes to a file instead: {@link getBlobToFile}), else 4 MiB.
   */
  async getBlob(repository: string | ImageRef, digest: string, options: RequestOptions & { size?: number } = {}): Promise<Uint8Array> {
    const image = toRef(repository);
    uncheckableDigest(digest, `blob ${digest} of ${formatImageRef(image)}`, image.registry);
    const path = `/v2/${image.repository}/blobs/${digest}`;
    const res = await this.#request(image.registry, image.repository, 'GET', path, {}, options.signal, { what: 'blob', limit: options.size ?? BODY_LIMITS.json });
    if (res.status === 404) {
      throw new RegistryError(`blob ${digest} was not found in ${image.registry}/${image.repository}`, { registry: image.registry, status: 404 });
    }
    this.#expectOk(res, image.registry, 'GET', path);
    if (sha256Digest(res.body) !== digest) {
      throw new RegistryError(`blob ${digest} of ${formatImageRef(image)} does not match its digest`, { registry: image.registry });
    }
    return res.body;
  }

  /**
   * Fetches a blob (a base layer to copy) into `file`, streamed: one network chunk in memory at a
   * time, hashed as it is written, `size` bytes at most; the file appears (atomically) only when
   * its bytes match the digest. For {@link uploadBlob}'s file source, so a layer copied from one
   * registry to another is never held whole.
   */
  async getBlobToFile(repository: string | ImageRef, digest: string, file: string, options: RequestOptions & { size: number }): Promise<BlobFile> {
    const image = toRef(repository);
    // Another kind of digest could never match the bytes: refused before they are downloaded.
    uncheckableDigest(digest, `blob ${String(digest)} of ${formatImageRef(image)}`, image.registry);
    const path = `/v2/${image.repository}/blobs/${digest}`;
    const partial = `${file}.partial`;
    let written = 0;
    const cannotWrite = (error: unknown): never => {
      throw diskFullError(error, { dir: dirname(file), doing: `writing the blob ${digest}` }) ?? new EnvironmentError(`cannot write the blob ${digest} to ${partial}: ${rootMessage(error)}`, { cause: error });
    };
    const sink = async (chunks: AsyncIterable<Uint8Array>): Promise<void> => {
      const hash = createHash('sha256');
      let size = 0;
      written = 0;
      const out = await open(partial, 'w').catch(cannotWrite);
      try {
        for await (const chunk of chunks) {
          size += chunk.length;
          written = size;
          if (size > options.size) throw new RegistryError(`blob ${digest} of ${image.registry}/${image.repository} is larger than its ${options.size} bytes`, { registry: image.registry });
          hash.update(chunk);
          await out.write(chunk).catch(cannotWrite);
        }
      } finally {
        await out.close();
      }
      if (`sha256:${hash.digest('hex')}` !== digest) throw new RegistryError(`blob ${digest} of ${image.registry}/${image.repository} does not match its digest`, { registry: image.registry });
    };
    try {
      const res = await this.#request(image.registry, image.repository, 'GET', path, {}, options.signal, { what: 'blob', sink });
      if (res.status === 404) throw new RegistryError(`blob ${digest} was not found in ${image.registry}/${image.repository}`, { registry: image.registry, status: 404 });
      this.#expectOk(res, image.registry, 'GET', path);
      await rename(partial, file);
    } finally {
      await rm(partial, { force: true });
    }
    return { file, size: written };
  }

  /** Bytes and blobs this client has sent so far (for measuring what a push cost). */
  get stats(): Readonly<TransferStats> {
    return { ...this.#stats };
  }

  /**
   * Puts a blob into a repository unless it is there: HEAD first; then a cross-repository mount
   * from each of `mountFrom` (same registry); then an upload — one PUT for small blobs, PATCH
   * chunks and a closing PUT for large ones. Needs push access (`pull,push` scope). `source` is the
   * bytes; or a file ({@link BlobFile}: a layer), read one chunk at a time and hashed as it is read,
   * its digest checked before the closing PUT, so any size goes up with one chunk in memory; or a
   * function giving the bytes or a file, called only when the blob must really be uploaded (e.g. to
   * fetch it from elsewhere: {@link getBlobToFile}). An upload that fails or is cancelled after
   * its session was opened DELETEs the session (best effort, within 2 s) before it rejects.
   *
   * One upload of a blob into a repository at a time in this process (every client): a call for a
   * blob another call is putting there waits for it, then finds it present. Envs of one build share
   * layers (python, common packages) and push to one repository at once; two uploads of one blob
   * committing together make the registry rewrite the repository's link to it, and a manifest PUT
   * in that moment is refused as naming an unknown blob (distribution's filesystem storage:
   * MANIFEST_BLOB_UNKNOWN) — one image of the build failed at random under load.
   */
  async uploadBlob(repository: string | ImageRef, digest: string, source: BlobSource, options: UploadBlobOptions = {}): Promise<UploadBlobResult> {
    const image = toRef(repository);
    const key = `${image.registry}/${image.repository}@${digest}`;
    for (let running = uploadsInFlight.get(key); running; running = uploadsInFlight.get(key)) {
      await running.catch(() => undefined); // its failure is its caller's; this call tries on its own
      if (options.signal?.aborted) throw new CancelledError(`The upload of ${digest} to ${image.registry}/${image.repository} was cancelled.`, { cause: options.signal.reason });
    }
    const upload = this.#uploadBlob(image, digest, source, options);
    uploadsInFlight.set(key, upload);
    try {
      return await upload;
    } finally {
      if (uploadsInFlight.get(key) === upload) uploadsInFlight.delete(key);
    }
  }

  async #uploadBlob(image: ImageRef, digest: string, source: BlobSource, options: UploadBlobOptions): Promise<UploadBlobResult> {
    const { signal } = options;
    const pushScopes = [`repository:${image.repository}:pull,push`];
    if (!/^sha256:[0-9a-f]{64}$/.test(digest)) throw new InputError(`'${digest}' is not a sha256 digest`);
    const check = (data: Uint8Array): Uint8Array => {
      if (sha256Digest(data) !== digest) throw new InputError(`the blob to upload to ${image.registry}/${image.repository} does not match its digest ${digest}`);
      return data;
    };
    if (source instanceof Uint8Array) check(source);
    const opened = await this.#openUpload(image, digest, pushScopes, options);
    if (typeof opened !== 'string') return opened;
    let location = opened;
    const uploadsPath = `/v2/${image.repository}/blobs/uploads/`;

    const chunkSize = Math.max(1, options.chunkSize ?? 8 * 1024 * 1024);
    const target = `${image.registry}/${image.repository}`;
    let bytes: BlobChunks | undefined;
    let sent = 0;
    let committed = false;
    try {
      bytes = await blobChunks(source, check, digest, target, chunkSize);
      if (bytes.size > chunkSize) {
        while (sent < bytes.size) {
          const chunk = await bytes.read(sent, Math.min(chunkSize, bytes.size - sent));
          const headers = { 'content-type': 'application/octet-stream', 'content-range': `${sent}-${sent + chunk.length - 1}` };
          const res = await this.#request(image.registry, image.repository, 'PATCH', location, headers, signal, { scopes: pushScopes, body: chunk, what: 'blob upload' });
          this.#expectOk(res, image.registry, 'PATCH', uploadsPath);
          location = this.#location(res, image.registry, uploadsPath);
          sent += chunk.length;
          this.#stats.bytesSent += chunk.length;
          options.onProgress?.(sent, bytes.size);
        }
      }
      const rest = await bytes.read(sent, bytes.size - sent);
      const put = this.#withQuery(location, `digest=${encodeURIComponent(digest)}`);
      const res = await this.#request(image.registry, image.repository, 'PUT', put, { 'content-type': 'application/octet-stream' }, signal, { scopes: pushScopes, body: rest, what: 'blob upload' });
      this.#expectOk(res, image.registry, 'PUT', uploadsPath);
      committed = true;
      this.#stats.bytesSent += rest.length;
      sent += rest.length;
      if (rest.length > 0) options.onProgress?.(bytes.size, bytes.size);
      const stored = res.headers.get('docker-content-digest');
      if (stored && stored !== digest) {
        throw new RegistryError(`registry ${image.registry} stored the blob ${digest} as ${stored}`, { registry: image.registry });
      }
    } catch (error) {
      // Whatever ended the upload before its closing PUT was taken (a blob not what it was said to be, a cancel, the
      // network or the registry failing after some chunks): the registry is told to drop the session and what it got,
      // rather than keep it until its own purge (distribution: a week).
      if (!committed) await this.#abandonUpload(image, location, pushScopes, signal);
      throw error;
    } finally {
      await bytes?.close();
    }
    this.#stats.blobsUploaded += 1;
    log('uploaded %s to %s (%d bytes)', digest, image.repository, sent);
    return { status: 'uploaded', bytesSent: sent };
  }

  /**
   * The start of an upload: the blob found present (HEAD) or mounted from one of `mountFrom`, or
   * the location of the upload session the registry opened.
   */
  async #openUpload(image: ImageRef, digest: string, pushScopes: readonly string[], options: UploadBlobOptions): Promise<UploadBlobResult | string> {
    const { signal } = options;
    const head = await this.#request(image.registry, image.repository, 'HEAD', `/v2/${image.repository}/blobs/${digest}`, {}, signal, { scopes: pushScopes, what: 'blob check' });
    if (head.status >= 200 && head.status < 300) {
      this.#stats.blobsExisting += 1;
      return { status: 'exists', bytesSent: 0 };
    }
    if (head.status !== 404) this.#expectOk(head, image.registry, 'HEAD', `/v2/${image.repository}/blobs/${digest}`);

    const uploadsPath = `/v2/${image.repository}/blobs/uploads/`;
    for (const from of options.mountFrom ?? []) {
      if (from === image.repository) continue;
      const query = `?mount=${encodeURIComponent(digest)}&from=${encodeURIComponent(from)}`;
      const scopes = [...pushScopes, `repository:${from}:pull`];
      const res = await this.#request(image.registry, image.repository, 'POST', `${uploadsPath}${query}`, {}, signal, { scopes, body: new Uint8Array(), what: 'blob mount' });
      if (res.status === 201) {
        log('mounted %s into %s from %s', digest, image.repository, from);
        this.#stats.blobsMounted += 1;
        return { status: 'mounted', bytesSent: 0 };
      }
      this.#expectOk(res, image.registry, 'POST', uploadsPath);
      // 202: the registry did not mount, and opened an upload session instead.
      return this.#location(res, image.registry, uploadsPath);
    }
    const res = await this.#request(image.registry, image.repository, 'POST', uploadsPath, {}, signal, { scopes: pushScopes, body: new Uint8Array(), what: 'blob upload' });
    this.#expectOk(res, image.registry, 'POST', uploadsPath);
    return this.#location(res, image.registry, uploadsPath);
  }

  /**
   * Best effort DELETE of an upload session that will not be finished: one attempt, within
   * {@link ABANDON_UPLOAD_MS}, its failure only logged (the caller throws the error that ended the
   * upload). A cancelled upload still sends it (the caller's signal has aborted: the DELETE has its
   * own deadline only, so a cancel waits for it at most that long); a caller's signal aborting while
   * it runs ends it at once.
   */
  async #abandonUpload(image: ImageRef, location: string, scopes: readonly string[], signal: AbortSignal | undefined): Promise<void> {
    const deadline = AbortSignal.timeout(ABANDON_UPLOAD_MS);
    const bounded = signal && !signal.aborted ? AbortSignal.any([signal, deadline]) : deadline;
    try {
      const res = await this.#request(image.registry, image.repository, 'DELETE', location, {}, bounded, { scopes, what: 'blob upload', attempts: 1 });
      log('dropped the upload session of %s: %d', image.repository, res.status);
    } catch (error) {
      log('could not drop the upload session of %s: %s', image.repository, rootMessage(error));
    }
  }

  /**
   * Puts a manifest (or index) under `ref`'s tag or digest and returns its digest, checked against
   * the one the registry announces. Every blob it names must already be in the repository.
   */
  async putManifest(ref: string | ImageRef, bytes: Uint8Array, mediaType: string, options: RequestOptions = {}): Promise<string> {
    return (await this.putManifestWithSubject(ref, bytes, mediaType, options)).digest;
  }

  /** The upload URL a registry answered with (Location, relative or absolute). */
  #location(res: HttpResult, registry: string, path: string): string {
    const location = res.headers.get('location');
    if (!location) throw new RegistryError(`registry ${registry} answered ${res.status} to ${path} without a Location for the upload`, { registry, status: res.status });
    return location;
  }

  #withQuery(location: string, query: string): string {
    return `${location}${location.includes('?') ? '&' : '?'}${query}`;
  }

  async #allPresent(image: ImageRef, digests: readonly string[], options: RequestOptions): Promise<boolean> {
    const heads = await Promise.all(digests.map((digest) => this.headBlob(image, digest, options)));
    return heads.every((head) => head.exists);
  }

  #expectOk(res: HttpResult, registry: string, method: string, path: string): void {
    if (res.status >= 200 && res.status < 300) return;
    const detail = registryErrorDetail(res.body);
    throw new RegistryError(`registry ${registry} answered ${describeStatus(res.status)} to ${method} ${path}${detail ? `: ${detail}` : ''}`, { registry, status: res.status });
  }

  #url(registry: string, path: string): string {
    if (/^https?:\/\//i.test(path)) return path;
    return `${this.scheme(registry)}://${registryApiHost(registry)}${path}`;
  }

  /**
   * One registry request with auth: known auth sent up front, a 401 challenge answered once. The
   * Authorization header goes only to the registry's own origin: an upload Location or a redirect on
   * another host gets none (as Docker does), nor one on its own host over another scheme (an
   * https:// registry's credentials never go out over http://).
   */
  async #request(
    registry: string,
    repository: string,
    method: string,
    path: string,
    headers: Record<string, string>,
    signal: AbortSignal | undefined,
    extra: { scopes?: readonly string[]; body?: Uint8Array } & ReadPlan,
  ): Promise<HttpResult> {
    const scope = extra.scopes?.join(' ') ?? `repository:${repository}:pull`;
    const url = this.#url(registry, path);
    const what = `${method} ${url.replace(/\?.*$/, '')}`;
    const init = { method, headers, ...(extra.body === undefined ? {} : { body: extra.body }) };
    const plan: ReadPlan = {
      what: extra.what,
      ...(extra.limit === undefined ? {} : { limit: extra.limit }),
      ...(extra.sink ? { sink: extra.sink } : {}),
      ...(extra.attempts === undefined ? {} : { attempts: extra.attempts }),
    };
    const origin = new URL(this.#url(registry, '/v2/')).origin;
    const before = await this.#knownAuthorization(registry, scope, signal);
    let res = await this.#fetch(registry, url, init, what, signal, { ...plan, ...(before ? { authorization: { value: before, origin } } : {}) });
    // A 401 is answered only when the registry itself asked: a challenge from an upload Location or
    // a redirect's host elsewhere (a blob store naming its own token realm) would get the registry's credentials.
    const answered = new URL(res.url);
    if (res.status === 401 && answered.origin !== origin) throw this.#foreignLocation(registry, extra.what, answered, origin);
    if (res.status === 401) {
      const challenges = parseWwwAuthenticate(res.headers.get('www-authenticate'));
      const authorization = await this.#answerChallenge(registry, challenges, scope, signal);
      res = await this.#fetch(registry, url, init, what, signal, { ...plan, authorization: { value: authorization, origin } });
      if (res.status === 401) throw await this.#rejected(registry, scope, res);
    }
    if (res.status === 403 && new URL(res.url).origin !== origin) throw this.#refusedElsewhere(registry, extra.what, new URL(res.url), res);
    if (res.status === 403) throw await this.#rejected(registry, scope, res);
    return res;
  }

  /**
   * The error of a request the registry sent elsewhere (a blob store a redirect reached, an upload
   * Location) that the other host refused: that host sent no credentials of the registry's to check,
   * so the registry's credentials are not the ones to blame — most often a pre-signed URL expired.
   */
  #refusedElsewhere(registry: string, what: string, target: URL, res: HttpResult): RegistryError {
    const detail = registryErrorDetail(res.body);
    return new RegistryError(`registry ${registry} sent the ${what} to ${target.host}, which refused it (${describeStatus(res.status)}${detail ? `: ${detail}` : ''})`, { registry, status: res.status }, {
      hint: `The registry hands out URLs on ${target.host} (its storage): a pre-signed one may have expired (a slow transfer, a clock off) — try again; if it keeps failing, check the registry's storage settings and credentials.`,
    });
  }

  /**
   * The error of a request the registry sent elsewhere (an upload Location, a redirect) that asks
   * for credentials: another host, or its own over another scheme (http:// from a proxy ending TLS
   * that does not say so), never gets them, nor is its challenge answered.
   */
  #foreignLocation(registry: string, what: string, target: URL, origin: string): RegistryError {
    const host = registryApiHost(registry);
    if (target.host !== host) {
      return new RegistryError(`registry ${registry} sent the ${what} to ${target.host}, which asks for credentials; prebuilt sends the credentials of ${registry} to its own host only`, { registry, status: 401 }, {
        hint: `Configure the registry to answer with upload locations on ${host}, or to let that host accept the upload without credentials (e.g. a pre-signed URL).`,
      });
    }
    return new RegistryError(`registry ${registry} sent the ${what} to ${target.origin}, which asks for credentials; prebuilt sends the credentials of ${registry} to ${origin} only`, { registry, status: 401 }, {
      hint: `Configure the registry to answer with ${new URL(origin).protocol}// locations (a proxy that ends TLS in front of it must pass X-Forwarded-Proto: https).`,
    });
  }

  /** Access refused: an AuthError for credentials that were sent (exit 1), a LoginRequiredError when there were none (exit 2: a login to make). */
  async #rejected(registry: string, scope: string, res: HttpResult): Promise<AuthError | LoginRequiredError> {
    const creds = await this.credentialsFor(registry).catch(() => undefined);
    const mode = this.#authModes.get(normalizeDockerConfigKey(registry));
    const detail = registryErrorDetail(res.body);
    const source = creds?.source ?? this.#noCredentialsSource();
    const message =
      mode?.kind === 'basic'
        ? `registry ${registry} rejected the credentials of ${who(creds)}`
        : `registry ${registry} denied ${creds ? `${who(creds)} access` : 'anonymous access'} to ${scope}`;
    const text = `${message} (${describeStatus(res.status)}${detail ? `: ${detail}` : ''})`;
    const hint = this.#credentialsHint(registry, creds);
    if (creds) return new AuthError(text, { registry, source }, { hint });
    // Docker Hub and others answer a repository that does not exist as one that needs a login.
    const repository = /^repository:(.+):[^:]+$/.exec(scope)?.[1];
    const missing = mode?.kind !== 'basic' && repository ? ` If ${registry}/${repository} is public, check its name: a registry answers a repository that does not exist this way too.` : '';
    return new LoginRequiredError(`${text}, and no credentials for it were found`, { registry, source }, { hint: `${hint}${missing}` });
  }

  /** What to do about credentials `registry` refused or asked for: fix the ones used, or give some (the backend's settings too). */
  #credentialsHint(registry: string, creds: RegistryCredentials | undefined): string {
    if (creds) return creds.refusedHint ?? `Check the credentials in ${creds.source}, or log in again with 'docker login ${registry}'.`;
    const other = this.#options.credentialsHint?.(registry);
    return `Log in with 'docker login ${registry}'${other ? `, or ${other}` : ' or pass credentials for it'}.`;
  }

  #noCredentialsSource(): string {
    if (this.#options.dockerConfig === false) return 'no credentials';
    const config = typeof this.#options.dockerConfig === 'object' ? this.#options.dockerConfig : {};
    return `no credentials (looked in ${config.configPath ?? dockerConfigPath(config.env ?? process.env)})`;
  }

  /** The Authorization header to send before any challenge, when this registry's scheme is known. */
  async #knownAuthorization(registry: string, scope: string, signal: AbortSignal | undefined): Promise<string | undefined> {
    const key = normalizeDockerConfigKey(registry);
    const mode = this.#authModes.get(key);
    if (!mode) return undefined;
    if (mode.kind === 'basic') return this.#basicAuthorization(registry, await this.credentialsFor(registry, signal ? { signal } : {}));
    const cached = this.#tokens.get(`${key} ${scope}`);
    if (cached && cached.expiresAt > Date.now()) return `Bearer ${cached.value}`;
    return this.#bearerAuthorization(registry, mode.params, scope, signal);
  }

  async #answerChallenge(registry: string, challenges: AuthChallenge[], scope: string, signal: AbortSignal | undefined): Promise<string> {
    const key = normalizeDockerConfigKey(registry);
    const bearer = challenges.find((c) => c.scheme === 'bearer' && c.params['realm']);
    if (bearer) {
      this.#authModes.set(key, { kind: 'bearer', params: bearer.params });
      this.#tokens.delete(`${key} ${scope}`);
      return this.#bearerAuthorization(registry, bearer.params, scope, signal);
    }
    if (challenges.some((c) => c.scheme === 'basic')) {
      this.#authModes.set(key, { kind: 'basic' });
      return this.#basicAuthorization(registry, await this.credentialsFor(registry, signal ? { signal } : {}));
    }
    throw new RegistryError(
      `registry ${registry} asked for authentication without a usable challenge (WWW-Authenticate: ${challenges.map((c) => c.scheme).join(', ') || 'missing'})`,
      { registry, status: 401 },
    );
  }

  #basicAuthorization(registry: string, creds: RegistryCredentials | undefined): string {
    if (!creds || creds.password === undefined) {
      throw new LoginRequiredError(`registry ${registry} requires a user name and password, and ${creds ? `${creds.source} has none` : 'none were found'}`, { registry, source: creds?.source ?? this.#noCredentialsSource() }, {
        hint: this.#credentialsHint(registry, undefined),
      });
    }
    return basicAuthorization(creds.username ?? '', creds.password.reveal());
  }

  /**
   * A Bearer Authorization header for `scope`; concurrent requests for one scope share one token
   * fetch, each waiting on it within its own signal (the fetch ends once none waits): a request's
   * deadline bounds its wait, and never cancels the fetch for the others.
   */
  #bearerAuthorization(registry: string, params: Record<string, string>, scope: string, signal: AbortSignal | undefined): Promise<string> {
    const cacheKey = `${normalizeDockerConfigKey(registry)} ${scope}`;
    return this.#tokenFetches.join(cacheKey, `token for ${registry} (${scope})`, signal, (shared) => this.#fetchToken(registry, params, scope, shared));
  }

  /** Gets a token from the challenge's realm (with the user's credentials, or anonymously) and caches it per scope. */
  async #fetchToken(registry: string, params: Record<string, string>, scope: string, signal: AbortSignal | undefined): Promise<string> {
    const key = normalizeDockerConfigKey(registry);
    const creds = await this.credentialsFor(registry, signal ? { signal } : {});
    if (creds?.registryToken) return configuredBearer(creds.registryToken.reveal(), creds.source, registry);
    const realm = params['realm']!;
    let url: URL;
    try {
      url = new URL(realm);
    } catch (error) {
      throw new RegistryError(`registry ${registry} named an invalid token realm '${redactUrls(realm)}'`, { registry }, {
        cause: error,
        hint: `A registry's token realm (WWW-Authenticate: Bearer realm="…") must be the URL of its token service; if ${registry} is yours, set it (auth.token.realm in distribution) to an https:// URL.`,
      });
    }
    // A realm on a cloud metadata address, or on this machine for a registry elsewhere: not fetched (SSRF).
    checkTokenRealm(url, registry);
    if ((creds?.identityToken || creds?.password !== undefined) && url.protocol === 'http:' && this.scheme(registry) === 'https' && !isLoopbackHost(url.host)) {
      throw new RegistryError(`registry ${registry} named the token server ${url.origin}${url.pathname}, over plain HTTP; prebuilt sends the credentials of an HTTPS registry over HTTPS only`, { registry }, {
        hint: `Configure the registry's token realm (auth.token.realm in distribution) with an https:// URL; its credentials (${creds.source}) would cross the network in clear.`,
      });
    }
    const service = params['service'];
    const headers: Record<string, string> = { accept: 'application/json' };
    let init: { method: string; headers: Record<string, string>; body?: string };
    let authorization: string | undefined;
    if (creds?.identityToken) {
      // OAuth2 refresh-token grant, as Docker does with an identity token.
      const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: creds.identityToken.reveal(), client_id: 'prebuilt', scope });
      if (service) form.set('service', service);
      init = { method: 'POST', headers: { ...headers, 'content-type': 'application/x-www-form-urlencoded' }, body: form.toString() };
    } else {
      if (service) url.searchParams.set('service', service);
      for (const one of scope.split(' ')) url.searchParams.append('scope', one);
      if (creds?.password !== undefined) {
        authorization = basicAuthorization(creds.username ?? '', creds.password.reveal());
      }
      init = { method: 'GET', headers };
    }
    const tokenUrl = url.toString();
    log('token for %s scope %s from %s (%s)', registry, scope, url.origin + url.pathname, who(creds));
    // The realm is where the token protocol sends the credentials: to its host only, never on to a redirect elsewhere.
    const res = await this.#fetch(registry, tokenUrl, init, `${init.method} ${url.origin}${url.pathname}`, signal, {
      what: 'token',
      limit: BODY_LIMITS.json,
      // A refresh token in the body stays with the realm's host.
      bodyToOtherOrigins: false,
      // Where the realm redirects is checked as the realm is.
      beforeRedirect: (to, from) => checkTokenRealm(to, registry, from),
      ...(authorization ? { authorization: { value: authorization, origin: url.origin } } : {}),
    });
    if (res.status === 401 || res.status === 403) {
      const detail = registryErrorDetail(res.body);
      const text = `token server ${url.origin}${url.pathname} for registry ${registry} refused ${who(creds)} (${describeStatus(res.status)}${detail ? `: ${detail}` : ''})`;
      const fields = { registry, source: creds?.source ?? this.#noCredentialsSource() };
      const hint = { hint: this.#credentialsHint(registry, creds) };
      // No credentials were sent: a login to make (exit 2), not credentials refused.
      throw creds ? new AuthError(text, fields, hint) : new LoginRequiredError(`${text}, and no credentials for it were found`, fields, hint);
    }
    if (res.status < 200 || res.status >= 300) {
      const detail = registryErrorDetail(res.body);
      throw new RegistryError(`token server ${url.origin}${url.pathname} for registry ${registry} answered ${describeStatus(res.status)}${detail ? `: ${detail}` : ''}`, { registry, status: res.status });
    }
    let data: { token?: unknown; access_token?: unknown; expires_in?: unknown };
    try {
      data = JSON.parse(Buffer.from(res.body).toString('utf8')) as typeof data;
    } catch (error) {
      throw new RegistryError(`token server ${url.origin}${url.pathname} for registry ${registry} answered with something that is not JSON`, { registry }, { cause: error });
    }
    const token = typeof data.token === 'string' && data.token ? data.token : typeof data.access_token === 'string' ? data.access_token : '';
    if (!token) throw new RegistryError(`token server ${url.origin}${url.pathname} for registry ${registry} answered without a token`, { registry });
    const lifetime = typeof data.expires_in === 'number' && data.expires_in > 0 ? data.expires_in : 60;
    const header = servedBearer(token, `${url.origin}${url.pathname}`, registry);
    this.#tokens.set(`${key} ${scope}`, { value: token, expiresAt: Date.now() + lifetime * 900 });
    return header;
  }

  /**
   * One HTTP exchange with retries: 429 (honouring Retry-After), 5xx, dropped connections and
   * stalls are retried with exponential backoff and jitter; every attempt has an idle timeout and a
   * deadline; the caller's abort rejects with CancelledError at once. The body is read within the
   * attempt, bounded (`plan.limit` for a 2xx answer, 64 KiB of an error). `authorization` goes only
   * to `origin` (scheme, host and port: an http:// hop of an https:// registry's own host gets none); redirects are followed by hand.
   */
  async #fetch(
    registry: string,
    url: string,
    init: { method: string; headers: Record<string, string>; body?: string | Uint8Array },
    what: string,
    signal: AbortSignal | undefined,
    plan: ReadPlan & { authorization?: { value: string; origin: string }; bodyToOtherOrigins?: boolean; beforeRedirect?: (to: URL, from: URL) => void },
  ): Promise<HttpResult> {
    const attempts = plan.attempts ?? this.#retry.attempts;
    const headers = { 'user-agent': this.#options.userAgent ?? 'prebuilt', ...init.headers };
    const cancelled = (cause: unknown): CancelledError => new CancelledError(`registry request cancelled: ${what}`, { cause });
    const authorize = plan.authorization ? (hop: URL) => (hop.origin === plan.authorization!.origin ? plan.authorization!.value : undefined) : undefined;
    for (let attempt = 1; ; attempt++) {
      if (signal?.aborted) throw cancelled(signal.reason);
      let failure: ExchangeFailure;
      try {
        const response: NetResponse = await netFetch(url, {
          method: init.method,
          headers,
          ...(init.body === undefined ? {} : { body: init.body }),
          what: plan.what,
          timeouts: this.#timeouts,
          ...(plan.bodyToOtherOrigins === false ? { bodyToOtherOrigins: false } : {}),
          ...(plan.beforeRedirect ? { beforeRedirect: plan.beforeRedirect } : {}),
          ...(signal ? { signal } : {}),
          ...(authorize ? { authorize } : {}),
        });
        const ok = response.status >= 200 && response.status < 300;
        const body =
          init.method === 'HEAD'
            ? (await response.cancel(), new Uint8Array())
            : ok && plan.sink
              ? (await sinkBody(plan.sink, response), new Uint8Array())
              : ok && plan.limit !== undefined
                ? await response.bytes(plan.limit)
                : await response.prefix(BODY_LIMITS.error);
        this.#answered.add(registry);
        log('%s → %d (attempt %d)', what, response.status, attempt);
        if (!isRetryableStatus(response.status)) return { status: response.status, headers: response.headers, body, url: response.url };
        const detail = registryErrorDetail(body);
        const retryAfter = parseRetryAfter(response.headers.get('retry-after'));
        failure = { reason: `${describeStatus(response.status)}${detail ? ` (${detail})` : ''}`, retryable: true, status: response.status, ...(retryAfter === undefined ? {} : { retryAfter }) };
      } catch (error) {
        if (signal?.aborted) throw cancelled(signal.reason);
        // A sink's own failure (a full disk writing the blob's file) is not the network's: not retried.
        if (plan.sink && PrebuiltError.isInstance(error) && !(error instanceof NetworkError)) throw error;
        // A redirect refused by the plan's own check (a token realm's): not the network's either.
        if (error instanceof RegistryError) throw error;
        failure = this.#exchangeFailure(registry, what, error);
        log('%s failed: %s (attempt %d)', what, failure.reason, attempt);
      }
      if (!failure.retryable || attempt >= attempts) throw this.#gaveUp(registry, what, attempt, failure);
      const delay = failure.retryAfter !== undefined ? Math.min(failure.retryAfter, this.#retry.maxDelayMs) : backoffDelay(attempt, this.#retry);
      log('retrying %s in %d ms', what, delay);
      try {
        await sleep(delay, signal);
      } catch (error) {
        throw cancelled(error);
      }
    }
  }

  /**
   * What an exchange that threw (no answer, or a body cut off) means: a failure to retry or not; a
   * registry that never answered and has nothing listening is UnreachableError (exit 2, as an
   * unreachable Docker daemon), a body too large or a refused redirect a RegistryError at once.
   */
  #exchangeFailure(registry: string, what: string, error: unknown): ExchangeFailure {
    if (error instanceof NetworkError) {
      if (error.reason === 'too-large' || error.reason === 'redirect') {
        throw new RegistryError(`registry ${registry}: ${what} failed: ${error.message}`, { registry }, { cause: error, ...(error.hint ? { hint: error.hint } : {}) });
      }
      return { reason: error.message, retryable: true, cause: error };
    }
    if (isNothingThere(error) && !this.#answered.has(registry)) {
      // A name that does not resolve is most often a typo in a setting: say so, not getaddrinfo's code.
      const notFound = isHostNotFound(error);
      const reason = isConnectionRefused(error) ? 'connection refused' : notFound ? `the host name '${hostWithoutPort(registry)}' does not resolve` : rootMessage(error);
      throw new UnreachableError(`registry ${registry}: ${what} failed: ${reason}`, { service: `registry ${registry}` }, {
        cause: error,
        hint: notFound
          ? `Check the spelling of the registry host ${registry} (in the registry setting or image reference it comes from), and that this machine's DNS knows it.`
          : this.#notRunningHint(registry),
      });
    }
    if (isConnectionRefused(error)) return { reason: 'connection refused', retryable: this.#answered.has(registry), cause: error };
    return { reason: rootMessage(error), retryable: isRetryableNetworkError(error), cause: error };
  }

  /** What to do when nothing listens at `registry`: the backend's way to start it, else to check it. */
  #notRunningHint(registry: string): string {
    return this.#options.unreachableHint?.(registry) ?? `Check that the registry ${registry} is running and reachable (${this.scheme(registry)}).`;
  }

  /** The error of an exchange given up on after `attempt` attempts, with what to do. */
  #gaveUp(registry: string, what: string, attempt: number, failure: ExchangeFailure): RegistryError {
    const tries = attempt > 1 ? ` after ${attempt} attempts` : '';
    const stalled = failure.cause instanceof NetworkError;
    return new RegistryError(`registry ${registry}: ${what} failed${tries}: ${failure.reason}`, { registry, ...(failure.status === undefined ? {} : { status: failure.status }) }, {
      ...(failure.cause === undefined ? {} : { cause: failure.cause }),
      hint:
        failure.reason === 'connection refused'
          ? this.#notRunningHint(registry)
          : stalled
            ? (failure.cause as NetworkError).hint ?? 'The registry stalled; try again later.'
            : 'The registry or the network may be overloaded or down; try again later.',
    });
  }

  /**
   * Like {@link putManifest}, and tells whether the registry processed the manifest's `subject`:
   * a registry with the OCI referrers API answers the PUT with an `OCI-Subject` header; one without
   * (Docker's distribution 2.8) does not, and the pusher must keep the referrers tag itself.
   */
  async putManifestWithSubject(ref: string | ImageRef, bytes: Uint8Array, mediaType: string, options: RequestOptions = {}): Promise<{ digest: string; subjectAccepted: boolean; subject?: string }> {
    const image = toRef(ref);
    const digest = sha256Digest(bytes);
    const path = `/v2/${image.repository}/manifests/${image.reference}`;
    const put = (): Promise<HttpResult> =>
      this.#request(image.registry, image.repository, 'PUT', path, { 'content-type': mediaType }, options.signal, {
        scopes: [`repository:${image.repository}:pull,push`],
        body: bytes,
        what: 'manifest upload',
      });
    let res = await put();
    for (let retry = 1; retry <= MANIFEST_BLOB_RETRIES; retry++) {
      // A blob refused as unknown that the registry has: another upload of it (another process) was
      // committing, and its repository link was being rewritten. Asked again; a blob it lacks fails now.
      const unknown = unknownManifestBlobs(res, bytes);
      if (unknown.length === 0 || !(await this.#allPresent(image, unknown, options))) break;
      log('registry %s refused %s naming %s as unknown, which it has: putting it again', image.registry, formatImageRef(image), unknown.join(', '));
      await sleep(backoffDelay(retry, { baseDelayMs: 200, maxDelayMs: 2000 }), options.signal);
      res = await put();
    }
    this.#expectOk(res, image.registry, 'PUT', path);
    this.#stats.bytesSent += bytes.length;
    const announced = res.headers.get('docker-content-digest');
    if (announced && announced !== digest) {
      throw new RegistryError(`registry ${image.registry} stored the manifest for ${formatImageRef(image)} as ${announced}, but its bytes hash to ${digest}`, { registry: image.registry });
    }
    // What was put is what a later check reads: kept, a no-op redeploy of it needs no GET.
    await this.#options.manifestCache?.write(digest, bytes);
    const subject = res.headers.get('oci-subject') ?? undefined;
    return { digest, subjectAccepted: subject !== undefined, ...(subject ? { subject } : {}) };
  }

  /**
   * Every tag of `repository` (`GET /v2/<name>/tags/list`), following the `Link: <…>; rel="next"`
   * pages; a repository that does not exist has none. Bounded: each page at 4 MiB, at most
   * `maxPages` pages (default 1000) and `maxBytes` of pages in all (default 256 MiB: a million
   * tags take some 60 MiB; a thousand pages of 4 MiB would be 4 GiB held), a page named again is
   * an error ({@link ListingBound}, which the gcr and Docker Hub listings use too).
   */
  async listTags(repository: string | ImageRef, options: RequestOptions & { pageSize?: number; maxPages?: number; maxBytes?: number } = {}): Promise<string[]> {
    const image = toRef(repository);
    const bound = new ListingBound(`registry ${image.registry} listed the tags of ${image.repository}`, image.registry, {
      ...(options.maxPages === undefined ? {} : { maxPages: options.maxPages }),
      ...(options.maxBytes === undefined ? {} : { maxBytes: options.maxBytes }),
    });
    const tags = new Set<string>();
    let path: string | undefined = `/v2/${image.repository}/tags/list?n=${options.pageSize ?? 1000}`;
    while (path !== undefined) {
      bound.page(path);
      const res = await this.#request(image.registry, image.repository, 'GET', path, { accept: 'application/json' }, options.signal, { what: 'tag list', limit: BODY_LIMITS.json });
      if (res.status === 404) return [...tags];
      this.#expectOk(res, image.registry, 'GET', path.replace(/\?.*$/, ''));
      bound.read(res.body.length);
      let page: { tags?: unknown };
      try {
        page = JSON.parse(Buffer.from(res.body).toString('utf8')) as { tags?: unknown };
      } catch (error) {
        throw new RegistryError(`registry ${image.registry} answered the tag list of ${image.repository} with something that is not JSON`, { registry: image.registry }, { cause: error });
      }
      if (page.tags !== null && page.tags !== undefined && !Array.isArray(page.tags)) {
        throw new RegistryError(`registry ${image.registry} answered the tag list of ${image.repository} without a tags array`, { registry: image.registry });
      }
      for (const tag of (page.tags ?? []) as unknown[]) if (typeof tag === 'string') tags.add(tag);
      path = nextPagePath(res.headers.get('link'), image.registry);
    }
    return [...tags];
  }

  /**
   * Deletes the manifest (or index) `digest` of `repository` and with it every tag that names it
   * (`DELETE /v2/<name>/manifests/<digest>`). `deleted: false` when it was already gone (404).
   * @throws ConfigError (exit 2) when the registry has deletes disabled (405 / `UNSUPPORTED`).
   */
  async deleteManifest(repository: string | ImageRef, digest: string, options: RequestOptions = {}): Promise<{ deleted: boolean }> {
    const image = toRef(repository);
    if (!/^sha256:[0-9a-f]{64}$/.test(digest)) throw new InputError(`'${digest}' is not a sha256 digest: manifests are deleted by digest, never by tag`);
    const path = `/v2/${image.repository}/manifests/${digest}`;
    const res = await this.#request(image.registry, image.repository, 'DELETE', path, { accept: MANIFEST_ACCEPT.join(', ') }, options.signal, {
      scopes: [`repository:${image.repository}:delete`],
      what: 'manifest delete',
    });
    const detail = registryErrorDetail(res.body);
    if (res.status === 405 || /\bUNSUPPORTED\b/.test(detail)) {
      throw new ConfigError(`registry ${image.registry} does not allow deleting manifests (${describeStatus(res.status)}${detail ? `: ${detail}` : ''}): its deletes are disabled.`, {
        setting: 'storage.delete.enabled',
        hint: `Enable deletes in the registry's configuration (distribution: storage.delete.enabled: true, or REGISTRY_STORAGE_DELETE_ENABLED=true) and restart it; then run its garbage collector to free the blobs.`,
      });
    }
    if (res.status === 404) return { deleted: false };
    this.#expectOk(res, image.registry, 'DELETE', path);
    log('deleted %s from %s/%s', digest, image.registry, image.repository);
    return { deleted: true };
  }

  /**
   * The referrers of `digest` in `repository` through the OCI referrers API
   * (`GET /v2/<name>/referrers/<digest>`), or `{ supported: false }` when the registry lacks the
   * API (it answers 404 or 405 with something that is not an image index).
   */
  async getReferrers(repository: string | ImageRef, digest: string, options: RequestOptions & { artifactType?: string } = {}): Promise<{ supported: false } | { supported: true; index: ImageIndex }> {
    const image = toRef(repository);
    const query = options.artifactType ? `?artifactType=${encodeURIComponent(options.artifactType)}` : '';
    const path = `/v2/${image.repository}/referrers/${digest}${query}`;
    const res = await this.#request(image.registry, image.repository, 'GET', path, { accept: MediaType.ociIndex }, options.signal, { what: 'referrers', limit: BODY_LIMITS.manifest });
    const type = (res.headers.get('content-type') ?? '').split(';')[0]!.trim();
    if ((res.status === 404 || res.status === 405) && type !== MediaType.ociIndex) return { supported: false };
    this.#expectOk(res, image.registry, 'GET', path);
    try {
      const index = JSON.parse(Buffer.from(res.body).toString('utf8')) as ImageIndex;
      if (!Array.isArray(index.manifests)) throw new Error('no manifests list');
      return { supported: true, index };
    } catch (error) {
      throw new RegistryError(`registry ${image.registry} answered the referrers of ${digest} with something that is not an image index`, { registry: image.registry }, { cause: error });
    }
  }

  /**
   * One authenticated request to a registry API path (`/v2/…`) of `repository`, for what a registry
   * offers beyond the calls above (e.g. Google's manifest map in `tags/list`): the answer whatever
   * its status, with the registry's error text (`detail`), so the caller decides what a 404 means.
   * A 2xx body is read up to `limit` (default 4 MiB), an error body's first 64 KiB; 401/403 after the
   * auth exchange are AuthErrors, as for every request. `actions` are the token scope's (default `pull`).
   */
  async apiRequest(
    repository: Pick<ImageRef, 'registry' | 'repository'>,
    method: string,
    path: string,
    options: RequestOptions & { accept?: string; actions?: string; what?: string; limit?: number } = {},
  ): Promise<{ status: number; headers: Headers; body: Uint8Array; detail: string }> {
    const { registry, repository: name } = repository;
    if (!path.startsWith('/v2/')) throw new InputError(`a registry API path starts with /v2/, not '${path}'`);
    const headers: Record<string, string> = options.accept ? { accept: options.accept } : {};
    const res = await this.#request(registry, name, method, path, headers, options.signal, {
      scopes: [`repository:${name}:${options.actions ?? 'pull'}`],
      what: options.what ?? `${method} ${path.replace(/\?.*$/, '')}`,
      limit: options.limit ?? BODY_LIMITS.json,
    });
    return { ...res, detail: res.status >= 200 && res.status < 300 ? '' : registryErrorDetail(res.body) };
  }

  /**
   * Bytes `start`..`end` (inclusive) of a blob, by an HTTP Range request: for the figures a blob
   * keeps at a known place (a gzip stream's size trailer) without reading the blob. A registry that
   * ignores the range is a RegistryError, never a whole-layer read.
   */
  async getBlobRange(repository: string | ImageRef, digest: string, start: number, end: number, options: RequestOptions = {}): Promise<Uint8Array> {
    const image = toRef(repository);
    const path = `/v2/${image.repository}/blobs/${digest}`;
    const length = end - start + 1;
    // A range is not checked against the digest, but the digest (a manifest's word) is still only a name: never a path.
    uncheckableDigest(digest, `blob ${String(digest)} of ${formatImageRef(image)}`, image.registry);
    if (!(start >= 0 && length > 0)) throw new InputError(`bad byte range ${start}-${end} of blob ${digest}`);
    const res = await this.#request(image.registry, image.repository, 'GET', path, { range: `bytes=${start}-${end}` }, options.signal, { what: 'blob range', limit: length });
    if (res.status === 404) throw new RegistryError(`blob ${digest} was not found in ${image.registry}/${image.repository}`, { registry: image.registry, status: 404 });
    this.#expectOk(res, image.registry, 'GET', path);
    if (res.status !== 206 || res.body.length !== length) {
      throw new RegistryError(`registry ${image.registry} did not answer the byte range ${start}-${end} of blob ${digest} (status ${res.status}, ${res.body.length} bytes)`, { registry: image.registry, status: res.status });
    }
    return res.body;
  }
}

/**
 * Gives `response`'s body to `sink`. A sink that fails before it has read the body to its end (its
 * file cannot even be opened) leaves it unread: it is cancelled here, so the connection and the
 * request's idle clock do not outlive the failure.
 */
async function sinkBody(sink: NonNullable<ReadPlan['sink']>, response: NetResponse): Promise<void> {
  try {
    await sink(response.chunks());
  } catch (error) {
    await response.cancel();
    throw error;
  }
}

/** A blob's bytes as the upload reads them: in order, `length` bytes from `offset`. */
interface BlobChunks {
  size: number;
  /** The next bytes of the blob (offsets only go forward); valid until the next read. */
  read(offset: number, length: number): Promise<Uint8Array>;
  close(): Promise<void>;
}

/** What `source` gives to upload, read in order: bytes (a function's checked with `check`) or a file ({@link fileChunks}). */
async function blobChunks(source: BlobSource, check: (data: Uint8Array) => Uint8Array, digest: string, target: string, chunkSize: number): Promise<BlobChunks> {
  const given = typeof source === 'function' ? await source() : source;
  if (given instanceof Uint8Array) return bytesChunks(typeof source === 'function' ? check(given) : given);
  return fileChunks(given, digest, target, chunkSize);
}

/** Bytes already in memory (and already checked against their digest). */
function bytesChunks(data: Uint8Array): BlobChunks {
  return { size: data.length, read: async (offset, length) => data.subarray(offset, offset + length), close: async () => undefined };
}

/**
 * A blob file, read in order into one buffer of at most `chunkSize` bytes and hashed as it is read:
 * reading its last byte checks its digest (InputError when the bytes do not match, before they are
 * all sent) and that it did not grow; a file that ends early fails at once.
 */
async function fileChunks(blob: BlobFile, digest: string, target: string, chunkSize: number): Promise<BlobChunks> {
  const what = `the blob file ${blob.file} (${digest}, to upload to ${target})`;
  let handle: FileHandle;
  let size: number;
  try {
    handle = await open(blob.file, 'r');
  } catch (error) {
    throw new InputError(`cannot read ${what}: ${rootMessage(error)}`, { file: blob.file, cause: error });
  }
  try {
    const stats = await handle.stat();
    if (!stats.isFile()) throw new InputError(`${what} is not a regular file`, { file: blob.file });
    size = stats.size;
    if (blob.size !== undefined && blob.size !== size) throw new InputError(`${what} has ${size} bytes where ${blob.size} were expected`, { file: blob.file });
  } catch (error) {
    await handle.close();
    throw error;
  }
  const hash = createHash('sha256');
  const buffer = Buffer.allocUnsafe(Math.min(chunkSize, size));
  let hashed = 0;
  let checked = false;
  const fill = async (length: number): Promise<void> => {
    for (let filled = 0; filled < length; ) {
      const { bytesRead } = await handle.read(buffer, filled, length - filled, hashed + filled);
      if (bytesRead === 0) throw new InputError(`${what} ended at ${hashed + filled} bytes while it was being uploaded; it had ${size}`, { file: blob.file });
      filled += bytesRead;
    }
  };
  return {
    size,
    async read(offset, length) {
      if (offset !== hashed || length > buffer.length) throw new Error(`blob chunks are read in order, at most ${buffer.length} bytes at a time`);
      await fill(length);
      const chunk = buffer.subarray(0, length);
      if (checked) return chunk;
      hash.update(chunk);
      hashed += length;
      if (hashed === size) {
        checked = true;
        const { bytesRead } = await handle.read(Buffer.alloc(1), 0, 1, size);
        if (bytesRead > 0) throw new InputError(`${what} grew past its ${size} bytes while it was being uploaded`, { file: blob.file });
        if (`sha256:${hash.digest('hex')}` !== digest) throw new InputError(`${what} does not match its digest`, { file: blob.file });
      }
      return chunk;
    },
    close: () => handle.close(),
  };
}
