/**
 * An HTTP server on 127.0.0.1, inside this process, that the WASM solver reads repodata from.
 *
 * The solver (rattler in WASM) can only fetch over HTTP, has no disk cache, has no virtual
 * packages and aborts on `channel::pkg` specs. So it never talks to a channel directly: for each
 * channel it sees a *view* served here, whose repodata comes from {@link RepodataCache} (disk
 * cache, conditional requests, `file://` channels) — minus the packages that `channel::pkg`
 * specs pin to another channel. A synthetic channel carries the target's virtual packages
 * (`__glibc`, `__unix`, `__linux`, `__archspec`). Solved URLs are mapped back to the real channel.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { sha256Hex, type CondaPlatform } from '@prebuilt/core';
import type { RepodataCache } from './repodata-cache.js';

export interface VirtualPackages {
  /** glibc version of the target (METAFLOW_PREBUILT_GLIBC_VERSION, default 2.28). */
  glibc: string;
  /** Linux kernel version reported as `__linux`. */
  linux: string;
}

/** Name prefix of virtual packages: never real files, dropped from every solve result. */
export const VIRTUAL_PREFIX = '__';

function emptyRepodata(subdir: string): Buffer {
  return Buffer.from(JSON.stringify({ info: { subdir }, packages: {}, 'packages.conda': {}, repodata_version: 1 }));
}

/** Repodata of the virtual packages of a target platform. */
export function virtualRepodata(platform: CondaPlatform, subdir: string, v: VirtualPackages): Buffer {
  if (subdir !== platform) return emptyRepodata(subdir);
  const arch = platform === 'linux-aarch64' ? 'aarch64' : 'x86_64';
  const record = (name: string, version: string, build: string) => [
    `${name}-${version}-${build}.tar.bz2`,
    { name, version, build, build_number: 0, depends: [], subdir, size: 0, sha256: '0'.repeat(64), md5: '0'.repeat(32) },
  ];
  const packages = Object.fromEntries([
    record('__glibc', v.glibc, '0'),
    record('__unix', '0', '0'),
    record('__linux', v.linux, '0'),
    record('__archspec', '1', arch),
  ]);
  return Buffer.from(JSON.stringify({ info: { subdir }, packages, 'packages.conda': {}, repodata_version: 1 }));
}

/** Repodata without the packages whose name is in `exclude`. */
function filterRepodata(body: Buffer, exclude: ReadonlySet<string>): Buffer {
  const data = JSON.parse(body.toString('utf8')) as Record<string, unknown>;
  for (const key of ['packages', 'packages.conda']) {
    const group = data[key] as Record<string, { name?: string }> | undefined;
    if (!group) continue;
    for (const [file, record] of Object.entries(group)) {
      if (record.name !== undefined && exclude.has(record.name.toLowerCase())) delete group[file];
    }
  }
  return Buffer.from(JSON.stringify(data));
}

interface View {
  id: string;
  /** Real channel URL, or null for the virtual channel. */
  upstream: string | null;
  exclude: ReadonlySet<string>;
  platform: CondaPlatform;
  virtual: VirtualPackages | null;
}

export class ChannelServer {
  readonly #server: Server;
  readonly #cache: RepodataCache;
  readonly #views = new Map<string, View>();
  /** `<viewId>/<subdir>` → repodata served, prepared before each solve. */
  readonly #prepared = new Map<string, Promise<{ body: Buffer; found: boolean }>>();
  readonly base: string;

  private constructor(server: Server, cache: RepodataCache, base: string) {
    this.#server = server;
    this.#cache = cache;
    this.base = base;
  }

