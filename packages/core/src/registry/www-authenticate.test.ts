import { describe, expect, it } from 'vitest';
import { parseWwwAuthenticate } from './www-authenticate.js';

describe('parseWwwAuthenticate', () => {
  it('parses a Bearer challenge with quoted parameters', () => {
    expect(parseWwwAuthenticate('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/python:pull"')).toEqual([
      { scheme: 'bearer', params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/python:pull' } },
    ]);
  });
  it('parses Basic, unquoted values, escapes, spaces and several challenges', () => {
    expect(parseWwwAuthenticate('Basic realm="a \\"b\\" c", Bearer realm=http://x/t , error=invalid_token')).toEqual([
      { scheme: 'basic', params: { realm: 'a "b" c' } },
      { scheme: 'bearer', params: { realm: 'http://x/t', error: 'invalid_token' } },
    ]);
  });
  it('keeps commas inside quoted scopes', () => {
    expect(parseWwwAuthenticate('Bearer realm="r",scope="repository:a:pull,push"')[0]?.params['scope']).toBe('repository:a:pull,push');
  });
  it('skips a stray character and keeps an unterminated quoted value to the end', () => {
    expect(parseWwwAuthenticate('Bearer ;realm="r", scope="repository:a:pull')).toEqual([{ scheme: 'bearer', params: { realm: 'r', scope: 'repository:a:pull' } }]);
  });
  it('returns nothing for a missing header', () => {
    expect(parseWwwAuthenticate(null)).toEqual([]);
    expect(parseWwwAuthenticate('')).toEqual([]);
  });
});
