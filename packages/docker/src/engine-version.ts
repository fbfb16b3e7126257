import { request as httpRequest, type IncomingMessage, type RequestOptions } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { DockerOptions } from 'dockerode';

/** What `GET /version` of the Engine API answers (the fields prebuilt reads). */
export interface EngineVersion {
  Version?: string;
  ApiVersion?: string;
}

/** A refused request, shaped as dockerode's errors are (`statusCode`, the daemon's `json`), so callers read both alike. */
export interface EngineRequestError extends Error {
  statusCode?: number;
  json?: unknown;
}

const MAX_BODY = 1 << 20;

/**
 * `GET /version` (or `/v1.41/version` with an API version) of the daemon at `connection` — a unix
 * socket, or TCP with or without TLS (dockerode's connection options, see docker-host.ts) — over
 * Node's own HTTP client. A connection failure rejects with its error (no `statusCode`); a non-2xx
 * answer with an error carrying `statusCode` and the daemon's JSON, as dockerode reports them.
 */
export function engineVersion(connection: DockerOptions, signal?: AbortSignal): Promise<EngineVersion> {
  const tls = connection.protocol === 'https';
  const options: RequestOptions & { ca?: unknown; cert?: unknown; key?: unknown } = {
    method: 'GET',
    path: `${connection.version ? `/${connection.version}` : ''}/version`,
    headers: { accept: 'application/json' },
    ...(connection.socketPath ? { socketPath: connection.socketPath, host: 'localhost' } : { host: connection.host, port: connection.port }),
    ...(tls ? { ca: connection.ca, cert: connection.cert, key: connection.key } : {}),
    ...(signal ? { signal } : {}),
  };
  return new Promise((resolve, reject) => {
    const req = (tls ? httpsRequest : httpRequest)(options as RequestOptions, (response) => {
      readBody(response).then((body) => {
        const status = response.statusCode ?? 0;
        let json: unknown;
        try {
          json = JSON.parse(body);
        } catch {
          json = body;
        }
        if (status >= 200 && status < 300 && typeof json === 'object' && json !== null) resolve(json as EngineVersion);
        else reject(refused(status, response.statusMessage, json));
      }, reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** The answer's body as text; one larger than {@link MAX_BODY} (no daemon's `/version` is) is refused and the connection closed. */
function readBody(response: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    response.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_BODY) chunks.push(chunk);
      else {
        response.destroy();
        reject(new Error(`its answer to GET /version is larger than ${MAX_BODY} bytes (is DOCKER_HOST a Docker daemon?)`));
      }
    });
    response.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    response.on('error', reject);
  });
}

function refused(status: number, reason: string | undefined, json: unknown): EngineRequestError {
  const message = typeof json === 'object' && json !== null && typeof (json as { message?: unknown }).message === 'string' ? (json as { message: string }).message : String(json ?? '');
  const error: EngineRequestError = new Error(`(HTTP code ${status}) ${reason ?? 'unexpected'} - ${message.trim()}`);
  error.statusCode = status;
  error.json = json;
  return error;
}
