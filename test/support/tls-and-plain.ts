/**
 * One port of 127.0.0.1 that speaks both HTTPS and plain HTTP, for tests of a downgrade:
 * `https://127.0.0.1:P` and `http://127.0.0.1:P` have the same host and differ only in scheme, so a
 * client that keys its credentials by host alone sends them over both. A connection's first byte
 * tells a TLS handshake (0x16) from a request; each is passed to its own server behind.
 * The certificate is self-signed for IP 127.0.0.1 (made with openssl): clients under test must not
 * check it (NODE_TLS_REJECT_UNAUTHORIZED=0 for the test, as undici reads it per connection).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { connect, createServer as createNetServer, type AddressInfo, type Server as NetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/** A request one of the two schemes received. */
export interface SchemeRequest {
  scheme: 'https' | 'http';
  method: string;
  url: string;
  authorization: string | undefined;
  body: string;
}

export interface TlsAndPlain {
  /** `127.0.0.1:P`, the same for both schemes. */
  host: string;
  seen: SchemeRequest[];
  close(): Promise<void>;
}

/** Why these tests cannot run here (no openssl to make the certificate), or undefined. */
export const tlsAndPlainMissing: string | undefined =
  spawnSync('openssl', ['version']).status === 0 ? undefined : 'needs openssl to make a certificate: apt-get install openssl (scripts/test-services.sh up does)';

/** A self-signed key and certificate for IP 127.0.0.1. */
export async function loopbackCertificate(): Promise<{ key: Buffer; cert: Buffer }> {
  const dir = await mkdtemp(join(tmpdir(), 'prebuilt-loopback-tls-'));
  try {
    const args = ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'key.pem', '-out', 'cert.pem', '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'];
    execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
    return { key: await readFile(join(dir, 'key.pem')), cert: await readFile(join(dir, 'cert.pem')) };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const listen = (server: Server | NetServer): Promise<number> =>
  new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));

/** Serves `tls` over HTTPS and `plain` over HTTP on one port of 127.0.0.1, recording every request. */
export async function serveTlsAndPlain(certificate: { key: Buffer; cert: Buffer }, tls: Handler, plain: Handler): Promise<TlsAndPlain> {
  const seen: SchemeRequest[] = [];
  const record =
    (scheme: 'https' | 'http', handler: Handler): Handler =>
    (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        seen.push({ scheme, method: req.method!, url: req.url!, authorization: req.headers.authorization, body: Buffer.concat(chunks).toString('utf8') });
        handler(req, res);
      });
    };
  const secure = createHttpsServer(certificate, record('https', tls));
  const insecure = createHttpServer(record('http', plain));
  const ports = { https: await listen(secure), http: await listen(insecure) };
  const front = createNetServer((socket) => {
    socket.once('data', (first: Buffer) => {
      const upstream = connect(first[0] === 0x16 ? ports.https : ports.http, '127.0.0.1');
      upstream.write(first);
      socket.pipe(upstream).pipe(socket);
      const close = (): void => {
        socket.destroy();
        upstream.destroy();
      };
      socket.on('error', close).on('close', close);
      upstream.on('error', close).on('close', close);
    });
  });
  const port = await listen(front);
  return {
    host: `127.0.0.1:${port}`,
    seen,
    async close() {
      for (const server of [secure, insecure]) server.closeAllConnections();
      await Promise.all([front, secure, insecure].map((server) => new Promise((resolve) => server.close(resolve))));
    },
  };
}
