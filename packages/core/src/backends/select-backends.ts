import type {
  BackendContext,
  BackendDefinition,
  BuildService,
  BuildServiceDefinition,
  ImageRegistry,
  ImageRegistryDefinition,
} from '../contracts.js';
import { BackendInvalidError, PrebuiltError, errorMessage } from '../errors.js';
import {
  BUILD_SERVICE_ENV_VAR,
  DEFAULT_BUILD_SERVICE,
  DEFAULT_IMAGE_REGISTRY,
  IMAGE_REGISTRY_ENV_VAR,
} from './builtin-backends.js';
import { resolveBackend, type ResolvedBackend } from './resolve-backend.js';

/** One selected backend name and where the selection came from. */
export interface BackendSelection {
  name: string;
  /** The variable that selects it. */
  envVar: string;
  /** `env` when the variable is set, `default` otherwise. */
  from: 'env' | 'default';
}

export interface SelectedBackendNames {
  buildService: BackendSelection;
  imageRegistry: BackendSelection;
}

function select(env: Record<string, string | undefined>, envVar: string, fallback: string): BackendSelection {
  const value = env[envVar]?.trim();
  return value ? { name: value, envVar, from: 'env' } : { name: fallback, envVar, from: 'default' };
}

/**
 * The selected backend names: METAFLOW_PREBUILT_BUILD_SERVICE (default `docker`) and
 * METAFLOW_PREBUILT_IMAGE_REGISTRY (default `dockerhub`). Empty values count as unset.
 */
export function selectedBackendNames(env: Record<string, string | undefined> = process.env): SelectedBackendNames {
  return {
    buildService: select(env, BUILD_SERVICE_ENV_VAR, DEFAULT_BUILD_SERVICE),
    imageRegistry: select(env, IMAGE_REGISTRY_ENV_VAR, DEFAULT_IMAGE_REGISTRY),
  };
}

export interface SelectBackendsOptions {
  /** Where selection env vars and backend settings are read. Default: process.env. */
  env?: Record<string, string | undefined>;
  /** The user's project directory. Default: process.cwd(). */
  cwd?: string;
  /** The CLI's install directory. */
  cliDir?: string;
  /** Definitions passed in code; they take precedence over installed packages. */
  registered?: readonly BackendDefinition[];
}

export interface ResolvedSelection {
  buildService: ResolvedBackend<BuildServiceDefinition>;
  imageRegistry: ResolvedBackend<ImageRegistryDefinition>;
}

/** Resolves (finds, loads and checks) the two selected backends without creating them. */
export async function resolveSelectedBackends(options: SelectBackendsOptions = {}): Promise<ResolvedSelection> {
  const names = selectedBackendNames(options.env ?? process.env);
  const common = {
    ...(options.cwd !== undefined ? { cwd: options.cwd } : {}),
    ...(options.cliDir !== undefined ? { cliDir: options.cliDir } : {}),
    ...(options.registered !== undefined ? { registered: options.registered } : {}),
  };
  const buildService = await resolveBackend({ ...common, kind: 'build-service', name: names.buildService.name, setting: names.buildService.envVar });
  const imageRegistry = await resolveBackend({ ...common, kind: 'image-registry', name: names.imageRegistry.name, setting: names.imageRegistry.envVar });
  return { buildService, imageRegistry };
}

export interface CreateBackendsOptions extends SelectBackendsOptions {
  /** Options for the build service's factory. */
  buildServiceOptions?: Record<string, unknown>;
  /** Options for the image registry's factory. */
  imageRegistryOptions?: Record<string, unknown>;
}

export interface CreatedBackends {
  buildService: BuildService;
  imageRegistry: ImageRegistry;
  resolved: ResolvedSelection;
}

/**
 * Calls the factory of a resolved backend and checks that it returned an instance with `method`.
 * @throws the backend's own PrebuiltError (a missing setting) as is; BackendInvalidError otherwise.
 */
export async function createResolvedBackend<T>(
  resolved: ResolvedBackend,
  options: Record<string, unknown>,
  context: BackendContext,
  method: 'buildAndPush' | 'imageTag',
): Promise<T> {
  let instance: unknown;
  try {
    instance = await (resolved.definition.create as (o: Record<string, unknown>, c: BackendContext) => unknown)(options, context);
  } catch (error) {
    // A backend's own typed errors (a missing setting) pass through; anything else is wrapped.
    if (PrebuiltError.isInstance(error)) throw error;
    throw new BackendInvalidError(
      `Creating the ${resolved.kind} '${resolved.name}' failed: ${errorMessage(error)}`,
      { backend: resolved.name, packageName: resolved.packageName ?? resolved.path ?? '(registered in code)' },
      { cause: error, hint: 'Run with --verbose for the stack trace, and report it to the backend\'s authors.' },
    );
  }
  if (typeof instance !== 'object' || instance === null || typeof (instance as Record<string, unknown>)[method] !== 'function') {
    throw new BackendInvalidError(
      `The ${resolved.kind} '${resolved.name}' returned an object without ${method}() from create().`,
      { backend: resolved.name, packageName: resolved.packageName ?? resolved.path ?? '(registered in code)' },
      { hint: 'Run the conformance suite from @prebuilt/core/conformance against this backend.' },
    );
  }
  return instance as T;
}

/**
 * Resolves the selected build service and image registry and creates them with their factory
 * options and a BackendContext ({ env, cwd }).
 */
export async function createBackends(options: CreateBackendsOptions = {}): Promise<CreatedBackends> {
  const resolved = await resolveSelectedBackends(options);
  const context: BackendContext = { env: options.env ?? process.env, cwd: options.cwd ?? process.cwd() };
  const buildService = await createResolvedBackend<BuildService>(resolved.buildService, options.buildServiceOptions ?? {}, context, 'buildAndPush');
  const imageRegistry = await createResolvedBackend<ImageRegistry>(resolved.imageRegistry, options.imageRegistryOptions ?? {}, context, 'imageTag');
  return { buildService, imageRegistry, resolved };
}
