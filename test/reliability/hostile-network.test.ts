/**
 * Hostile networks: misbehaving channels, indexes and registries on 127.0.0.1 (the fault proxy of
 * test/support in front of the fixture server and the test registries) against the real CLI.
 *
 * - bounds: an endless repodata, package download, manifest or error body ends with exit 1 and a
 *   message naming what was too large; the CLI's peak RSS stays bounded (measured);
 * - stalls: a read with no byte for METAFLOW_PREBUILT_NETWORK_IDLE_TIMEOUT fails naming the host
 *   and what it read, and the CLI says what it waits on while it waits;
 * - credentials: the registry's Authorization never reaches an upload Location on another host; a
 *   307 on an upload is followed; a channel/index URL with `user:token@` works (Basic auth to that
 *   host only, not to a host it redirects to) and the token is in no output, file or image blob;
 * - digests: a manifest whose Docker-Content-Digest is not the hash of its bytes is refused (oci
 *   and docker build services).
 */
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SMALL_FLOW, createWorld, filesUnder, runCli, runCliMeasured, stackLines, type CliResult, type World } from '../support/cli.js';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy.js';
import { basicAuthorization, describeWith, getServices, itWith } from '../services.js';

const services = getServices();
const MANIFEST_ACCEPT = 'application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json';
/** Peak RSS a run of the CLI may reach while it is fed an endless stream (its baseline is ~100-200 MiB). */
const RSS_BOUND_MIB = 400;

const PIP_FLOW = `from metaflow import FlowSpec, conda, pypi, step


class PipFlow(FlowSpec):
    @conda(python="3.11", packages={"tinycli": ""})
    @step
    def start(self):
        self.next(self.end)

    @pypi(python="3.11", packages={"tinyhttp": ""})
    @step
    def end(self):
        pass


if __name__ == "__main__":
    PipFlow()
`;

function upstreamOf(url: string): string {
  return new URL(url).host;
}

