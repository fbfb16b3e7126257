/**
 * A private conda channel reached with an anaconda.org-style token in its URL
 * (`https://conda.anaconda.org/t/<token>/<channel>`): the token is a credential, so the lock (its
 * requests and package URLs), the caches and the messages never carry it, and requests to that
 * channel get it back from the setting.
 */
import { createServer, type Server } from 'node:http';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { redactUrls, requestDefaults, ResolutionError, urlCredentialsFromEnv, type EnvRequest } from '@prebuilt/core';
import { generateFixtures, standInPython, startFixtureServer, type CondaPackageSpec, type FixtureServer } from '@prebuilt/fixtures';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PackageCache } from '../cache/package-cache.js';
import { createResolver } from './resolver.js';

const TOKEN = 'xy-0123abcd-4567-89ef-secret';

const packages: CondaPackageSpec[] = [
  standInPython('3.11.9', 'linux-64'),
  { name: 'privpkg', version: '1.0', subdir: 'noarch', noarch: 'python', depends: ['python >=3.8'], files: [{ path: 'site-packages/privpkg/__init__.py', content: '' }] },
];

let dir: string;
let fixtures: FixtureServer;
/** Serves the fixture channel only under `/t/<TOKEN>/` (404 otherwise, as anaconda.org answers a private channel). */
let gate: Server;
let origin: string;
const seen: string[] = [];

async function walk(root: string): Promise<string[]> {
  const out: string[] = [];
  for (const name of await readdir(root)) {
    const path = join(root, name);
    if ((await stat(path)).isDirectory()) out.push(...(await walk(path)));
    else out.push(path);
  }
  return out;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'prebuilt-token-'));
  const fx = await generateFixtures(join(dir, 'fx'), { conda: packages, wheels: [] }, { python: false });
  fixtures = await startFixtureServer({ channels: { private: fx.channelDir } });
  gate = createServer((req, res) => {
    const url = req.url ?? '';
    seen.push(url);
    const prefix = `/t/${TOKEN}/`;
    if (!url.startsWith(prefix)) return void res.writeHead(404).end();
    void fetch(`${fixtures.url}/${url.slice(prefix.length)}`).then(async (upstream) => {
      res.writeHead(upstream.status, { 'content-type': upstream.headers.get('content-type') ?? 'application/octet-stream' }).end(Buffer.from(await upstream.arrayBuffer()));
    });
  });
  await new Promise<void>((resolve) => gate.listen(0, '127.0.0.1', resolve));
  origin = `http://127.0.0.1:${(gate.address() as { port: number }).port}`;
});

afterAll(async () => {
  await new Promise<void>((resolve) => gate?.close(() => resolve()));
  await fixtures?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('a conda channel with a token in its URL (/t/<token>/)', () => {
  it('locks, caches and downloads without the token anywhere but the requests to that channel', async () => {
    const env = { METAFLOW_PREBUILT_CONDA_CHANNELS: `${origin}/t/${TOKEN}/channels/private` };
    const defaults = requestDefaults({ env });
    expect(defaults.channels).toEqual([`${origin}/channels/private`]);
    const request: EnvRequest = { python: '3.11', conda: { privpkg: '1.0' }, pypi: {}, ...defaults, indexUrl: null };
    const cacheDir = join(dir, 'cache');
    const resolver = createResolver({ cacheDir, env, pip: { isolated: true } });
    try {
      const locked = await resolver.resolveEnv(request);
      expect(locked.packages.map((p) => p.name).sort()).toEqual(['privpkg', 'python']);
      for (const pkg of locked.packages) expect(pkg.url.startsWith(`${origin}/channels/private/`), pkg.url).toBe(true);
      // What the lock file keeps of the env: its request (channels) and packages.
      expect(JSON.stringify(locked)).not.toContain(TOKEN);
      for (const file of await walk(cacheDir)) expect(await readFile(file, 'utf8'), file).not.toContain(TOKEN);

      const cache = new PackageCache({ cacheDir, env });
      const { paths } = await cache.ensure(locked.packages);
      expect(paths.size).toBe(2);
      expect(seen.some((url) => url.startsWith(`/t/${TOKEN}/channels/private/noarch/privpkg-1.0`))).toBe(true);
    } finally {
      await resolver.close();
    }
  });

  it('hides the token wherever a URL is shown', () => {
    expect(redactUrls(`GET https://conda.anaconda.org/t/${TOKEN}/private/linux-64/repodata.json failed`)).toBe(
      'GET https://conda.anaconda.org/t/***/private/linux-64/repodata.json failed',
    );
    expect(urlCredentialsFromEnv({ METAFLOW_PREBUILT_CONDA_CHANNELS: `${origin}/t/${TOKEN}/channels/private` }).requestUrl(`${origin}/channels/private/noarch/x.conda`)).toBe(
      `${origin}/t/${TOKEN}/channels/private/noarch/x.conda`,
    );
  });

  it('refuses a token in the channel of a decorator: the request is written to the lock file', async () => {
    const resolver = createResolver({ cacheDir: false, env: {}, pip: { isolated: true } });
    try {
      const request: EnvRequest = { python: '3.11', conda: { [`${origin}/t/${TOKEN}/channels/private::privpkg`]: '1.0' }, pypi: {}, channels: [], indexUrl: null, platform: 'linux-64' };
      const error = await resolver.resolveEnv(request).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ResolutionError);
      expect((error as ResolutionError).message).toContain('would be written to the lock file');
      expect((error as ResolutionError).message).not.toContain(TOKEN);
    } finally {
      await resolver.close();
    }
  });
});
