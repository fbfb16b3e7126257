import type { ImageExistence, ImageRegistry, PullConfig, RegistryCredentials } from '../contracts.js';
import { ManifestCache, manifestCacheDir } from '../registry/manifest-cache.js';
import type { RegistryClientOptions } from '../registry/registry-client.js';
import { listRepositoryImages } from '../registry/repository-images.js';
import { checkSignal, resolveBaseImage } from './base-image.js';
import { registryAccess } from './registry-access.js';
import type { RegistryTokenSource } from './registry-credentials.js';
import { envTag } from './settings.js';

/** Options every image registry takes (as `BuildServiceOptions` for build services): extend it. */
export interface ImageRegistryOptions {
  /** Retries and timeouts of registry requests (tests shorten them). */
  client?: Pick<RegistryClientOptions, 'retry' | 'timeoutMs'>;
  /** Environment to read settings from. Default `process.env`. */
  env?: Record<string, string | undefined>;
}

/**
 * What an OCI registry states about itself; `createOciRegistry` supplies the rest (tags, existence
 * checks, base image digests, the registry client and its credentials plumbing).
 */
export interface OciRegistrySpec {
  /** The backend's name, e.g. `ecr`. */
  name: string;
  /** The registry host images are pushed to (`host[:port]`, normalised). */
  host: string;
  /** The repository path under the host the env images go to, e.g. `acme/metaflow-prebuilt`. */
  repository: string;
  /**
   * Credentials for the host: explicit ones (undefined: the Docker config, when on), or a token
   * source for registries whose credentials come from a cloud and expire.
   */
  credentials?: RegistryCredentials | RegistryTokenSource | undefined;
  /** Environment the Docker config location is read from. Default `process.env`. */
  env?: Record<string, string | undefined>;
  /** Read credentials from the user's Docker config. Default true. */
  dockerConfig?: boolean;
  /** Speak plain HTTP to the host (loopback always is). */
  insecure?: boolean;
  /** Retries and timeouts of registry requests (tests shorten them). */
  client?: Pick<RegistryClientOptions, 'retry' | 'timeoutMs'>;
  /** What the runner needs to pull (see `pullConfigFromSettings`). Default: nothing (ambient credentials). */
  pullConfig?: PullConfig;
  /** The tag the runner pulls, when it differs from the push tag. */
  pullTag?(pushTag: string): string;
  /** Runs once before the first push (e.g. create the repository); runs again after a failure. */
  prepare?(signal: AbortSignal | undefined): Promise<void>;
  /** The error to throw when there are no push credentials (default: push anonymously). */
  noCredentials?(): Error;
  /** The hint of the error for a base image that does not exist. */
  missingBaseHint?: string;
  /**
   * Another way than `docker login` to give the host credentials, ending the hint of an auth
   * error that had none, e.g. `set METAFLOW_PREBUILT_LOCAL_REGISTRY_USERNAME and …_PASSWORD`.
   */
  credentialsHint?: string;
  /** What to do when nothing listens at the host (connection refused) instead of checking it runs, e.g. how to start it. */
  unreachableHint?: string;
  /**
   * Where manifests read from the registry are kept by digest, so that an existence check of an
   * image already read is a manifest HEAD only (Docker Hub counts a GET as a pull, a HEAD not):
   * default `<cache dir>/manifests` (METAFLOW_PREBUILT_CACHE_DIR, … of `env`); false keeps none.
   */
  manifestCache?: string | false;
  /** Releases what the registry holds (SDK clients). */
  close?(): Promise<void>;
  /** Every image of the env repository, through the registry's own API (for `prebuilt gc`; see `ImageRegistry.listImages`). */
  listImages?: ImageRegistry['listImages'];
  /** Deletes one image of the env repository by digest, with its tags, through the registry's own API (see `ImageRegistry.deleteImage`). */
  deleteImage?: ImageRegistry['deleteImage'];
}