describe('hostile channels and indexes (fault proxy in front of the fixture server; prebuilt lock)', () => {
  let world: World;
  let channel: FaultProxy;
  let cases = 0;

  /** A fresh flow dir and cache dir per case, so no repodata is cached from an earlier case. */
  async function lockVia(proxy: FaultProxy, extra: Record<string, string> = {}): Promise<{ result: CliResult & { peakRssMiB: number }; cache: string; flowDir: string }> {
    const flowDir = await world.flow('small.py', SMALL_FLOW);
    const cache = join(world.dir, `cache-lock-${++cases}`);
    const result = await runCliMeasured(['lock', 'small.py'], {
      cwd: flowDir,
      env: world.env({ METAFLOW_PREBUILT_CONDA_CHANNELS: `${proxy.url}/channels/example`, METAFLOW_PREBUILT_CACHE_DIR: cache, ...extra }),
    });
    return { result, cache, flowDir };
  }

  beforeAll(async () => {
    world = await createWorld('hostile-channel');
    channel = await startFaultProxy(upstreamOf(world.server.channelUrl!));
  }, 300_000);

  afterAll(async () => {
    await channel?.close();
    await world?.close();
  });

  it('an endless repodata.json stops at METAFLOW_PREBUILT_REPODATA_MAX_SIZE: exit 1 naming the channel, memory bounded', async () => {
    const remove = channel.fault({ method: 'GET', path: /\/repodata\.json$/, fault: { type: 'endless' } });
    try {
      const { result } = await lockVia(channel, { METAFLOW_PREBUILT_REPODATA_MAX_SIZE: '16' });
      expect(result.code, result.output).toBe(1);
      expect(result.stderr).toMatch(new RegExp(`GET ${channel.url}/channels/example/(linux-64|noarch)/repodata\\.json failed: repodata from ${channel.host} is larger than 16 MiB; refused`));
      expect(stackLines(result.output)).toEqual([]);
      expect(result.peakRssMiB).toBeLessThan(RSS_BOUND_MIB);
      console.log(`endless repodata: peak RSS ${result.peakRssMiB.toFixed(0)} MiB`);
    } finally {
      remove();
    }
  }, 120_000);

  it('a repodata.json that stalls mid-body fails at the idle timeout, and the CLI says what it waits on meanwhile', async () => {
    const remove = channel.fault({ method: 'GET', path: /\/repodata\.json$/, fault: { type: 'stall-body' } });
    try {
      const { result } = await lockVia(channel, { METAFLOW_PREBUILT_NETWORK_IDLE_TIMEOUT: '3' });
      expect(result.code, result.output).toBe(1);
      expect(result.stderr).toContain(`waiting for ${channel.host} (repodata) — `);
      expect(result.stderr).toContain(`repodata from ${channel.host}: no data for 3 s (METAFLOW_PREBUILT_NETWORK_IDLE_TIMEOUT)`);
      expect(stackLines(result.output)).toEqual([]);
    } finally {
      remove();
    }
  }, 120_000);

  it('a channel URL with user:token@ works as Basic auth to that host only: a redirect to another host gets none, and the token is printed nowhere', async () => {
    const token = 'PLANTED-channel-token-8d1e';
    const guarded = await startFaultProxy(upstreamOf(world.server.channelUrl!), { requireBasic: { username: 'ci', password: token } });
    const foreign = await startFaultProxy(upstreamOf(world.server.channelUrl!));
    try {
      // The guarded channel sends noarch's repodata to another host.
      guarded.fault({ method: 'GET', path: /\/noarch\/repodata\.json$/, fault: { type: 'redirect', status: 302, to: foreign.url } });
      const flowDir = await world.flow('small.py', SMALL_FLOW);
      const cache = join(world.dir, 'cache-redirect');
      const env = world.env({ METAFLOW_PREBUILT_CONDA_CHANNELS: `http://ci:${token}@${guarded.host}/channels/example`, METAFLOW_PREBUILT_CACHE_DIR: cache, DEBUG: 'prebuilt:*' });
      const result = await runCli(['lock', 'small.py', '--verbose'], { cwd: flowDir, env });
      expect(result.code, result.output).toBe(0);
      expect(guarded.requests.filter((r) => r.status === 401)).toEqual([]);
      expect(guarded.requests.some((r) => r.path.endsWith('/linux-64/repodata.json') && r.authorization === basicAuthorization('ci', token))).toBe(true);
      expect(foreign.requests.map((r) => r.path)).toContain('/channels/example/noarch/repodata.json');
      expect(foreign.requests.filter((r) => r.authorization !== undefined)).toEqual([]);
      const secrets = [token, Buffer.from(`ci:${token}`).toString('base64')];
      for (const secret of secrets) expect(result.output).not.toContain(secret);
      expect(result.stderr).toContain('(another origin: no credentials)');
      for (const file of [...(await filesUnder(cache)), ...(await filesUnder(flowDir))]) {
        const text = (await readFile(file)).toString('latin1');
        for (const secret of secrets) expect(text.includes(secret), file).toBe(false);
      }
    } finally {
      await guarded.close();
      await foreign.close();
    }
  }, 180_000);
});

