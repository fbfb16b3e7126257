import { describe, expect, it } from 'vitest';
import { Secret } from '../secret.js';
import { dockerConfigAuth } from './docker-config-auth.js';

describe('dockerConfigAuth', () => {
  const base = { registry: 'r', source: 'test' };
  it('writes user:password, an identity token with an empty password, or a registry token', () => {
    expect(dockerConfigAuth({ ...base, username: 'u', password: new Secret('p') })).toEqual({ auth: Buffer.from('u:p').toString('base64') });
    expect(dockerConfigAuth({ ...base, username: 'u', password: new Secret('p'), identityToken: new Secret('t') })).toEqual({
      auth: Buffer.from('u:').toString('base64'),
      identitytoken: 't',
    });
    expect(dockerConfigAuth({ ...base, registryToken: new Secret('rt') })).toEqual({ registrytoken: 'rt' });
    expect(dockerConfigAuth(base)).toEqual({ auth: Buffer.from(':').toString('base64') });
  });
});
