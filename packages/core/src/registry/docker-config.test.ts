import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { inspect } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuthError, ConfigError } from '../errors.js';
import {
  dockerConfigCredentials,
  dockerConfigKey,
  dockerConfigPath,
  normalizeDockerConfigKey,
  parseDockerConfig,
} from './docker-config.js';

const b64 = (s: string): string => Buffer.from(s).toString('base64');

let dir: string;
let env: Record<string, string | undefined>;

/** A real credential helper program on PATH: answers per server URL, records what it was asked. */
const HELPER = `#!/bin/sh
[ "$1" = get ] || { echo "unsupported: $1" >&2; exit 2; }
read -r server || true
echo "$server" >> "$(dirname "$0")/asked.log"
case "$server" in
  helper.example) echo '{"ServerURL":"helper.example","Username":"hal","Secret":"helper-pass"}' ;;
  https://index.docker.io/v1/) echo '{"ServerURL":"https://index.docker.io/v1/","Username":"<token>","Secret":"identity-tok"}' ;;
  store.example) echo '{"ServerURL":"store.example","Username":"sam","Secret":"store-pass"}' ;;
  broken.example) echo 'keychain is locked' >&2; exit 3 ;;
  failing-answer.example) echo '{"ServerURL":"failing-answer.example","Username":"fay","Secret":"answer-pass"}'; exit 4 ;;
  garbage.example) echo 'not json at all' ;;
  *) echo 'credentials not found in native keychain'; exit 1 ;;
esac
`;

async function writeConfig(config: unknown): Promise<void> {
  await writeFile(join(dir, 'config.json'), typeof config === 'string' ? config : JSON.stringify(config));
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'prebuilt-docker-config-'));
  await writeFile(join(dir, 'docker-credential-fake'), HELPER);
  await chmod(join(dir, 'docker-credential-fake'), 0o755);
  env = { DOCKER_CONFIG: dir, PATH: `${dir}:${process.env['PATH'] ?? ''}` };
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('dockerConfigPath', () => {
  it('honours DOCKER_CONFIG, else HOME/.docker', () => {
    expect(dockerConfigPath({ DOCKER_CONFIG: '/x/y' })).toBe('/x/y/config.json');
    expect(dockerConfigPath({ HOME: '/home/u' })).toBe('/home/u/.docker/config.json');
  });
});

describe('config keys', () => {
  it.each([
    ['https://index.docker.io/v1/', 'docker.io'],
    ['index.docker.io', 'docker.io'],
    ['registry-1.docker.io', 'docker.io'],
    ['docker.io', 'docker.io'],
    ['http://127.0.0.1:5000/v2/', '127.0.0.1:5000'],
    ['HTTPS://Registry.Example.com', 'registry.example.com'],
    ['ghcr.io', 'ghcr.io'],
  ])('%s → %s', (key, host) => {
    expect(normalizeDockerConfigKey(key)).toBe(host);
  });
  it('looks Docker Hub up under https://index.docker.io/v1/', () => {
    expect(dockerConfigKey('docker.io')).toBe('https://index.docker.io/v1/');
    expect(dockerConfigKey('127.0.0.1:5000')).toBe('127.0.0.1:5000');
  });
});

describe('parseDockerConfig', () => {
  it.each([
    ['{not json', 'it is not valid JSON'],
    ['[]', 'the top level must be a JSON object'],
    ['{"auths": []}', '"auths" must be an object'],
    ['{"auths": {"r": "x"}}', 'auths["r"] must be an object'],
    ['{"auths": {"r": {"auth": 5}}}', 'auths["r"].auth must be a string'],
    ['{"credsStore": true}', '"credsStore" must be a string'],
    ['{"credHelpers": {"r": 1}}', 'credHelpers["r"] must be a string'],
  ])('%s → ConfigError naming the file', (text, why) => {
    expect(() => parseDockerConfig(text, '/cfg/config.json')).toThrow(ConfigError);
    expect(() => parseDockerConfig(text, '/cfg/config.json')).toThrow(`Docker config /cfg/config.json is malformed: ${why}`);
  });
});