  static async start(cache: RepodataCache): Promise<ChannelServer> {
    let self: ChannelServer | undefined;
    const server = createServer((req, res) => {
      const match = /^\/v\/([0-9a-f]+)\/([a-z0-9-]+)\/repodata\.json$/.exec(req.url ?? '');
      const prepared = match && self ? self.#prepared.get(`${match[1]}/${match[2]}`) : undefined;
      if (!prepared || req.method !== 'GET') {
        res.writeHead(404).end();
        return;
      }
      prepared.then(
        ({ body }) => res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length }).end(body),
        () => res.writeHead(502).end(),
      );
    });
    server.keepAliveTimeout = 1000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    server.unref();
    const { port } = server.address() as AddressInfo;
    self = new ChannelServer(server, cache, `http://127.0.0.1:${port}`);
    return self;
  }

  #view(view: Omit<View, 'id'>): string {
    const id = sha256Hex(JSON.stringify([view.upstream, [...view.exclude].sort(), view.platform, view.virtual])).slice(0, 24);
    if (!this.#views.has(id)) this.#views.set(id, { ...view, id });
    return id;
  }

  /** The id of a view from its URL (channelView's or virtualView's). */
  #viewId(viewUrl: string): string {
    return viewUrl.slice(`${this.base}/v/`.length);
  }

  /** The URL the solver uses for `channel`, minus the packages named in `exclude`. */
  channelView(channel: string, platform: CondaPlatform, exclude: ReadonlySet<string> = new Set()): string {
    return `${this.base}/v/${this.#view({ upstream: channel, exclude, platform, virtual: null })}`;
  }

  /** The URL of the virtual-packages channel of a target. */
  virtualView(platform: CondaPlatform, virtual: VirtualPackages): string {
    return `${this.base}/v/${this.#view({ upstream: null, exclude: new Set(), platform, virtual })}`;
  }

  /**
   * Loads the repodata of a view's subdirs (fetching or revalidating the real channel), so the
   * solver can read it. Returns the subdirs the real channel has (404 → treated as empty).
   */
  async prepare(viewUrl: string, subdirs: readonly string[]): Promise<string[]> {
    const view = this.#views.get(this.#viewId(viewUrl));
    if (!view) throw new Error(`unknown channel view ${viewUrl}`);
    const results = await Promise.all(
      subdirs.map(async (subdir) => {
        const key = `${view.id}/${subdir}`;
        let pending = this.#prepared.get(key);
        if (!pending) {
          pending = this.#load(view, subdir);
          this.#prepared.set(key, pending);
          pending.catch(() => this.#prepared.delete(key));
        }
        return (await pending).found ? subdir : null;
      }),
    );
    return results.filter((s): s is string => s !== null);
  }

  async #load(view: View, subdir: string): Promise<{ body: Buffer; found: boolean }> {
    if (view.upstream === null) return { body: virtualRepodata(view.platform, subdir, view.virtual!), found: true };
    const body = await this.#cache.get(view.upstream, subdir);
    if (body === null) return { body: emptyRepodata(subdir), found: false };
    return { body: view.exclude.size > 0 ? filterRepodata(body, view.exclude) : body, found: true };
  }

  /**
   * The versions of package `name` in the repodata already prepared for these views' subdirs, read
   * from the records' file names (`name-version-build.conda` / `.tar.bz2` keys) by a scan of the
   * bytes, not a parse (a repodata may be hundreds of MB; this is for an error message): unique,
   * newest first by a numeric-aware order, each a plain version string (anything else is skipped).
   */
  async versionsOf(viewUrls: readonly string[], subdirs: readonly string[], name: string): Promise<string[]> {
    const key = Buffer.from(`"${name}-`);
    const escaped = name.replace(/[.*+?^$()|[\]{}\\]/g, '\\$&');
    const record = new RegExp(`^"${escaped}-([A-Za-z0-9_.+!]{1,64})-[A-Za-z0-9_.+]{1,128}\\.(?:conda|tar\\.bz2)"\\s*:`);
    const versions = new Set<string>();
    for (const viewUrl of viewUrls) {
      const id = this.#viewId(viewUrl);
      for (const subdir of subdirs) {
        const body = await this.#prepared.get(`${id}/${subdir}`)?.then((r) => r.body, () => undefined);
        if (body === undefined) continue;
        for (let at = body.indexOf(key); at >= 0; at = body.indexOf(key, at + key.length)) {
          const version = record.exec(body.toString('latin1', at, at + key.length + 256))?.[1];
          if (version !== undefined) versions.add(version);
        }
      }
    }
    return [...versions].sort((a, b) => b.localeCompare(a, 'en', { numeric: true }));
  }

  /** The real URL of a solved package served through a view (undefined for the virtual channel). */
  upstreamUrl(solvedUrl: string): string | undefined {
    const prefix = `${this.base}/v/`;
    if (!solvedUrl.startsWith(prefix)) return solvedUrl; // the repodata named an absolute base_url
    const rest = solvedUrl.slice(prefix.length);
    const slash = rest.indexOf('/');
    const view = this.#views.get(rest.slice(0, slash));
    if (!view || view.upstream === null) return undefined;
    return `${view.upstream.replace(/\/+$/, '')}/${rest.slice(slash + 1)}`;
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.#server.close(() => resolve());
      this.#server.closeAllConnections();
    });
  }
}
