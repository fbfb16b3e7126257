// RegistryClient.apiRequest (a registry API call beyond the client's own, e.g. Google's tags/list
// manifest map) against the real local registries: the plain one and the Bearer token one.
import { expect, it, vi } from 'vitest';
import { InputError } from '../errors.js';
import { Secret } from '../secret.js';
import { pushImage, uniqueRepo } from './__fixtures__/push-image.js';
import { describeOrFailInCi, registriesMissing, testServices } from './__fixtures__/test-services.js';
import { RegistryClient } from './registry-client.js';

const services = testServices();
const missing = registriesMissing(services);
const FAST = { dockerConfig: false, retry: { attempts: 1 }, timeoutMs: 5000 } as const;

describeOrFailInCi('RegistryClient.apiRequest against the local registries', missing, () => {
  it('answers any status with the body and the registry error text; a path outside /v2/ is an InputError', async () => {
    const host = services.registries!.plain.host;
    const image = await pushImage({ host }, uniqueRepo('api-request'), 'v1');
    const client = new RegistryClient(FAST);
    const listed = await client.apiRequest({ registry: host, repository: image.repository }, 'GET', `/v2/${image.repository}/tags/list`);
    expect(listed.status).toBe(200);
    expect(JSON.parse(Buffer.from(listed.body).toString('utf8'))).toEqual({ name: image.repository, tags: ['v1'] });
    expect(listed.detail).toBe('');
    const absent = uniqueRepo('api-request-none');
    const missingRepo = await client.apiRequest({ registry: host, repository: absent }, 'GET', `/v2/${absent}/tags/list`);
    expect(missingRepo.status).toBe(404);
    expect(missingRepo.detail).toMatch(/NAME_UNKNOWN/);
    await expect(client.apiRequest({ registry: host, repository: absent }, 'GET', 'http://elsewhere.example/v2/')).rejects.toBeInstanceOf(InputError);
  });

  it('asks the token server for the scope actions given (pull by default)', async () => {
    const reg = services.registries!.token;
    const image = await pushImage({ ...reg, token: { realm: reg.realm, service: reg.service } }, uniqueRepo('api-request-token'), 'v1');
    const spy = vi.spyOn(globalThis, 'fetch');
    try {
      const client = new RegistryClient({ ...FAST, credentials: { registry: reg.host, username: reg.username, password: new Secret(reg.password), source: 'test' } });
      const target = { registry: reg.host, repository: image.repository };
      expect((await client.apiRequest(target, 'GET', `/v2/${image.repository}/tags/list`)).status).toBe(200);
      await client.apiRequest(target, 'GET', `/v2/${image.repository}/tags/list`, { actions: 'pull,push' });
      const scopes = spy.mock.calls.map(([url]) => String(url)).filter((url) => url.startsWith(reg.realm)).map((url) => new URL(url).searchParams.get('scope'));
      expect(scopes).toEqual([`repository:${image.repository}:pull`, `repository:${image.repository}:pull,push`]);
    } finally {
      spy.mockRestore();
    }
  });
});
