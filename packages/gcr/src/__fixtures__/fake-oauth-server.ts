import { createServer, type Server } from 'node:http';

export interface FakeOAuthServer {
  /** The token endpoint, e.g. http://127.0.0.1:34567/token. */
  tokenUrl: string;
  /** Token requests received so far. */
  requests: number;
  close(): Promise<void>;
}

/**
 * A fake of Google's OAuth 2.0 token endpoint on 127.0.0.1: the refresh-token grant with the
 * expected client and refresh token gets `accessToken`; anything else gets Google's
 * `400 invalid_grant` answer.
 */
export async function startFakeOAuthServer(expected: { clientId: string; refreshToken: string; accessToken: string; expiresIn?: number }): Promise<FakeOAuthServer> {
  const state = { requests: 0 };
  const server: Server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (body += chunk));
    req.on('end', () => {
      const send = (status: number, data: unknown): void => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(data));
      };
      if (req.method !== 'POST' || !req.url?.startsWith('/token')) return send(404, { error: 'not_found' });
      state.requests++;
      const form = new URLSearchParams(body);
      if (form.get('grant_type') !== 'refresh_token' || form.get('client_id') !== expected.clientId || form.get('refresh_token') !== expected.refreshToken) {
        return send(400, { error: 'invalid_grant', error_description: 'Token has been expired or revoked.' });
      }
      send(200, { access_token: expected.accessToken, expires_in: expected.expiresIn ?? 3599, token_type: 'Bearer', scope: 'https://www.googleapis.com/auth/cloud-platform' });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (typeof address !== 'object' || address === null) throw new Error('fake OAuth server has no address');
  return {
    tokenUrl: `http://127.0.0.1:${address.port}/token`,
    get requests() {
      return state.requests;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