describeWith(['registries', 'baseImage'], 'hostile registries and channels during prebuilt build (fault proxies on 127.0.0.1)', () => {
  let world: World;
  let registry: FaultProxy;
  let foreign: FaultProxy;
  let channel: FaultProxy;
  let flowDir: string;
  let run = 0;
  const basic = () => services.registries!.basic;
  const namespace = (): string => `reliability/hostile-${process.pid}-${Date.now()}-${++run}`;

  function env(ns: string, extra: Record<string, string> = {}): Record<string, string> {
    return world.env({
      METAFLOW_PREBUILT_CONDA_CHANNELS: `${channel.url}/channels/example`,
      METAFLOW_PREBUILT_IMAGE_REGISTRY: 'local',
      METAFLOW_PREBUILT_LOCAL_REGISTRY: registry.host,
      METAFLOW_PREBUILT_LOCAL_REGISTRY_USERNAME: basic().username,
      METAFLOW_PREBUILT_LOCAL_REGISTRY_PASSWORD: basic().password,
      METAFLOW_PREBUILT_BASE_IMAGE: services.baseImage!.ref,
      METAFLOW_PREBUILT_IMAGE_NAMESPACE: ns,
      METAFLOW_PREBUILT_BUILD_SERVICE: 'oci',
      ...(services.dockerHost ? { DOCKER_HOST: services.dockerHost } : {}),
      ...extra,
    });
  }

  const build = (ns: string, extra: Record<string, string> = {}) => runCliMeasured(['build', 'small.py'], { cwd: flowDir, env: env(ns, extra) });
  const manifests = (ns: string): RegExp => new RegExp(`^/v2/${ns}/manifests/env-`);

  beforeAll(async () => {
    world = await createWorld('hostile-registry');
    registry = await startFaultProxy(basic().host);
    foreign = await startFaultProxy(basic().host);
    channel = await startFaultProxy(upstreamOf(world.server.channelUrl!));
    flowDir = await world.flow('small.py', SMALL_FLOW);
    const locked = await runCli(['lock', 'small.py'], { cwd: flowDir, env: env('unused') });
    expect(locked.code, locked.output).toBe(0);
  }, 300_000);

  afterAll(async () => {
    await registry?.close();
    await foreign?.close();
    await channel?.close();
    await world?.close();
  });

  it('oci: an upload Location on another host gets no Authorization; the push fails (exit 1) saying why', async () => {
    const ns = namespace();
    foreign.clearRequests();
    const remove = registry.fault({ method: 'POST', path: new RegExp(`^/v2/${ns}/blobs/uploads/$`), fault: { type: 'location', to: foreign.url } });
    try {
      const result = await build(ns);
      expect(result.code, result.output).toBe(1);
      expect(result.stderr).toContain(`sent the blob upload to ${foreign.host}, which asks for credentials; prebuilt sends the credentials of ${registry.host} to its own host only`);
      expect(foreign.requests.length).toBeGreaterThan(0);
      expect(foreign.requests.filter((r) => r.authorization !== undefined)).toEqual([]);
      expect(registry.requests.some((r) => r.authorization !== undefined)).toBe(true);
      expect(stackLines(result.output)).toEqual([]);
    } finally {
      remove();
    }
  }, 600_000);

  it('oci: a 307 on a blob upload PUT is followed, the body re-sent, and the build succeeds', async () => {
    const ns = namespace();
    registry.clearRequests();
    registry.fault({ method: 'PUT', path: new RegExp(`^/v2/${ns}/blobs/uploads/`), fault: { type: 'redirect', status: 307, to: registry.url }, times: 1 });
    const result = await build(ns);
    expect(result.code, result.output).toBe(0);
    const puts = registry.requests.filter((r) => r.method === 'PUT' && r.path.includes(`/v2/${ns}/blobs/uploads/`));
    expect(puts[0]).toMatchObject({ status: 307, fault: 'redirect' });
    expect(puts[1]!.status).toBe(201);
    expect(puts[1]!.path).toBe(puts[0]!.path);
  }, 600_000);

  for (const service of ['oci', 'docker'] as const) {
    const title = `${service}: a manifest whose Docker-Content-Digest is not its bytes' hash is refused (exit 1), no digest is taken on the registry's word`;
    itWith(service === 'docker' ? ['docker'] : [], title, async () => {
      const ns = namespace();
      const lie = `sha256:${'0'.repeat(64)}`;
      // The existence check's HEAD names the lying digest (the manifest cache has nothing under it), then the GET's header lies.
      const removeHead = registry.fault({ method: 'HEAD', path: manifests(ns), fault: { type: 'header', name: 'docker-content-digest', value: lie } });
      const remove = registry.fault({ method: 'GET', path: manifests(ns), fault: { type: 'header', name: 'docker-content-digest', value: lie } });
      try {
        const result = await build(ns, { METAFLOW_PREBUILT_BUILD_SERVICE: service });
        expect(result.code, result.output).toBe(1);
        expect(result.stderr).toContain(`registry ${registry.host} sent manifest ${registry.host}/${ns}:env-`);
        expect(result.stderr).toContain(`with the digest header ${lie}, but its bytes hash to sha256:`);
        expect(result.stdout).not.toContain(lie);
        expect(stackLines(result.output)).toEqual([]);
      } finally {
        removeHead();
        remove();
      }
    }, 600_000);
  }

  /** A namespace whose image is pushed already, and an env with an empty cache directory: the existence check's HEAD finds it, and the manifest cache lacks it, so it is read by GET. */
  async function pushedUncached(): Promise<{ ns: string; uncached: () => Record<string, string> }> {
    const ns = namespace();
    const pushed = await build(ns);
    expect(pushed.code, pushed.output).toBe(0);
    let fresh = 0;
    return { ns, uncached: () => ({ METAFLOW_PREBUILT_CACHE_DIR: join(world.dir, `uncached-${run}-${++fresh}`) }) };
  }

  it('an endless manifest stops at 4 MiB and an endless error body after its first 64 KiB: exit 1, memory bounded', async () => {
    const { ns, uncached } = await pushedUncached();
    const remove = registry.fault({ method: 'GET', path: manifests(ns), fault: { type: 'endless' } });
    let result: Awaited<ReturnType<typeof build>>;
    try {
      result = await build(ns, uncached());
    } finally {
      remove();
    }
    expect(result.code, result.output).toBe(1);
    expect(result.stderr).toContain(`manifest from ${registry.host} is larger than 4 MiB; refused`);
    expect(result.peakRssMiB).toBeLessThan(RSS_BOUND_MIB);
    const remove2 = registry.fault({ method: 'GET', path: manifests(ns), fault: { type: 'endless', status: 500 } });
    let failing: Awaited<ReturnType<typeof build>>;
    try {
      failing = await build(ns, uncached());
    } finally {
      remove2();
    }
    expect(failing.code, failing.output).toBe(1);
    expect(failing.stderr).toContain('500 Internal Server Error');
    expect(failing.peakRssMiB).toBeLessThan(RSS_BOUND_MIB);
    console.log(`endless manifest: peak RSS ${result.peakRssMiB.toFixed(0)} MiB; endless error body: ${failing.peakRssMiB.toFixed(0)} MiB`);
  }, 600_000);

  it('a registry that stalls fails at the idle timeout naming the host and what it read; meanwhile the CLI says what it waits on', async () => {
    const ns = namespace();
    // The existence check's manifest HEAD stalls.
    const remove = registry.fault({ method: 'HEAD', path: manifests(ns), fault: { type: 'stall', ms: 120_000 } });
    try {
      const result = await build(ns, { METAFLOW_PREBUILT_NETWORK_IDLE_TIMEOUT: '2' });
      expect(result.code, result.output).toBe(1);
      expect(result.stderr).toMatch(new RegExp(`waiting for ${registry.host.replace(/\./g, '\\.')} \\(manifest check\\) — \\d+ s`));
      expect(result.stderr).toContain(`manifest check from ${registry.host}: no data for 2 s (METAFLOW_PREBUILT_NETWORK_IDLE_TIMEOUT)`);
      expect(stackLines(result.output)).toEqual([]);
    } finally {
      remove();
    }
  }, 600_000);

  it('plan, too, says that it locks and what it waits on while the registry stalls (it was silent until the timeout)', async () => {
    const ns = namespace();
    // The existence check's manifest HEAD stalls.
    const remove = registry.fault({ method: 'HEAD', path: manifests(ns), fault: { type: 'stall', ms: 120_000 } });
    try {
      const result = await runCli(['plan', 'small.py'], { cwd: flowDir, env: env(ns, { METAFLOW_PREBUILT_NETWORK_IDLE_TIMEOUT: '2' }) });
      expect(result.code, result.output).toBe(1);
      expect(result.stderr).toContain('reading the flow and locking its envs…\n');
      expect(result.stderr).toMatch(new RegExp(`waiting for ${registry.host.replace(/\./g, '\\.')} \\(manifest check\\) — \\d+ s`));
      expect(result.stderr).toContain(`manifest check from ${registry.host}: no data for 2 s (METAFLOW_PREBUILT_NETWORK_IDLE_TIMEOUT)`);
      expect(stackLines(result.output)).toEqual([]);
    } finally {
      remove();
    }
  }, 300_000);

  it('an endless package download stops at the locked size: exit 1 naming the package, nothing cached, memory bounded', async () => {
    const ns = namespace();
    const remove = channel.fault({ method: 'GET', path: /\.(conda|tar\.bz2)$/, fault: { type: 'endless' } });
    // A cache of its own: the earlier builds have the genuine files cached.
    const cache = join(world.dir, 'cache-endless-download');
    let result: Awaited<ReturnType<typeof build>>;
    try {
      result = await build(ns, { METAFLOW_PREBUILT_CACHE_DIR: cache });
    } finally {
      remove();
    }
    expect(result.code, result.output).toBe(1);
    expect(result.stderr).toMatch(/\S+\.(conda|tar\.bz2) \(http:\/\/[^)]+\) is larger than its locked size of \d+ bytes; the download was stopped and discarded/);
    expect(result.peakRssMiB).toBeLessThan(RSS_BOUND_MIB);
    const cached = (await filesUnder(join(cache, 'pkgs'))).filter((f) => !/\.(lock|partial)$/.test(f));
    expect(cached).toEqual([]);
    console.log(`endless package download: peak RSS ${result.peakRssMiB.toFixed(0)} MiB`);
  }, 600_000);

  it('channel and index URLs with user:token@ work (lock and build), and the token is in no output, file or image blob', async () => {
    const token = 'PLANTED-index-token-5f2a';
    const guarded = await startFaultProxy(upstreamOf(world.server.channelUrl!), { requireBasic: { username: 'ci', password: token } });
    try {
      const dir = await world.flow('pip.py', PIP_FLOW);
      const cache = join(world.dir, 'cache-credentials');
      await mkdir(cache, { recursive: true });
      const ns = namespace();
      const base = new URL(world.server.channelUrl!);
      const withToken = (path: string): string => `http://ci:${token}@${guarded.host}${path}`;
      const credentialEnv = (extra: Record<string, string> = {}) =>
        env(ns, {
          METAFLOW_PREBUILT_CONDA_CHANNELS: withToken(base.pathname),
          METAFLOW_PREBUILT_PYPI_INDEX_URL: withToken(new URL(world.server.indexUrl!).pathname),
          METAFLOW_PREBUILT_CACHE_DIR: cache,
          ...extra,
        });
      const runs: { name: string; result: CliResult }[] = [];
      runs.push({ name: 'lock --verbose DEBUG', result: await runCli(['lock', 'pip.py', '--verbose'], { cwd: dir, env: credentialEnv({ DEBUG: 'prebuilt:*' }) }) });
      runs.push({ name: 'build --verbose DEBUG', result: await runCli(['build', 'pip.py', '--verbose'], { cwd: dir, env: credentialEnv({ DEBUG: 'prebuilt:*' }) }) });
      runs.push({ name: 'build --json', result: await runCli(['build', 'pip.py', '--json'], { cwd: dir, env: credentialEnv() }) });
      for (const { name, result } of runs) expect(result.code, `${name}\n${result.output}`).toBe(0);
      // Every read went to the guarded host with the credentials: repodata, the index, the package files.
      expect(guarded.requests.filter((r) => r.status === 401)).toEqual([]);
      const paths = guarded.requests.map((r) => r.path);
      expect(paths.some((p) => p.endsWith('repodata.json'))).toBe(true);
      expect(paths.some((p) => p.includes('/pypi/'))).toBe(true);
      expect(paths.some((p) => /\.(conda|tar\.bz2)$/.test(p))).toBe(true);
      expect(paths.some((p) => p.endsWith('.whl'))).toBe(true);

      const secrets = [token, Buffer.from(`ci:${token}`).toString('base64')];
      const leaks = (data: string | Buffer): string[] => secrets.filter((s) => (typeof data === 'string' ? data : data.toString('latin1')).includes(s));
      for (const { name, result } of runs) expect(leaks(result.output), name).toEqual([]);
      const lockText = await readFile(join(dir, 'pip.prebuilt.lock'), 'utf8');
      expect(lockText).toContain(`http://${guarded.host}/`);
      const files = [...(await filesUnder(cache)), ...(await filesUnder(join(dir, '.prebuilt'))), join(dir, 'pip.prebuilt.lock')];
      expect(files.some((f) => f.includes('solves'))).toBe(true);
      for (const file of files) expect(leaks(await readFile(file)), file).toEqual([]);

      // The pushed images: manifest, config and every layer.
      const auth = { authorization: basicAuthorization(basic().username, basic().password) };
      const map = JSON.parse(runs[2]!.result.stdout) as { images: Record<string, { image: string }> };
      for (const { image } of Object.values(map.images)) {
        const repo = image.slice(image.indexOf('/') + 1, image.lastIndexOf(':'));
        const tag = image.slice(image.lastIndexOf(':') + 1);
        const manifestRes = await fetch(`http://${basic().host}/v2/${repo}/manifests/${tag}`, { headers: { ...auth, accept: MANIFEST_ACCEPT } });
        expect(manifestRes.status).toBe(200);
        const manifestBytes = Buffer.from(await manifestRes.arrayBuffer());
        expect(leaks(manifestBytes)).toEqual([]);
        const manifest = JSON.parse(manifestBytes.toString('utf8')) as { config: { digest: string }; layers: { digest: string; mediaType: string }[] };
        for (const { digest, mediaType } of [{ digest: manifest.config.digest, mediaType: 'config' }, ...manifest.layers]) {
          const blob = Buffer.from(await (await fetch(`http://${basic().host}/v2/${repo}/blobs/${digest}`, { headers: auth })).arrayBuffer());
          expect(leaks(mediaType.endsWith('gzip') ? gunzipSync(blob) : blob), `${image} ${digest}`).toEqual([]);
        }
      }
    } finally {
      await guarded.close();
    }
  }, 900_000);
});