/**
 * An `ImageRegistry` over core's OCI distribution client: env images are tagged
 * `<host>/<repository>:env-<envId>-<arch>`; an existence check (and, when asked, the manifest's
 * annotations and layer media types) is a manifest HEAD, then the manifest kept in the cache under
 * the digest it gives, else a GET whose bytes are hashed for the digest and kept
 * (RegistryClient.checkManifest); base image digests come from manifest HEADs; push credentials
 * from the spec's credentials (or the Docker config).
 */
export function createOciRegistry(spec: OciRegistrySpec): ImageRegistry {
  const env = spec.env ?? process.env;
  const cacheDir = spec.manifestCache ?? manifestCacheDir(env);
  const access = registryAccess({
    host: spec.host,
    credentials: spec.credentials,
    env,
    dockerConfig: spec.dockerConfig !== false,
    insecure: spec.insecure === true,
    client: spec.client,
    credentialsHint: spec.credentialsHint,
    unreachableHint: spec.unreachableHint,
    manifestCache: cacheDir === false ? undefined : new ManifestCache(cacheDir),
  });
  const base = `${spec.host}/${spec.repository}`;
  const pullConfig: PullConfig = spec.pullConfig ?? {};
  let prepared: Promise<void> | undefined;
  const prepare = (signal: AbortSignal | undefined): Promise<void> | undefined =>
    spec.prepare &&
    (prepared ??= spec.prepare(signal).catch((error: unknown) => {
      prepared = undefined;
      throw error;
    }));

  const registry: ImageRegistry = {
    name: spec.name,
    imageTag: (input) => envTag(base, input),
    async pushCredentials(options = {}) {
      checkSignal(options.signal);
      await prepare(options.signal);
      const credentials = await access.ownCredentials(options.signal);
      if (!credentials && spec.noCredentials) throw spec.noCredentials();
      return credentials;
    },
    async pullConfig() {
      return structuredClone(pullConfig);
    },
    async imageExists(pushTag, options = {}): Promise<ImageExistence> {
      checkSignal(options.signal);
      const client = await access.ownClient(options.signal);
      const signal = options.signal ? { signal: options.signal } : {};
      // The digest, and the layout record of the image (see BuildService.imageLayout), come with the
      // manifest that shows the tag exists: the one kept under the digest a HEAD gives, else a GET.
      const check = await client.checkManifest(pushTag, signal);
      if (!check.exists) return { exists: false };
      const { digest, manifest } = check.result;
      if (!options.annotations) return { exists: true, digest };
      // An image manifest's layers (an image index has none); the manifest is the registry's, so each entry is checked.
      const layers: unknown = 'layers' in manifest ? manifest.layers : undefined;
      const layerMediaTypes = Array.isArray(layers)
        ? layers.map((layer: unknown) => (typeof layer === 'object' && layer !== null ? (layer as { mediaType?: unknown }).mediaType : undefined)).filter((type): type is string => typeof type === 'string')
        : undefined;
      return { exists: true, digest, annotations: { ...manifest.annotations }, ...(layerMediaTypes ? { layerMediaTypes } : {}) };
    },
    async baseImageIdentity(ref, platform, options = {}) {
      const client = await access.clientFor(ref, options.signal);
      return resolveBaseImage(client, ref, platform, options.signal, spec.missingBaseHint ? { missingHint: spec.missingBaseHint } : {});
    },
    // For prebuilt gc: the env repository over the distribution API, unless the registry has its own.
    listImages:
      spec.listImages ??
      (async (options = {}) => {
        checkSignal(options.signal);
        const client = await access.ownClient(options.signal);
        return listRepositoryImages(client, base, options.signal ? { signal: options.signal } : {});
      }),
    deleteImage:
      spec.deleteImage ??
      (async (digest, options = {}) => {
        checkSignal(options.signal);
        const client = await access.ownClient(options.signal);
        await client.deleteManifest(base, digest, options.signal ? { signal: options.signal } : {});
      }),
  };
  if (spec.pullTag) registry.pullTag = spec.pullTag;
  if (spec.close) registry.close = spec.close;
  return registry;
}
