import type { CondaPlatform, EnvToResolve, LockedEnv } from './env-model.js';
import type { ImageMap } from './deploy/image-map.js';
import type { PrefixLayersPackage } from './recipes/prefix-layers.js';
import type { PrunePreset } from './prune.js';
import type { PublishedIndex, PushImageIndexOptions, PushedIndex, ReadImageIndexOptions } from './registry/image-index.js';
import type { Secret } from './secret.js';

/** The contract version every backend definition declares. The resolver checks it. */
export const BACKEND_API_VERSION = 1;

export type BackendKind = 'build-service' | 'image-registry';

/** What a backend factory gets besides its options. */
export interface BackendContext {
  /** Environment variables to read settings from (defaults to process.env). */
  env: Record<string, string | undefined>;
  /** The user's project directory. */
  cwd: string;
}

/** Credentials for one registry host. `source` says where they came from (never the secret). */
export interface RegistryCredentials {
  /** Registry host, e.g. `127.0.0.1:5000` or `123456789012.dkr.ecr.us-east-1.amazonaws.com`. */
  registry: string;
  username?: string;
  password?: Secret;
  /** An identity (refresh) token, as Docker's config stores it. */
  identityToken?: Secret;
  /** A bearer token to send as is. */
  registryToken?: Secret;
  /** Human-readable origin, e.g. `~/.docker/config.json`, `env METAFLOW_PREBUILT_…`, `ECR GetAuthorizationToken`. */
  source: string;
  /**
   * What to do when the registry refuses them, for the error's hint (default: check `source`, or
   * log in again with `docker login`, which is right for a Docker config's credentials only).
   */
  refusedHint?: string;
}

// ---------------------------------------------------------------------------------------------
// Build service

export interface BuildRequest {
  /** The Dockerfile text. */
  dockerfile: string;
  /** Directory holding the build context (the Dockerfile is not in it; services add it). */
  contextDir: string;
  /** The tag to push, e.g. `127.0.0.1:5000/metaflow-prebuilt:env-…`. */
  imageTag: string;
  /** Credentials for the push (from the registry backend), if any. */
  pushCredentials?: RegistryCredentials | undefined;
  /** Docker platform, e.g. `linux/amd64`. */
  platform: string;
  /** Receives the build's log lines as they happen (without trailing newline). */
  log?: (line: string) => void;
  /** Receives phase changes. */
  onPhase?: (phase: 'building' | 'pushing') => void;
  /**
   * Receives something the user should know that is no failure and not the image's own log (the
   * docker service: credentials sent to a remote daemon unencrypted); the deploy shows it as a note.
   */
  note?: (message: string) => void;
  signal?: AbortSignal;
  /** The env the image holds, for a service whose layout depends on it (see {@link BuildService.imageLayout}). */
  envId?: string;
}

/**
 * How a build service lays an env's image out beyond what its tag names (the oci service's
 * prefetch order of eStargz layers, or its EROFS layers' media type; tar layers, for a service
 * that gives none: image-layout.ts), recorded in the image manifest's annotation `annotation`. A
 * present image whose annotation is not `value` is rebuilt (absent counts as not `value`);
 * `change` says why.
 */
export interface ImageLayout {
  annotation: string;
  /** What this build records in the annotation; undefined: it records none, and a present image that carries one is rebuilt. */
  value?: string;
  /** Why such an image is rebuilt, e.g. `prefetch profile changed`. */
  change: string;
  /** Whether the value is the image's `DeployImage.layout` (the prefetch order `build` and `plan` show); default true. */
  reported?: boolean;
  /**
   * Layer media types the runners this build is for cannot pull (the oci service's zstd layers
   * under METAFLOW_PREBUILT_OCI_RUNNERS naming Docker 20.10): a present image with a layer of one
   * of them is rebuilt, whatever its annotation, and `change` says why. The tag names the env, not
   * the layer format, so without this an image pushed as zstd before was kept for such runners.
   */
  refusedLayers?: { mediaTypes: readonly string[]; change: string };
}

