import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, errorMessage } from '@prebuilt/core/backend';
import type { EngineConnection } from './engine-client.js';

export const DEFAULT_DOCKER_HOST = 'unix:///var/run/docker.sock';

/**
 * Turns a Docker host address, as `DOCKER_HOST` spells it, into the connection of prebuilt's Engine API client (engine-client.ts).
 * `unix:///path` (or a bare absolute path), `tcp://host:port`, `http(s)://host:port` and
 * `ssh://user@host[:port]`. For `tcp://`, `DOCKER_TLS_VERIFY` switches to TLS with the
 * certificates in `DOCKER_CERT_PATH` (default `~/.docker`), as the docker CLI does.
 */
export function dockerConnection(host: string, env: Record<string, string | undefined>): EngineConnection {
  if (host.startsWith('/')) return { socketPath: host };
  let url: URL;
  try {
    url = new URL(host);
  } catch {
    throw invalidHost(host);
  }
  switch (url.protocol) {
    case 'unix:': {
      const socketPath = decodeURIComponent(url.pathname);
      if (socketPath === '' || socketPath === '/') throw invalidHost(host);
      return { socketPath };
    }
    case 'tcp:':
    case 'http:':
    case 'https:': {
      const tls = url.protocol === 'https:' || (url.protocol === 'tcp:' && (env['DOCKER_TLS_VERIFY'] ?? '') !== '');
      const port = url.port === '' ? (tls ? 2376 : 2375) : Number(url.port);
      const hostname = url.hostname.replace(/^\[(.*)\]$/, '$1');
      if (!tls) return { host: hostname, port, protocol: 'http' };
      const certPath = env['DOCKER_CERT_PATH'] || join(homedir(), '.docker');
      const read = (name: string): Buffer | undefined => {
        try {
          return readFileSync(join(certPath, name));
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code === 'ENOENT' && url.protocol === 'https:') return undefined;
          throw new ConfigError(`The Docker TLS file ${join(certPath, name)} cannot be read: ${errorMessage(error)}.`, {
            setting: 'DOCKER_CERT_PATH',
            cause: error,
            hint: 'Point DOCKER_CERT_PATH at the directory holding ca.pem, cert.pem and key.pem, or unset DOCKER_TLS_VERIFY.',
          });
        }
      };
      const options: EngineConnection = { host: hostname, port, protocol: 'https' };
      const ca = read('ca.pem');
      const cert = read('cert.pem');
      const key = read('key.pem');
      if (ca) options.ca = ca;
      if (cert) options.cert = cert;
      if (key) options.key = key;
      return options;
    }
    case 'ssh:': {
      const options: EngineConnection = { protocol: 'ssh', host: url.hostname, port: url.port === '' ? 22 : Number(url.port) };
      if (url.username) options.username = decodeURIComponent(url.username);
      return options;
    }
    default:
      throw invalidHost(host);
  }
}

function invalidHost(host: string): ConfigError {
  return new ConfigError(`The Docker host '${host}' is not an address prebuilt understands.`, {
    setting: 'DOCKER_HOST',
    hint: 'Use unix:///var/run/docker.sock, tcp://127.0.0.1:2375 or ssh://user@host, in DOCKER_HOST or the option dockerHost.',
  });
}
