import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, errorMessage, isLoopbackHost, orOption, redactUrls } from '@prebuilt/core/backend';
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
      const socketPath = decoded(url.pathname, host);
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
    case 'ssh:':
      return sshConnection(url, host);
    default:
      throw invalidHost(host);
  }
}

/**
 * `ssh://[user@]host[:port]`. As the docker CLI, no password (ssh reads keys and the agent); the
 * login goes to ssh as `-l`'s own argument and the host after `--` (ssh-dial.ts), so neither is
 * read as an option, and a login with a space or a control character (`%0A`), which ssh would
 * put into the `%r` of a ProxyCommand or `Match exec` of the user's ssh configuration, is refused.
 */
function sshConnection(url: URL, host: string): EngineConnection {
  if (url.password !== '') {
    throw new ConfigError(`The Docker host '${shownDockerHost(host)}' has a password: a plain-text password is not supported for ssh.`, {
      setting: 'DOCKER_HOST',
      hint: 'Remove it from the address (ssh://user@host) and let ssh authenticate with a key (ssh-agent, ~/.ssh/config), as the docker CLI does.',
    });
  }
  const options: EngineConnection = { protocol: 'ssh', host: url.hostname, port: url.port === '' ? 22 : Number(url.port) };
  const username = decoded(url.username, host);
  if (/[\s\p{Cc}]/u.test(username)) throw invalidHost(host);
  if (username !== '') options.username = username;
  return options;
}

/** A %-escaped part of the address, decoded; a broken escape (`%zz`) makes the address invalid. */
function decoded(text: string, host: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    throw invalidHost(host);
  }
}

/** The Docker host as messages show it: credentials in it (`tcp://user:pass@host`) as `***` (`tcp://***@host`). An ssh login (`ssh://user@host`) is not a secret and stays. */
export function shownDockerHost(host: string): string {
  return /^ssh:\/\/[^/@:]*@/i.test(host) ? host : redactUrls(host);
}

function invalidHost(host: string): ConfigError {
  return new ConfigError(`The Docker host '${shownDockerHost(host)}' is not an address prebuilt understands.`, {
    setting: 'DOCKER_HOST',
    hint: `Use unix:///var/run/docker.sock, tcp://127.0.0.1:2375 or ssh://user@host, in DOCKER_HOST${orOption('dockerHost')}.`,
  });
}

/**
 * Whether registry credentials sent to this daemon (X-Registry-Auth, X-Registry-Config) cross the
 * network unencrypted: plain TCP (`tcp://` without DOCKER_TLS_VERIFY, `http://`) to a host that is
 * not this machine. A unix socket, ssh, TLS and loopback addresses are not.
 */
export function credentialsInClear(connection: EngineConnection): boolean {
  return connection.socketPath === undefined && connection.protocol === 'http' && connection.host !== undefined && !isLoopbackHost(connection.host);
}

/** The note for {@link credentialsInClear}: what goes where unencrypted, and the two ways to fix it. */
export function credentialsInClearNote(dockerHost: string): string {
  return (
    `registry credentials go to the Docker daemon at ${shownDockerHost(dockerHost)} unencrypted (the X-Registry-Auth header, as the docker CLI sends them): ` +
    'anyone on the network between can read them. Use TLS (DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH holding ca.pem, cert.pem and key.pem, the daemon on port 2376) or ssh://user@host in DOCKER_HOST.'
  );
}
