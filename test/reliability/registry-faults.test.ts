/**
 * Registry faults: a fault-injecting proxy on 127.0.0.1 in front of the real test registry is the
 * registry of a full `prebuilt build` (existence checks, base-image lookups, and the Docker
 * daemon's pushes and base-image pulls all go through it). Transient faults (500, 503, 429 with
 * Retry-After, resets, a stall) are retried and the build succeeds; a permanent fault ends with
 * exit 1 and a message naming the registry and the last error; no tag points at a partial image.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SMALL_FLOW, createWorld, runCli, stackLines, type World } from '../support/cli.js';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy.js';
import { describeWith, getServices } from '../services.js';

const services = getServices();
const MANIFEST_ACCEPT = 'application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json';

describeWith(['docker', 'registries', 'baseImage'], 'registry faults during prebuilt build (fault proxy in front of the test registry)', () => {
  let world: World;
  let proxy: FaultProxy;
  let flowDir: string;
  let baseRepo: string;
  let baseTag: string;
  const upstream = (): string => services.registries!.plain.host;
  let run = 0;

  /** A build into a fresh namespace (the image is missing), through the proxy. */
  async function build(namespace: string, extra: Record<string, string> = {}) {
    return runCli(['build', 'small.py'], {
      cwd: flowDir,
      env: world.env({
        METAFLOW_PREBUILT_IMAGE_REGISTRY: 'local',
        METAFLOW_PREBUILT_LOCAL_REGISTRY: proxy.host,
        METAFLOW_PREBUILT_BASE_IMAGE: `${proxy.host}/${baseRepo}:${baseTag}`,
        METAFLOW_PREBUILT_IMAGE_NAMESPACE: namespace,
        METAFLOW_PREBUILT_BUILD_SERVICE: 'docker',
        DOCKER_HOST: services.dockerHost!,
        ...extra,
      }),
    });
  }

  const namespace = (): string => `reliability/faults-${process.pid}-${Date.now()}-${++run}`;

  /** The tags of a repository in the real registry (behind the proxy). */
  async function tags(repository: string): Promise<string[]> {
    const res = await fetch(`http://${upstream()}/v2/${repository}/tags/list`);
    if (res.status === 404) return [];
    return ((await res.json()) as { tags: string[] | null }).tags ?? [];
  }

  beforeAll(async () => {
    world = await createWorld('registry-faults');
    proxy = await startFaultProxy(upstream());
    const ref = services.baseImage!.ref;
    const path = ref.slice(ref.indexOf('/') + 1);
    baseRepo = path.slice(0, path.lastIndexOf(':'));
    baseTag = path.slice(path.lastIndexOf(':') + 1);
    flowDir = await world.flow('small.py', SMALL_FLOW);
    const locked = await runCli(['lock', 'small.py'], { cwd: flowDir, env: world.env() });
    expect(locked.code, locked.output).toBe(0);
  }, 300_000);

  afterAll(async () => {
    await proxy?.close();
    await world?.close();
  });

  it('transient faults on every kind of request are retried and the build succeeds', async () => {
    const ns = namespace();
    proxy.clearRequests();
    const base = `/v2/${baseRepo}/manifests/${baseTag}`;
    // Base-image lookup: 503, then 429 with Retry-After: 1, then a 2 s stall.
    proxy.fault({ method: 'HEAD', path: base, fault: { type: 'status', status: 503 }, times: 1 });
    proxy.fault({ method: 'HEAD', path: base, fault: { type: 'status', status: 429, retryAfter: 1 }, times: 1 });
    proxy.fault({ method: 'HEAD', path: base, fault: { type: 'stall', ms: 2000 }, times: 1 });
    // The check of the pushed env image (a HEAD, then a GET of the manifest the cache lacks, its digest hashed from the bytes): a reset, then a 500.
    const manifests = new RegExp(`^/v2/${ns}/manifests/env-`);
    proxy.fault({ method: 'GET', path: manifests, fault: { type: 'reset' }, times: 1 });
    proxy.fault({ method: 'GET', path: manifests, fault: { type: 'status', status: 500 }, times: 1 });
    // The daemon's push: a 500 on the first blob upload start and on the first manifest PUT.
    proxy.fault({ method: 'POST', path: new RegExp(`^/v2/${ns}/blobs/uploads/$`), fault: { type: 'status', status: 500 }, times: 1 });
    proxy.fault({ method: 'PUT', path: manifests, fault: { type: 'status', status: 500 }, times: 1 });

    const started = Date.now();
    const result = await build(ns);
    expect(result.code, result.output).toBe(0);
    expect(stackLines(result.output)).toEqual([]);
    // Every fault was hit, and each faulted request was followed by a successful one.
    const hit = proxy.faulted();
    expect(hit.map((r) => `${r.method} ${r.fault}`).sort()).toEqual(
      ['HEAD status', 'HEAD status', 'HEAD stall', 'GET reset', 'GET status', 'POST status', 'PUT status'].sort(),
    );
    // Retry-After was honoured (≥ 1 s) and the stall waited for (2 s).
    expect(Date.now() - started).toBeGreaterThan(3000);
    const puts = proxy.requests.filter((r) => r.method === 'PUT' && manifests.test(r.path));
    expect(puts.map((r) => r.status)).toEqual([500, 201]);
    // The image is in the registry, whole: its manifest and every blob are there.
    const [tag] = (await tags(ns)).filter((t) => t.startsWith('env-'));
    expect(tag).toBeDefined();
    const manifest = (await (await fetch(`http://${upstream()}/v2/${ns}/manifests/${tag}`, { headers: { accept: MANIFEST_ACCEPT } })).json()) as {
      config: { digest: string };
      layers: { digest: string }[];
    };
    for (const digest of [manifest.config.digest, ...manifest.layers.map((l) => l.digest)]) {
      const head = await fetch(`http://${upstream()}/v2/${ns}/blobs/${digest}`, { method: 'HEAD' });
      expect(head.status, digest).toBe(200);
    }
  }, 600_000);

  it('the oci build service (pushes through the registry client) retries transient faults on blob and manifest uploads', async () => {
    const ns = namespace();
    proxy.clearRequests();
    const manifests = new RegExp(`^/v2/${ns}/manifests/env-`);
    proxy.fault({ method: 'HEAD', path: new RegExp(`^/v2/${ns}/blobs/`), fault: { type: 'reset' }, times: 1 });
    proxy.fault({ method: 'POST', path: new RegExp(`^/v2/${ns}/blobs/uploads/$`), fault: { type: 'status', status: 503 }, times: 1 });
    proxy.fault({ method: 'PUT', path: new RegExp(`^/v2/${ns}/blobs/uploads/`), fault: { type: 'status', status: 502 }, times: 1 });
    proxy.fault({ method: 'PUT', path: manifests, fault: { type: 'status', status: 429, retryAfter: 1 }, times: 1 });
    const result = await build(ns, { METAFLOW_PREBUILT_BUILD_SERVICE: 'oci' });
    expect(result.code, result.output).toBe(0);
    expect(stackLines(result.output)).toEqual([]);
    expect(proxy.faulted().map((r) => `${r.method} ${r.fault}`).sort()).toEqual(['HEAD reset', 'POST status', 'PUT status', 'PUT status']);
    const puts = proxy.requests.filter((r) => r.method === 'PUT' && manifests.test(r.path));
    expect(puts.map((r) => r.status)).toEqual([429, 201]);
    expect((await tags(ns)).filter((t) => t.startsWith('env-'))).toHaveLength(1);
  }, 600_000);

  it('a no-op redeploy makes no manifest GET (Docker Hub counts each as a pull): HEADs only, the manifests kept by digest in the cache directory; a build that lost its cache GETs each once', async () => {
    const ns = namespace();
    const cache = (name: string) => ({ METAFLOW_PREBUILT_BUILD_SERVICE: 'oci', METAFLOW_PREBUILT_CACHE_DIR: join(world.dir, `${name}-${run}`) });
    const manifestGets = () => proxy.requests.filter((r) => r.method === 'GET' && r.path.includes('/manifests/'));
    const envHeads = () => proxy.requests.filter((r) => r.method === 'HEAD' && new RegExp(`^/v2/${ns}/manifests/env-`).test(r.path));
    const first = cache('noop-cache');
    proxy.clearRequests();
    const built = await build(ns, first);
    expect(built.code, built.output).toBe(0);
    // The oci service keeps what it puts: even the check after its push reads the manifest from the cache.
    expect(envHeads().map((r) => r.status)).toEqual([404, 200]);
    proxy.clearRequests();
    const noop = await build(ns, first);
    expect(noop.code, noop.output).toBe(0);
    expect(noop.stdout + noop.stderr).not.toMatch(/\bbuilt\b.*env-/);
    expect(manifestGets()).toEqual([]);
    expect(envHeads().map((r) => r.status)).toEqual([200]);
    // Another machine (or CI without the cache kept): one GET per manifest read, then HEADs only again.
    const other = cache('other-cache');
    proxy.clearRequests();
    expect((await build(ns, other)).code).toBe(0);
    expect(manifestGets().filter((r) => r.path.startsWith(`/v2/${ns}/manifests/env-`))).toHaveLength(1);
    proxy.clearRequests();
    expect((await build(ns, other)).code).toBe(0);
    expect(manifestGets()).toEqual([]);
  }, 600_000);

  it('a registry that keeps answering 503 ends the build with exit 1 naming the registry and the last error', async () => {
    const ns = namespace();
    // Every manifest request (the existence check's HEAD, a GET) answered 503.
    const remove = proxy.fault({ path: new RegExp(`^/v2/${ns}/manifests/`), fault: { type: 'status', status: 503 } });
    try {
      const result = await build(ns);
      expect(result.code, result.output).toBe(1);
      expect(result.stderr).toContain(proxy.host);
      expect(result.stderr).toMatch(/503 Service Unavailable/);
      expect(result.stderr).toMatch(/after \d+ attempts/);
      expect(stackLines(result.output)).toEqual([]);
    } finally {
      remove();
    }
  }, 600_000);

  it('a push whose manifest PUT keeps failing ends with exit 1, and no tag points at the partial image', async () => {
    const ns = namespace();
    const remove = proxy.fault({ method: 'PUT', path: new RegExp(`^/v2/${ns}/manifests/`), fault: { type: 'status', status: 500 } });
    try {
      const result = await build(ns);
      expect(result.code, result.output).toBe(1);
      expect(result.stderr).toContain(proxy.host);
      expect(result.stderr).toMatch(/500|Internal Server Error/);
      expect(stackLines(result.output)).toEqual([]);
      // The push was tried a bounded number of times (3), then given up.
      const puts = proxy.requests.filter((r) => r.method === 'PUT' && r.path.startsWith(`/v2/${ns}/manifests/`));
      expect(puts.length).toBe(3);
      // Blobs may have been uploaded, but no tag exists: nothing points at the partial image.
      expect(await tags(ns)).toEqual([]);
    } finally {
      remove();
    }
  }, 600_000);
  // A permanent fault on blob uploads is not run here: the daemon retries each layer upload 5 times
  // with growing delays (minutes) before the push fails; the manifest-PUT case above shows the end state.
});

