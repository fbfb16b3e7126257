import type { CondaPlatform } from './env-model.js';
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
  signal?: AbortSignal;
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
  imageExists(pushTag: string, options?: { signal?: AbortSignal }): Promise<ImageExistence>;
  baseImageIdentity(ref: string, platform: string, options?: { signal?: AbortSignal }): Promise<BaseImageIdentity>;
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