export type BuildResult =
  | { ok: true; digest: string }
  | { ok: false; reason: string; logTail: string[] };

/**
 * Builds an image from a Dockerfile and context and pushes it.
 * A failed build is a result (`ok: false`), not an exception; misconfiguration throws a typed error;
 * cancellation through `signal` rejects with CancelledError.
 */
export interface BuildService {
  readonly name: string;
  buildAndPush(request: BuildRequest): Promise<BuildResult>;
  /**
   * Checks that the service can build at all (daemon reachable, CLI installed, …) and throws a typed
   * error saying what to do when it cannot. The orchestrator calls it once, before it materializes
   * the first env, so a missing daemon is reported at once rather than after minutes of work.
   */
  check?(options?: { signal?: AbortSignal }): Promise<void>;
  /** Releases connections and other resources. */
  close?(): Promise<void>;
  /**
   * The layout this service would give the env's image, when it records one (undefined: none to
   * check). Never reaches the network. Without this method the CLI takes the service to make tar
   * layers (`buildServiceLayout`): an image carrying the EROFS record is rebuilt.
   */
  imageLayout?(envId: string): ImageLayout | undefined;
}

// ---------------------------------------------------------------------------------------------
// Image registry

export interface ImageTagInput {
  /** The envId of a platform's image, or the id of a multi-platform image index. */
  envId: string;
  /** The image's platform; for an image index, the first of `platforms`. */
  platform: CondaPlatform;
  /**
   * Set for a multi-platform image index (METAFLOW_PREBUILT_PLATFORM=linux-64,linux-aarch64): every
   * platform it names. prebuilt's registries tag an index `env-<id>`, without an arch suffix.
   */
  platforms?: readonly CondaPlatform[];
}

/** What a runner needs to pull an image. Empty for ambient credentials (IAM roles, workload identity). */
export interface PullConfig {
  kubernetes?: { imagePullSecrets?: string[] };
  batch?: { repositoryCredentials?: { credentialsParameter: string } };
}

export interface ImageExistence {
  exists: boolean;
  /** Manifest digest when it exists. */
  digest?: string;
  /** The manifest's annotations (`{}` for none), when asked for (`annotations: true`) and it exists; a registry that cannot read them leaves this out, and the image is kept whatever its layout. */
  annotations?: Record<string, string>;
  /** The media types of the manifest's layers, with `annotations` (none for an image index); a registry that cannot read them leaves this out. */
  layerMediaTypes?: string[];
}

/** An image stored in a registry's env repository, as `ImageRegistry.listImages` reports it (for `prebuilt gc`). */
export interface StoredImage {
  /** Digest of its manifest or image index. */
  digest: string;
  /** The tags that point at it (empty when untagged). */
  tags: string[];
  /** The manifest's media type, where the listing says. */
  mediaType?: string;
  /** When it was pushed, where the registry records it (ECR, Artifact Registry, Docker Hub); absent for a plain distribution registry. */
  pushedAt?: Date;
  /** Bytes of its manifest's blobs, where the listing says. */
  size?: number;
  /** For an image index: the digests of the manifests it lists (its platform images or referrers); absent when the listing does not say. */
  children?: string[];
  /** For an artifact that refers to an image (an SBOM): the digest of that image, its `subject`. */
  subject?: string;
  /** For an artifact: its `artifactType` (an SBOM's `application/spdx+json`). */
  artifactType?: string;
  /**
   * The blobs the registry stores for it, with their sizes (the manifest itself, its config and
   * layers), where the listing says: gc counts a blob another kept image shares as not reclaimed.
   */
  blobs?: { digest: string; size: number }[];
}

export interface BaseImageIdentity {
  /** The reference as given, e.g. `python:3.11-slim`. */
  ref: string;
  /** Manifest (or index) digest the reference resolves to now. */
  digest: string;
  /**
   * `ref` pinned by digest, e.g. `docker.io/library/python@sha256:…` — for a multi-platform base,
   * by the digest of the requested platform's manifest, which is what FROM names.
   */
  pinned: string;
}

