#!/usr/bin/env node
// A small Docker registry token server (the Bearer-challenge flow of Docker Hub / GCR) for tests.
//
// It checks the user's password (HTTP Basic, or an OAuth2 password grant) and answers with a JWT
// signed RS256 by a local key; the registry trusts the key's self-signed certificate through
// `auth.token.rootcertbundle`, and the certificate chain travels in the JWT's `x5c` header.
// An authenticated user is granted every action of every requested scope; an anonymous request
// gets a token that grants nothing (as Docker Hub does for a private repository); wrong
// credentials get 401.
//
// Usage: node token-server.mjs <config.json>
//   config.json: { "host": "127.0.0.1", "port": 5103, "issuer": "...", "service": "...",
//                  "keyFile": "key.pem", "certFile": "cert.pem",
//                  "users": { "<name>": "<sha256 hex of password>" }, "expiresIn": 300 }
// Only node: builtins are used, so it runs on a machine where nothing was installed.

import { createHash, createPrivateKey, randomBytes, sign, timingSafeEqual, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';

const configPath = process.argv[2];
if (!configPath) {
  process.stderr.write('usage: token-server.mjs <config.json>\n');
  process.exit(2);
}
const config = JSON.parse(readFileSync(configPath, 'utf8'));
const privateKey = createPrivateKey(readFileSync(config.keyFile));
const chain = splitPem(readFileSync(config.certFile, 'utf8')).map((pem) => new X509Certificate(pem).raw.toString('base64'));
const expiresIn = Number(config.expiresIn ?? 300);

function splitPem(text) {
  return text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
}

function base64url(value) {
  return Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');
}

function sha256(text) {
  return createHash('sha256').update(text, 'utf8').digest();
}

function checkUser(username, password) {
  const expected = config.users?.[username];
  if (typeof expected !== 'string') return false;
  return timingSafeEqual(Buffer.from(expected, 'hex'), sha256(password));
}

// "repository:foo/bar:pull,push" -> { type, name, actions }. The name may itself hold ':' (a port).
function parseScope(scope) {
  const first = scope.indexOf(':');
  const last = scope.lastIndexOf(':');
  if (first < 0 || last === first) return null;
  const type = scope.slice(0, first);
  const name = scope.slice(first + 1, last);
  const actions = scope
    .slice(last + 1)
    .split(',')
    .map((a) => a.trim())
    .filter((a) => a.length > 0);
  if (!type || !name) return null;
  return { type, name, actions };
}

function issueToken(subject, scopes) {
  const now = Math.floor(Date.now() / 1000);
  const header = { typ: 'JWT', alg: 'RS256', x5c: chain };
  const claims = {
    iss: config.issuer,
    sub: subject,
    aud: config.service,
    exp: now + expiresIn,
    nbf: now - 10,
    iat: now,
    jti: randomBytes(16).toString('hex'),
    access: subject ? scopes : [],
  };
  const signingInput = `${base64url(header)}.${base64url(claims)}`;
  const signature = sign('sha256', Buffer.from(signingInput), privateKey).toString('base64url');
  const token = `${signingInput}.${signature}`;
  return { token, access_token: token, expires_in: expiresIn, issued_at: new Date(now * 1000).toISOString() };
}

function send(res, status, body, headers = {}) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

function unauthorized(res, detail) {
  send(res, 401, { errors: [{ code: 'UNAUTHORIZED', message: detail }] }, {
    'www-authenticate': `Basic realm="${config.service}"`,
  });
}

function basicCredentials(req) {
  const header = req.headers.authorization;
  if (!header) return null;
  const match = /^Basic\s+(.+)$/i.exec(header);
  if (!match) return { invalid: true };
  const decoded = Buffer.from(match[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return { invalid: true };
  return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > 64 * 1024) {
        reject(new Error('request body too large'));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

// Decide who asks, from Basic auth (GET, as Docker and most clients do) or a form (POST, OAuth2).
// Returns { subject } (subject '' for anonymous) or { error }.
function authenticate(req, params) {
  const grant = params.get('grant_type');
  if (grant === 'password') {
    const username = params.get('username') ?? '';
    const password = params.get('password') ?? '';
    return checkUser(username, password) ? { subject: username } : { error: 'incorrect username or password' };
  }
  if (grant && grant !== 'password') return { error: `unsupported grant_type ${grant}`, status: 400 };
  const creds = basicCredentials(req);
  if (creds === null) return { subject: '' };
  if (creds.invalid) return { error: 'malformed Authorization header' };
  if (!checkUser(creds.username, creds.password)) return { error: 'incorrect username or password' };
  // Docker sends `account=<user>`; it must name the user who authenticated.
  const account = params.get('account');
  if (account && account !== creds.username) return { error: `account ${account} does not match the authenticated user` };
  return { subject: creds.username };
}

const server = createServer(async (req, res) => {
  try {
    const url = new URL(req.url ?? '/', `http://${req.headers.host ?? 'localhost'}`);
    if (url.pathname === '/healthz') {
      send(res, 200, { ok: true, service: config.service, issuer: config.issuer });
      return;
    }
    if (url.pathname !== '/token') {
      send(res, 404, { errors: [{ code: 'NOT_FOUND', message: `no route ${url.pathname}` }] });
      return;
    }
    let params = url.searchParams;
    if (req.method === 'POST') {
      params = new URLSearchParams(await readBody(req));
    } else if (req.method !== 'GET') {
      send(res, 405, { errors: [{ code: 'UNSUPPORTED', message: `method ${req.method} not allowed` }] });
      return;
    }
    const service = params.get('service');
    if (service && service !== config.service) {
      send(res, 400, { errors: [{ code: 'INVALID_REQUEST', message: `unknown service ${service}` }] });
      return;
    }
    const who = authenticate(req, params);
    if (who.error) {
      if (who.status === 400) send(res, 400, { errors: [{ code: 'UNSUPPORTED', message: who.error }] });
      else unauthorized(res, who.error);
      return;
    }
    // `offline_token=true` asks for a refresh token, which a server may decline: we do, so that
    // clients keep authenticating with the password (Docker then stores username and password).
    const scopes = [];
    for (const raw of params.getAll('scope')) {
      for (const one of raw.split(' ')) {
        if (!one) continue;
        const parsed = parseScope(one);
        if (!parsed) {
          send(res, 400, { errors: [{ code: 'INVALID_REQUEST', message: `malformed scope ${one}` }] });
          return;
        }
        scopes.push(parsed);
      }
    }
    send(res, 200, issueToken(who.subject, scopes));
  } catch (error) {
    send(res, 500, { errors: [{ code: 'INTERNAL', message: String(error && error.message) }] });
  }
});

server.listen(Number(config.port), config.host ?? '127.0.0.1', () => {
  process.stdout.write(`token server listening on ${config.host ?? '127.0.0.1'}:${config.port}\n`);
});
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
    setTimeout(() => process.exit(0), 2000).unref();
  });
}
