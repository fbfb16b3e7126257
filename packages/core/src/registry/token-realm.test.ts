import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { RegistryError } from '../errors.js';
import { Secret } from '../secret.js';
import { RegistryClient } from './registry-client.js';
import { realmRefusal } from './token-realm.js';

const MANIFEST = JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { digest: `sha256:${'a'.repeat(64)}`, size: 2 }, layers: [] });

/**
 * A FAKE network in place of global fetch (nothing leaves the process: the realms below name cloud
 * metadata addresses): `registry.example` and `127.0.0.1:5999` answer 401 with `realm` until they
 * get a token; `auth.example` and `127.0.0.1:5998` hand out tokens, or redirect to `redirect`.
 */
let seen: string[];
let realm: string;
let redirect: string | undefined;
beforeEach(() => {
  seen = [];
  redirect = undefined;
  vi.spyOn(globalThis, 'fetch').mockImplementation(async (input: string | URL | Request, init?: RequestInit) => {
    const url = new URL(input instanceof Request ? input.url : input);
    seen.push(url.href);
    const headers = new Headers(init?.headers);
    if (url.host === 'registry.example' || url.host === '127.0.0.1:5999') {
      if (headers.get('authorization') === 'Bearer good-token') return new Response(MANIFEST, { status: 200, headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' } });
      return new Response('{}', { status: 401, headers: { 'www-authenticate': `Bearer realm="${realm}",service="registry"` } });
    }
    if (url.host === 'auth.example' || url.host === '127.0.0.1:5998') {
      if (redirect) return new Response(null, { status: 302, headers: { location: redirect } });
      return new Response(JSON.stringify({ token: 'good-token' }), { status: 200, headers: { 'content-type': 'application/json' } });
    }
    return new Response('iam credentials of this machine', { status: 200 });
  });
});
afterEach(() => vi.restoreAllMocks());

function client(registry: string): RegistryClient {
  return new RegistryClient({
    dockerConfig: false,
    retry: { attempts: 1 },
    credentials: { registry, username: 'u', password: new Secret('registry-password'), source: 'test' },
  });
}

async function refusal(registry: string, tokenRealm: string): Promise<RegistryError> {
  realm = tokenRealm;
  const error = await client(registry).getManifest(`${registry}/team/app:v1`).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(RegistryError);
  return error as RegistryError;
}

describe('token realms a registry names (SSRF): fake network', () => {
  it('refuses a realm on a cloud metadata address (link-local, fd00:ec2::254), before any request to it', async () => {
    for (const [realmUrl, host] of [
      ['http://169.254.169.254/latest/meta-data/iam/security-credentials/', '169.254.169.254'],
      ['http://2852039166/latest/meta-data/', '169.254.169.254'],
      ['http://[fe80::a9fe:a9fe]/token', '[fe80::a9fe:a9fe]'],
      ['http://[::ffff:169.254.169.254]/token', '[::ffff:a9fe:a9fe]'],
      ['http://[fd00:ec2::254]/latest/meta-data/', '[fd00:ec2::254]'],
    ] as const) {
      const error = await refusal('registry.example', realmUrl);
      expect(error.message).toMatch(new RegExp(`^registry registry\\.example named the token server ${host.replace(/[[\].]/g, '\\$&')}, (a link-local address|the EC2 instance metadata service's IPv6 address)`));
      expect(error.message).toContain('prebuilt does not ask it for a token');
      expect(error.hint).toContain('names are not resolved');
    }
    expect(seen.filter((u) => !u.startsWith('https://registry.example/'))).toEqual([]);
  });

  it('refuses an unspecified address (0.0.0.0 reaches this machine), and loopback for a registry that is not on loopback', async () => {
    expect((await refusal('registry.example', 'http://0.0.0.0:5998/token')).message).toContain('an unspecified address (0.0.0.0/8, ::), which reaches this machine');
    expect((await refusal('127.0.0.1:5999', 'http://0.0.0.0:5998/token')).message).toContain('an unspecified address');
    for (const local of ['http://127.0.0.1:5998/token', 'http://localhost:5998/token', 'http://[::1]:5998/token', 'http://[::ffff:127.0.0.1]:5998/token']) {
      expect((await refusal('registry.example', local)).message).toContain('a loopback address (this machine), while the registry registry.example is not on this machine');
    }
    expect(seen.filter((u) => !u.startsWith('https://registry.example/') && !u.startsWith('http://127.0.0.1:5999/'))).toEqual([]);
  });

  it('refuses a realm that redirects the token request to such an address', async () => {
    redirect = 'http://169.254.169.254/latest/meta-data/';
    const error = await refusal('registry.example', 'https://auth.example/token');
    expect(error.message).toMatch(/^the token server https:\/\/auth\.example\/token of registry registry\.example redirected the token request to 169\.254\.169\.254, a link-local address/);
    expect(seen.some((u) => u.includes('169.254.169.254'))).toBe(false);
  });

  it('fetches a realm of the registry\'s own service, and a loopback realm of a loopback registry', async () => {
    realm = 'https://auth.example/token';
    expect((await client('registry.example').getManifest('registry.example/team/app:v1')).digest).toMatch(/^sha256:/);
    realm = 'http://127.0.0.1:5998/token';
    expect((await client('127.0.0.1:5999').getManifest('127.0.0.1:5999/team/app:v1')).digest).toMatch(/^sha256:/);
    redirect = 'http://localhost:5998/token2';
    // A loopback registry's realm redirecting on loopback is followed (the fake answers there with no token).
    const error = await client('127.0.0.1:5999').getManifest('127.0.0.1:5999/team/app:v1').catch((e: unknown) => e);
    expect((error as Error).message).toContain('answered with something that is not JSON');
    expect(seen).toContain('http://localhost:5998/token2');
  });

  it('realmRefusal: addresses only, names other than localhost are not resolved', () => {
    expect(realmRefusal(new URL('http://metadata.google.internal/'), 'registry.example')).toBeUndefined();
    expect(realmRefusal(new URL('http://169.254.170.2/v2/credentials'), 'registry.example')).toMatch(/link-local/);
    expect(realmRefusal(new URL('http://[64:ff9b::a9fe:a9fe]/'), 'registry.example')).toMatch(/link-local/);
    expect(realmRefusal(new URL('http://app.localhost/'), 'registry.example')).toMatch(/loopback/);
    expect(realmRefusal(new URL('http://127.0.0.1:1/'), 'localhost:5000')).toBeUndefined();
    expect(realmRefusal(new URL('http://10.0.0.5/'), 'registry.example')).toBeUndefined();
  });
});