export interface ImageRegistry {
  readonly name: string;
  /** The content-addressed tag of an env's image (as the build service pushes it). */
  imageTag(input: ImageTagInput): string;
  /** The tag the runner pulls, when it differs from the push tag (e.g. a local registry seen from a cluster). */
  pullTag?(pushTag: string): string;
  pushCredentials(options?: { signal?: AbortSignal }): Promise<RegistryCredentials | undefined>;
  pullConfig(pullTag: string): Promise<PullConfig>;
  /** With `annotations`, the manifest is read and its annotations returned too. */
  imageExists(pushTag: string, options?: { signal?: AbortSignal; annotations?: boolean }): Promise<ImageExistence>;
  baseImageIdentity(ref: string, platform: string, options?: { signal?: AbortSignal }): Promise<BaseImageIdentity>;
  /**
   * Every image in the env repository (`host/repository`, the one `imageTag` names), for `prebuilt gc`.
   * Optional: gc says the selected registry cannot list when it is absent.
   */
  listImages?(options?: { signal?: AbortSignal }): Promise<StoredImage[]>;
  /**
   * Deletes one image of the env repository by digest (manifest or index, with its tags). Optional, as `listImages`.
   * `tags`: the image's tags as the caller's `listImages` gave them (gc passes them), so a registry
   * that deletes tag by tag need not list the repository again for each image; it still deletes
   * only those that point at `digest` when it deletes them.
   */
  deleteImage?(digest: string, options?: { signal?: AbortSignal; tags?: readonly string[] }): Promise<void>;
  close?(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// Backend definitions: what a backend package default-exports

interface BackendDefinitionBase<K extends BackendKind, T> {
  apiVersion: typeof BACKEND_API_VERSION;
  kind: K;
  /** The name users select it by, e.g. `docker`. */
  name: string;
  description?: string;
  create(options: Record<string, unknown>, context: BackendContext): T | Promise<T>;
}

export type BuildServiceDefinition = BackendDefinitionBase<'build-service', BuildService>;
export type ImageRegistryDefinition = BackendDefinitionBase<'image-registry', ImageRegistry>;
export type BackendDefinition = BuildServiceDefinition | ImageRegistryDefinition;

export type BackendDefinitionInput<D extends BackendDefinition> = Omit<D, 'apiVersion' | 'kind'>;

export function defineBuildService(definition: BackendDefinitionInput<BuildServiceDefinition>): BuildServiceDefinition {
  return { ...definition, apiVersion: BACKEND_API_VERSION, kind: 'build-service' };
}

export function defineImageRegistry(definition: BackendDefinitionInput<ImageRegistryDefinition>): ImageRegistryDefinition {
  return { ...definition, apiVersion: BACKEND_API_VERSION, kind: 'image-registry' };
}

// ---------------------------------------------------------------------------------------------
// Env toolchain: what resolves an env to files and lays its prefix out (`@prebuilt/conda`
// implements both; core calls them and keeps what they return — nothing is handed back).

/**
 * Resolves envs to exact files (`@prebuilt/conda`'s `createResolver()`). `lockForFlow` records
 * `glibc` in each entry's `resolvedWith` and asks for the envs the lock file does not have.
 */
export interface EnvResolver {
  /** glibc version the resolver assumes for the target (`__glibc`, manylinux tags). */
  readonly glibc: string;
  /** One LockedEnv per input, in the same order. */
  resolve(envs: readonly EnvToResolve[]): Promise<LockedEnv[]>;
}

/** Progress of preparing one env's build context. */
export interface EnvProgress {
  phase: 'downloading' | 'materializing';
  done: number;
  total: number;
}

/** What a materializer lays out: one env's prefix, in a directory core chose. */
export interface MaterializeRequest {
  lock: LockedEnv;
  envId: string;
  /** Absolute path of the env in the image; the prefix is laid out as if installed there. */
  prefix: string;
  /** The directory to lay the prefix out in (it does not exist yet). */
  outDir: string;
  /** What to leave out of the prefix (prune.ts); default nothing. */
  prune?: readonly PrunePreset[];
  signal?: AbortSignal;
  onProgress?: (progress: EnvProgress) => void;
}

export interface MaterializedPrefix {
  /** Which prefix entries each package installed, in install order (for `prefix-layers.json`). */
  packages: PrefixLayersPackage[];
}

/**
 * Lays out a locked env's prefix on this machine (`@prebuilt/conda`'s `createEnvMaterializer()`).
 * Core's materialized recipe runner renders the Dockerfile, owns the build context and writes
 * `prefix-layers.json` from the result.
 */
export interface EnvMaterializer {
  materialize(request: MaterializeRequest): Promise<MaterializedPrefix>;
}

// ---------------------------------------------------------------------------------------------
// Deploy: what `deploy()` takes, reports and returns (its events and result are the CLI's --json)

/** One step of a flow, as the deploy sees it. */
export interface DeployStep {
  name: string;
  /** The step's remote decorator asks for a GPU: it is built on the GPU base image. */
  gpu: boolean;
}

/** The build inputs a recipe prepared for one env. */
export interface PreparedBuild {
  dockerfile: string;
  contextDir: string;
  /** Removes the context directory. */
  dispose(): Promise<void>;
}

/** Prepares the build context of one env (core's `createMaterializedRecipeRunner`, `createMicromambaRecipeRunner`). */
export interface RecipeRunner {
  /** Recipe name and version; they feed the envId. */
  name: string;
  version: string;
  /** What the runner leaves out of the env (prune.ts); feeds the envId when non-empty. */
  prune?: readonly PrunePreset[];
  prepare(input: {
    lock: LockedEnv;
    envId: string;
    prefix: string;
    base: BaseImageIdentity;
    signal?: AbortSignal;
    onProgress?: (progress: EnvProgress) => void;
  }): Promise<PreparedBuild>;
}

export type ImagePhase =
  | 'checking'
  | 'waiting'
  | 'missing'
  | 'materializing'
  | 'building'
  | 'pushing'
  | 'verifying'
  | 'present'
  | 'built'
  | 'failed';

export type DeployEvent =
  | { type: 'resolving'; steps: number }
  | {
      type: 'resolved';
      /** Platform images (one per distinct env and platform). */
      images: number;
      /** Multi-platform image indexes over them (0 when every step targets one platform). */
      indexes: number;
      /** The platforms the images are for, in first-seen order. */
      platforms: CondaPlatform[];
    }
  | {
      type: 'image';
      envId: string;
      tag: string;
      steps: string[];
      phase: ImagePhase;
      /**
       * `waiting`: who holds the image's build lock, since when; `checking`: why the image the
       * registry has is rebuilt (its layout changed: `prefetch profile changed`); `missing`, in a
       * plan: why it would be.
       */
      detail?: string;
      /** The image's conda platform; for a multi-platform image index, its platforms joined by `+`. */
      platform?: string;
    }
  | { type: 'progress'; envId: string; phase: 'downloading' | 'materializing'; done: number; total: number }
  | { type: 'log'; envId: string; line: string }
  /** Something the user should know that is no failure (a cached package that was tampered with and fetched again, a wait for another process's download). */
  | { type: 'note'; message: string }
  /**
   * A network read has had no byte for `seconds` (reported every few seconds while it lasts; 0 when
   * the wait is over): what the deploy is waiting on, e.g. `127.0.0.1:5100` for a `blob upload`.
   */
  | { type: 'waiting'; target: string; what: string; seconds: number };

/** A held build lock. */
export interface BuildLockHandle {
  /** True when another process held the lock and this one waited for it. */
  waited: boolean;
  release(): Promise<void>;
}

export interface DeployOptions {
  flow: string;
  steps: DeployStep[];
  registry: ImageRegistry;
  /**
   * Needed unless `plan` is true. A function is called (once) only when an image must be built,
   * so a deploy with nothing to build never connects to the build service (an `imageLayout` given
   * may create it, to ask).
   */
  buildService?: BuildService | (() => Promise<BuildService>);
  /**
   * The layout the build service would give an env's image (its `imageLayout`), asked for each
   * image the registry has: one laid out otherwise is rebuilt (in a plan: `missing`, with the reason).
   * Absent: a present image is kept as it is.
   */
  imageLayout?: (envId: string) => Promise<ImageLayout | undefined>;
  recipe: RecipeRunner;
  baseImage: string;
  /** Base image for GPU steps (METAFLOW_PREBUILT_GPU_BASE_IMAGE); defaults to `baseImage`. */
  gpuBaseImage?: string;
  /**
   * The locked env of every step (null for a disabled step, which runs on the base image's python),
   * e.g. from the lock file or a fresh resolution. Called once. A list of locks, one per platform,
   * builds one image per platform and publishes them as one multi-platform image index, which the
   * step pulls.
   */
  lock(options: { signal?: AbortSignal }): Promise<Record<string, LockedEnv | readonly LockedEnv[] | null>>;
  /** Publishes a multi-platform image index (default: core's `pushImageIndex` over the registry API). */
  pushIndex?: (options: PushImageIndexOptions) => Promise<PushedIndex>;
  /** Reads the image index a tag names now (default: core's `readImageIndex`). */
  readIndex?: (options: ReadImageIndexOptions) => Promise<PublishedIndex | undefined>;
  /** Check the registry for each tag before building (METAFLOW_PREBUILT_REGISTRY_CACHE). Default true. */
  registryCache?: boolean;
  /** Rebuild even when the tag exists. */
  force?: boolean;
  /** Parallel builds (METAFLOW_PREBUILT_BUILD_WORKERS). Default min(images, 8). */
  workers?: number;
  /** Plan only: resolve, identify and check, never build. */
  plan?: boolean;
  signal?: AbortSignal;
  onEvent?: (event: DeployEvent) => void;
  /**
   * Serializes the builds of one image across processes of this machine (e.g. an inter-process
   * lock file per tag). Taken before materializing; when it had to wait, the registry is checked
   * again, so an image another process just pushed is reused instead of built twice.
   */
  buildLock?: (
    image: { envId: string; tag: string },
    /** `onWait(holder)`: called when the lock is held elsewhere; `holder` describes who holds it and since when. */
    options: { signal?: AbortSignal; onWait: (holder?: string) => void },
  ) => Promise<BuildLockHandle>;
}

/** One platform's image of a multi-platform image index. */
export interface DeployIndexMember {
  platform: CondaPlatform;
  envId: string;
  /** Its pull tag. */
  image: string;
  digest?: string;
}

export interface DeployImage {
  /** The envId of a platform's image, or the id of a multi-platform image index. */
  envId: string;
  /** The tag pushed to. */
  tag: string;
  /** The tag the runner pulls. */
  pullTag: string;
  platform: CondaPlatform;
  base: BaseImageIdentity;
  steps: string[];
  /** `missing` only in a plan: the image is not in the registry and would be built. */
  status: 'present' | 'built' | 'failed' | 'missing' | 'unchecked';
  /** Set on a multi-platform image index: its platforms' images (then `platform` is the first). */
  platforms?: DeployIndexMember[];
  /** Set on a platform's image that is part of an image index: the index's id. */
  memberOf?: string[];
  digest?: string;
  python: string;
  packages: number;
  /** Why it failed; for a `missing` image of a plan that the registry has, why it would be rebuilt (its layout changed). */
  reason?: string;
  /** The layout record (see {@link ImageLayout}) of the image found or built, when the build service records one. */
  layout?: string;
  /** What to do about the failure, when the error that caused it says. */
  hint?: string;
  logTail?: string[];
  elapsedMs: number;
}

export interface DeployResult {
  imageMap: ImageMap;
  images: DeployImage[];
  failures: DeployImage[];
}
