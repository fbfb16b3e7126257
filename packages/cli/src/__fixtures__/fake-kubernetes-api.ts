// A FAKE Kubernetes API server, for tests: an in-memory object store behind the real wire protocol
// that @kubernetes/client-node speaks (JSON over HTTP, `Status` errors, resourceVersion checks).
// It serves any namespaced resource path — core (`/api/v1/namespaces/NS/secrets/NAME`) and grouped
// (`/apis/apps/v1/namespaces/NS/daemonsets`, `/apis/argoproj.io/v1alpha1/namespaces/NS/workflows`) —
// with list (labelSelector `k=v[,k=v]`, chunked by `limit`/`continue`), get, create (409 when it exists), replace (409 on a stale
// resourceVersion), JSON merge patch, and delete. It runs no controller: a test that needs one (a
// DaemonSet becoming ready) reacts to `onChange` and writes the status with `put`.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { writeFile } from 'node:fs/promises';

export type KubeObject = Record<string, unknown> & { metadata?: Record<string, unknown> };

export interface FakeKubernetesApiOptions {
  /** The bearer token the fake accepts (default `fake-token`); `forbidden-token` always gets 403. */
  token?: string;
  /** Namespaces that exist (default `default`); a request into another one is 404. */
  namespaces?: string[];
}

/** A change the fake made: `created`, `replaced` (PUT or PATCH) or `deleted`. */
export interface FakeKubernetesChange {
  type: 'created' | 'replaced' | 'deleted';
  /** The resource path without the name, e.g. `/apis/apps/v1/namespaces/metaflow/daemonsets`. */
  collection: string;
  object: KubeObject;
}

const PATH = /^\/(api\/v1|apis\/[^/]+\/[^/]+)\/namespaces\/([^/]+)\/([^/]+)(?:\/([^/]+))?(?:\/(status))?$/;

export class FakeKubernetesApi {
  /** `METHOD path?query` of every request, in order. */
  readonly requests: string[] = [];
  /** Called after every change the API made (not after `put`). */
  onChange: ((change: FakeKubernetesChange) => void) | undefined;

  readonly #server: Server;
  readonly #token: string;
  readonly #namespaces: Set<string>;
  /** collection path → name → object */
  readonly #store = new Map<string, Map<string, KubeObject>>();
  #version = 1000;