describe('dockerConfigCredentials', () => {
  it('gives undefined when there is no config file', async () => {
    expect(await dockerConfigCredentials('127.0.0.1:5000', { env: { DOCKER_CONFIG: join(dir, 'absent') } })).toBeUndefined();
  });

  it('decodes auths entries (base64 auth, identitytoken) under normalised keys, secrets redacted', async () => {
    await writeConfig({
      auths: {
        'http://127.0.0.1:5000/v2/': { auth: b64('alice:pa:ss') },
        'https://index.docker.io/v1/': { identitytoken: 'hub-refresh' },
        'other.example': {},
      },
    });
    const creds = await dockerConfigCredentials('127.0.0.1:5000', { env });
    expect(creds?.username).toBe('alice');
    expect(creds?.password?.reveal()).toBe('pa:ss');
    expect(creds?.source).toBe(`${join(dir, 'config.json')} (auths["http://127.0.0.1:5000/v2/"])`);
    expect(JSON.stringify(creds)).not.toContain('pa:ss');
    expect(inspect(creds)).not.toContain('pa:ss');

    const hub = await dockerConfigCredentials('docker.io', { env });
    expect(hub?.identityToken?.reveal()).toBe('hub-refresh');
    expect(await dockerConfigCredentials('other.example', { env })).toBeUndefined();
    expect(await dockerConfigCredentials('nowhere.example', { env })).toBeUndefined();
  });

  it('rejects an auth field that is not base64 of user:password', async () => {
    await writeConfig({ auths: { 'r.example': { auth: b64('no-colon') } } });
    await expect(dockerConfigCredentials('r.example', { env })).rejects.toThrow(/malformed: auths\["r.example"\].auth is not base64/);
  });

  it('runs credHelpers[host] (a real docker-credential-* program on PATH) with the host on stdin', async () => {
    await writeConfig({ credHelpers: { 'helper.example': 'fake', 'docker.io': 'fake' }, auths: { 'helper.example': { auth: b64('file:ignored') } } });
    const creds = await dockerConfigCredentials('helper.example', { env });
    expect(creds?.username).toBe('hal');
    expect(creds?.password?.reveal()).toBe('helper-pass');
    expect(creds?.source).toContain('docker-credential-fake');
    expect(creds?.source).toContain('credHelpers["helper.example"]');

    // `<token>` as user name: the secret is an identity token; Docker Hub is asked for under its v1 URL.
    const hub = await dockerConfigCredentials('docker.io', { env });
    expect(hub?.username).toBeUndefined();
    expect(hub?.identityToken?.reveal()).toBe('identity-tok');
    const asked = (await readFile(join(dir, 'asked.log'), 'utf8')).trim().split('\n');
    expect(asked).toContain('helper.example');
    expect(asked).toContain('https://index.docker.io/v1/');
  });

  it('uses credsStore, falling back to auths when the store has nothing', async () => {
    await writeConfig({ credsStore: 'fake', auths: { 'store.example': {}, 'plain.example': { username: 'u', password: 'p' } } });
    const store = await dockerConfigCredentials('store.example', { env });
    expect(store?.username).toBe('sam');
    expect(store?.source).toContain('credsStore');
    const plain = await dockerConfigCredentials('plain.example', { env });
    expect(plain?.username).toBe('u');
    expect(plain?.password?.reveal()).toBe('p');
    expect(plain?.source).toContain('auths["plain.example"]');
    expect(await dockerConfigCredentials('unknown.example', { env })).toBeUndefined();
  });

  it('names a missing helper in a ConfigError', async () => {
    await writeConfig({ credHelpers: { 'r.example': 'nope' } });
    const error = await dockerConfigCredentials('r.example', { env }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).message).toContain('docker-credential-nope');
    expect((error as ConfigError).message).toContain('was not found on PATH');
    expect((error as ConfigError).message).toContain(join(dir, 'config.json'));
  });

  it('never runs a helper found only through an empty or relative PATH entry (the current directory, as Docker refuses it)', async () => {
    await writeConfig({ credHelpers: { 'helper.example': 'fake' } });
    const here = relative(process.cwd(), dir);
    for (const path of [`${here}:/usr/bin`, `/usr/bin:${here}`]) {
      const error = await dockerConfigCredentials('helper.example', { env: { ...env, PATH: path } }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).message).toBe(
        `credential helper docker-credential-fake (named in ${join(dir, 'config.json')} credHelpers["helper.example"]) was found only in '${here}', a PATH entry relative to the current directory; prebuilt does not run programs from there (anyone who wrote the current directory could have put a 'docker-credential-fake' in it).`,
      );
      expect((error as ConfigError).hint).toMatch(/^Install docker-credential-fake into a directory PATH names by an absolute path, and remove the empty or relative entry from PATH/);
    }
    // The same helper in an absolute entry is run.
    expect((await dockerConfigCredentials('helper.example', { env: { ...env, PATH: `${here}:${dir}` } }))?.username).toBe('hal');
  });

  it('names a failing helper in an AuthError with its message', async () => {
    await writeConfig({ credHelpers: { 'broken.example': 'fake', 'garbage.example': 'fake' } });
    const error = await dockerConfigCredentials('broken.example', { env }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AuthError);
    expect((error as AuthError).message).toBe('credential helper docker-credential-fake failed for broken.example (exit code 3): keychain is locked');
    expect((error as AuthError).source).toContain('docker-credential-fake');
    const garbage = await dockerConfigCredentials('garbage.example', { env }).catch((e: unknown) => e);
    expect(garbage).toBeInstanceOf(AuthError);
    expect((garbage as AuthError).message).toContain('not JSON');
    expect((garbage as AuthError).message).not.toContain('not json at all');
  });

  it('never quotes the answer of a helper that printed one and exited with an error: its secret stays out of the message', async () => {
    await writeConfig({ credHelpers: { 'failing-answer.example': 'fake' } });
    const error = await dockerConfigCredentials('failing-answer.example', { env }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AuthError);
    expect((error as AuthError).message).toBe('credential helper docker-credential-fake failed for failing-answer.example (exit code 4), after printing an answer (not shown: it holds the secret)');
    expect(inspect(error)).not.toContain('answer-pass');
  });

  it('keeps only the first MiB of a helper printing without end (512 MiB): its answer is then not JSON', async () => {
    await writeFile(join(dir, 'docker-credential-loud'), '#!/bin/sh\necho \'{"Username":"u","Secret":"s"}\'\nyes noise | head -c 536870912\n');
    await chmod(join(dir, 'docker-credential-loud'), 0o755);
    await writeConfig({ credHelpers: { 'loud.example': 'loud' } });
    const error = await dockerConfigCredentials('loud.example', { env }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AuthError);
    expect((error as AuthError).message).toBe('credential helper docker-credential-loud returned output that is not JSON for loud.example');
  }, 60_000);

  it('stops a helper that hangs', async () => {
    await writeFile(join(dir, 'docker-credential-slow'), '#!/bin/sh\nsleep 30\n');
    await chmod(join(dir, 'docker-credential-slow'), 0o755);
    await writeConfig({ credHelpers: { 'slow.example': 'slow' } });
    const started = Date.now();
    const error = await dockerConfigCredentials('slow.example', { env, helperTimeoutMs: 300 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AuthError);
    expect((error as AuthError).message).toContain('did not answer within');
    expect(Date.now() - started).toBeLessThan(5000);
  });
});