describe('the fault proxy itself', () => {
  it('forwards, injects statuses with Retry-After, resets and stalls, and logs each request', async () => {
    const { createServer } = await import('node:http');
    const server = createServer((req, res) => res.end(`hello ${req.method} ${req.url}`));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    const port = (server.address() as { port: number }).port;
    const proxy = await startFaultProxy(`127.0.0.1:${port}`);
    try {
      proxy.fault({ path: '/a', fault: { type: 'status', status: 429, retryAfter: 7 }, times: 1 });
      proxy.fault({ path: '/b', fault: { type: 'reset' }, times: 1 });
      proxy.fault({ path: '/c', fault: { type: 'stall', ms: 300 }, times: 1 });
      const first = await fetch(`${proxy.url}/a`);
      expect(first.status).toBe(429);
      expect(first.headers.get('retry-after')).toBe('7');
      await first.arrayBuffer();
      expect(await (await fetch(`${proxy.url}/a`)).text()).toBe('hello GET /a');
      await expect(fetch(`${proxy.url}/b`)).rejects.toThrow();
      const t0 = Date.now();
      expect(await (await fetch(`${proxy.url}/c?x=1`)).text()).toBe('hello GET /c?x=1');
      expect(Date.now() - t0).toBeGreaterThanOrEqual(290);
      expect(proxy.requests.map((r) => [r.path, r.status, r.fault ?? null])).toEqual([
        ['/a', 429, 'status'],
        ['/a', 200, null],
        ['/b', 0, 'reset'],
        ['/c', 200, 'stall'],
      ]);
    } finally {
      await proxy.close();
      server.close();
    }
  });
});