  private constructor(options: FakeKubernetesApiOptions) {
    this.#token = options.token ?? 'fake-token';
    this.#namespaces = new Set(options.namespaces ?? ['default']);
    this.#server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => this.#handle(req, res, Buffer.concat(chunks).toString('utf8')));
    });
  }

  static async start(options: FakeKubernetesApiOptions = {}): Promise<FakeKubernetesApi> {
    const fake = new FakeKubernetesApi(options);
    await new Promise<void>((resolve) => fake.#server.listen(0, '127.0.0.1', resolve));
    return fake;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  /** A kubeconfig (YAML is a superset of JSON) pointing at the fake, written to `file` for KUBECONFIG. */
  async writeKubeConfig(file: string, options: { namespace?: string; token?: string } = {}): Promise<string> {
    const config = {
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'fake', cluster: { server: this.url, 'insecure-skip-tls-verify': true } }],
      users: [{ name: 'fake-user', user: { token: options.token ?? this.#token } }],
      contexts: [{ name: 'fake', context: { cluster: 'fake', user: 'fake-user', namespace: options.namespace ?? 'default' } }],
      'current-context': 'fake',
    };
    await writeFile(file, JSON.stringify(config, null, 2));
    return file;
  }

  /** The objects of a collection (`/apis/apps/v1/namespaces/NS/daemonsets`). */
  list(collection: string): KubeObject[] {
    return [...(this.#store.get(collection)?.values() ?? [])];
  }

  get(collection: string, name: string): KubeObject | undefined {
    return this.#store.get(collection)?.get(name);
  }

  /** Stores an object as a controller would (bumps resourceVersion; no `onChange`). */
  put(collection: string, object: KubeObject): KubeObject {
    const name = String(object.metadata?.['name']);
    return this.#save(collection, name, object);
  }

  /** Forgets every object (and the request log). */
  clear(): void {
    this.#store.clear();
    this.requests.length = 0;
  }

  async stop(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #save(collection: string, name: string, object: KubeObject): KubeObject {
    const namespace = /\/namespaces\/([^/]+)\//.exec(`${collection}/`)?.[1];
    const stored: KubeObject = { ...object, metadata: { ...object.metadata, name, namespace, resourceVersion: String(++this.#version) } };
    let objects = this.#store.get(collection);
    if (!objects) this.#store.set(collection, (objects = new Map()));
    objects.set(name, stored);
    return stored;
  }

  #handle(req: IncomingMessage, res: ServerResponse, body: string): void {
    this.requests.push(`${req.method} ${req.url}`);
    const url = new URL(req.url ?? '/', 'http://fake');
    const auth = req.headers.authorization;
    if (auth === 'Bearer forbidden-token') return status(res, 403, 'Forbidden', `${url.pathname} is forbidden: User "fake" cannot access it`);
    if (auth !== `Bearer ${this.#token}`) return status(res, 401, 'Unauthorized', 'Unauthorized');
    const match = PATH.exec(url.pathname);
    if (!match) return status(res, 404, 'NotFound', 'the server could not find the requested resource');
    const [, group, namespace, resource, name, subresource] = match as unknown as [string, string, string, string, string | undefined, string | undefined];
    if (!this.#namespaces.has(namespace)) return status(res, 404, 'NotFound', `namespaces "${namespace}" not found`);
    const collection = `/${group}/namespaces/${namespace}/${resource}`;
    const objects = this.#store.get(collection);
    const current = name ? objects?.get(name) : undefined;
    const missing = (): void => status(res, 404, 'NotFound', `${resource} "${name}" not found`);
    const change = (type: FakeKubernetesChange['type'], object: KubeObject): void => this.onChange?.({ type, collection, object });

    if (req.method === 'GET' && !name) {
      const selector = url.searchParams.get('labelSelector');
      const all = [...(objects?.values() ?? [])].filter((object) => matchesSelector(object, selector));
      // Chunked lists: `limit` items from the offset a `continue` token carries.
      const limit = Number(url.searchParams.get('limit') ?? '0');
      const from = Number(url.searchParams.get('continue') ?? '0');
      const items = limit > 0 ? all.slice(from, from + limit) : all;
      const more = limit > 0 && from + limit < all.length;
      return json(res, 200, { apiVersion: 'v1', kind: 'List', metadata: { resourceVersion: String(this.#version), ...(more ? { continue: String(from + limit) } : {}) }, items });
    }
    if (req.method === 'GET') return current ? json(res, 200, current) : missing();
    if (req.method === 'DELETE' && name) {
      if (!current) return missing();
      objects!.delete(name);
      change('deleted', current);
      return json(res, 200, { kind: 'Status', apiVersion: 'v1', status: 'Success', details: { name, kind: resource } });
    }
    let incoming: KubeObject;
    try {
      incoming = JSON.parse(body) as KubeObject;
    } catch {
      return status(res, 400, 'BadRequest', 'the request body is not JSON');
    }
    if (req.method === 'POST' && !name) {
      const created = String(incoming.metadata?.['name'] ?? '');
      if (!created) return status(res, 422, 'Invalid', `${resource} has no metadata.name`);
      if (objects?.has(created)) return status(res, 409, 'AlreadyExists', `${resource} "${created}" already exists`);
      const stored = this.#save(collection, created, incoming);
      change('created', stored);
      return json(res, 201, stored);
    }
    if (req.method === 'PUT' && name) {
      if (!current) return missing();
      const version = incoming.metadata?.['resourceVersion'];
      if (version !== undefined && version !== current.metadata?.['resourceVersion']) {
        return status(res, 409, 'Conflict', 'the object has been modified; please apply your changes to the latest version and try again');
      }
      const next = subresource === 'status' ? { ...current, status: incoming['status'] } : incoming;
      const stored = this.#save(collection, name, next);
      change('replaced', stored);
      return json(res, 200, stored);
    }
    if (req.method === 'PATCH' && name) {
      if (!current) return missing();
      const stored = this.#save(collection, name, mergePatch(current, incoming) as KubeObject);
      change('replaced', stored);
      return json(res, 200, stored);
    }
    status(res, 405, 'MethodNotAllowed', `${req.method} is not allowed here`);
  }
}

function json(res: ServerResponse, code: number, body: unknown): void {
  res.writeHead(code, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

function status(res: ServerResponse, code: number, reason: string, message: string): void {
  json(res, code, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code });
}

function matchesSelector(object: KubeObject, selector: string | null): boolean {
  if (!selector) return true;
  const labels = (object.metadata?.['labels'] ?? {}) as Record<string, string>;
  return selector.split(',').every((term) => {
    const [key, value] = term.split('=') as [string, string | undefined];
    return value === undefined ? key in labels : labels[key] === value;
  });
}

/** RFC 7386 JSON merge patch. */
function mergePatch(target: unknown, patch: unknown): unknown {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return patch;
  const result: Record<string, unknown> = target && typeof target === 'object' && !Array.isArray(target) ? { ...(target as Record<string, unknown>) } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete result[key];
    else result[key] = mergePatch(result[key], value);
  }
  return result;
}
