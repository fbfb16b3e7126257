import type { EngineClient } from './engine-client.js';

/** What `GET /version` of the Engine API answers (the fields prebuilt reads). */
export interface EngineVersion {
  Version?: string;
  ApiVersion?: string;
}

/**
 * `GET /version` (or `/v1.41/version` with an API version) of the daemon `client` talks to. A
 * connection failure rejects with its error (no `statusCode`); a non-2xx answer with an error
 * carrying `statusCode` and the daemon's JSON; an answer that is not a JSON object is refused.
 */
export async function engineVersion(client: EngineClient, signal?: AbortSignal): Promise<EngineVersion> {
  const answer = await client.json<unknown>({ method: 'GET', path: '/version', signal });
  if (typeof answer !== 'object' || answer === null) throw new Error('its answer to GET /version is not a JSON object (is DOCKER_HOST a Docker daemon?)');
  return answer as EngineVersion;
}
