import type { RegistryCredentials } from '../contracts.js';
import { dockerConfigCredentials, normalizeDockerConfigKey } from '../registry/docker-config.js';
import { parseImageRef } from '../registry/image-ref.js';
import type { ManifestCache } from '../registry/manifest-cache.js';
import { RegistryClient, type RegistryClientOptions } from '../registry/registry-client.js';
import { checkSignal } from './base-image.js';
import type { RegistryTokenSource } from './registry-credentials.js';

/** How an OCI registry reaches its own host and the hosts of base images elsewhere. */
export interface RegistryAccess {
  /** The credentials for the registry's own host (undefined: anonymous). */
  ownCredentials(signal: AbortSignal | undefined): Promise<RegistryCredentials | undefined>;
  /** The client for the registry's own host. */
  ownClient(signal: AbortSignal | undefined): Promise<RegistryClient>;
  /** The client for an image reference: the own client for the own host(s), else one with the Docker config. */
  clientFor(ref: string, signal: AbortSignal | undefined): Promise<RegistryClient>;
}

export interface RegistryAccessInput {
  host: string;
  credentials: RegistryCredentials | RegistryTokenSource | undefined;
  env: Record<string, string | undefined>;
  /** Read credentials of other hosts (and of the own host, without explicit ones) from the Docker config. */
  dockerConfig: boolean;
  insecure: boolean;
  client: Pick<RegistryClientOptions, 'retry' | 'timeoutMs'> | undefined;
  /** Another way than `docker login` to give the own host credentials, for auth errors' hints. */
  credentialsHint?: string | undefined;
  /** What to do when nothing listens at the own host (connection refused), e.g. how to start it. */
  unreachableHint?: string | undefined;
  /** Manifests kept by digest, for every client (see RegistryClientOptions.manifestCache). */
  manifestCache?: ManifestCache | undefined;
}

function isTokenSource(credentials: RegistryAccessInput['credentials']): credentials is RegistryTokenSource {
  return typeof (credentials as RegistryTokenSource | undefined)?.token === 'function';
}

/** The registry's access: one client for static credentials, a client renewed per token for a token source. */
export function registryAccess(input: RegistryAccessInput): RegistryAccess {
  return isTokenSource(input.credentials) ? tokenAccess(input, input.credentials) : staticAccess(input, input.credentials);
}

function baseClientOptions(input: RegistryAccessInput): RegistryClientOptions {
  const { credentialsHint, unreachableHint } = input;
  const own = (hint: string) => (registry: string) => (normalizeDockerConfigKey(registry) === input.host ? hint : undefined);
  return {
    ...(input.insecure ? { insecureRegistries: [input.host] } : {}),
    ...(credentialsHint ? { credentialsHint: own(credentialsHint) } : {}),
    ...(unreachableHint ? { unreachableHint: own(unreachableHint) } : {}),
    ...(input.manifestCache ? { manifestCache: input.manifestCache } : {}),
    ...input.client,
  };
}

/** Explicit credentials for the own host (else the Docker config), the Docker config for every other host. */
function staticAccess(input: RegistryAccessInput, explicit: RegistryCredentials | undefined): RegistryAccess {
  const client = new RegistryClient({
    ...(explicit ? { credentials: explicit } : {}),
    dockerConfig: input.dockerConfig ? { env: input.env } : false,
    ...baseClientOptions(input),
  });
  return {
    ownCredentials: (signal) => {
      checkSignal(signal);
      return client.credentialsFor(input.host, signal ? { signal } : {});
    },
    ownClient: async () => client,
    clientFor: async () => client,
  };
}

/** The token for the hosts it serves, a client renewed with each new token; the Docker config elsewhere. */
function tokenAccess(input: RegistryAccessInput, source: RegistryTokenSource): RegistryAccess {
  const { host, env } = input;
  const serves = (other: string): boolean => normalizeDockerConfigKey(other) === host || (source.serves?.(normalizeDockerConfigKey(other)) ?? false);
  let current: { for: RegistryCredentials; client: RegistryClient } | undefined;
  let other: RegistryClient | undefined;
  const ownClient = async (signal: AbortSignal | undefined): Promise<RegistryClient> => {
    const credentials = await source.token(signal);
    if (current?.for !== credentials) {
      const forHost = (registry: string) => (normalizeDockerConfigKey(registry) === host ? credentials : { ...credentials, registry });
      current = {
        for: credentials,
        client: new RegistryClient({
          credentials: (registry, { signal: s }) =>
            serves(registry) ? Promise.resolve(forHost(registry)) : dockerConfigCredentials(registry, { env, ...(s ? { signal: s } : {}) }),
          dockerConfig: false,
          ...baseClientOptions(input),
        }),
      };
    }
    return current.client;
  };
  return {
    ownCredentials: (signal) => source.token(signal),
    ownClient,
    async clientFor(ref, signal) {
      checkSignal(signal);
      let refHost = '';
      try {
        refHost = parseImageRef(ref).registry;
      } catch {
        // an invalid reference: resolveBaseImage reports it
      }
      if (serves(refHost)) return ownClient(signal);
      return (other ??= new RegistryClient({ dockerConfig: { env }, ...baseClientOptions(input) }));
    },
  };
}
