/**
 * A FAKE Kubernetes API server (not Kubernetes): just enough of the core/v1 and batch/v1 REST API
 * for a build service — Jobs, Pods, pod logs (with follow), Secrets, and watches on jobs and pods —
 * served over HTTP on 127.0.0.1 so the real @kubernetes/client-node talks to it.
 *
 * A created Job gets one pod. The pod waits until the Secrets it mounts exist (as a kubelet does),
 * then "runs" the test's executor, which may log lines, succeed, fail or hang until the pod is
 * deleted. Deleting a Job with propagationPolicy Background/Foreground deletes its pods; without
 * one, the pods are orphaned and stay (as the batch API does for clients that don't ask).
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

export interface FakeExecution {
  /** The pod's first container, as the Job's template gave it. */
  container: Json;
  pod: Json;
  job: Json;
  /** Secrets mounted by the pod, by name, with their decoded data. */
  secrets: Record<string, Record<string, string>>;
  /** Appends a line to the container's log (followers see it at once). */
  log(line: string): void;
  /** Aborted when the pod is deleted. */
  signal: AbortSignal;
}

export interface FakeExecutorResult {
  exitCode: number;
  /** What the container wrote to its termination message path. */
  terminationMessage?: string;
}

/** What the pod's container does. Reject or hang as the scenario needs. */
export type FakeExecutor = (execution: FakeExecution) => Promise<FakeExecutorResult>;

export interface FakeRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  body?: unknown;
}

/** A request to a resource's collection (`name` undefined) or to one object of it. */
interface CrudRequest {
  res: ServerResponse;
  method: string;
  resource: 'secrets' | 'jobs' | 'pods';
  store: Map<string, Json>;
  ns: string;
  name: string | undefined;
  body: Json;
  query: Record<string, string>;
}

interface Watcher {
  resource: 'pods' | 'jobs';
  namespace: string;
  matches: (object: Json) => boolean;
  response: ServerResponse;
}

interface PodRuntime {
  /** Lines with the RFC 3339 (nanosecond) time they were written. */
  log: { stamp: string; line: string }[];
  followers: Set<{ res: ServerResponse; format: (entry: { stamp: string; line: string }) => string }>;
  ended: boolean;
  abort: AbortController;
}

export interface FakeKubernetesOptions {
  executor: FakeExecutor;
  /** The executor image cannot be pulled: the pod waits with ErrImagePull, then ImagePullBackOff. */
  failImagePull?: boolean;
}

export class FakeKubernetes {
  readonly requests: FakeRequest[] = [];
  executor: FakeExecutor;
  failImagePull: boolean;
  /** When set, every watch is closed by the server after this many ms (as API servers do after their timeout). */
  closeWatchesAfterMs: number | undefined;
  /** When set, pods stay unschedulable (PodScheduled=False) this many ms before they start. */
  unschedulableMs: number | undefined;
  /** When set, log follow streams are closed by the server after this many ms, container running or not. */
  closeLogsAfterMs: number | undefined;
  #stampCounter = 0;
  readonly #server: Server;
  readonly #jobs = new Map<string, Json>();
  readonly #pods = new Map<string, Json>();
  readonly #secrets = new Map<string, Json>();
  readonly #runtimes = new Map<string, PodRuntime>();
  readonly #watchers = new Set<Watcher>();
  #resourceVersion = 1;
  /** Every secret that ever existed, with its data, for assertions after deletion. */
  readonly createdSecrets: Json[] = [];
  readonly createdJobs: Json[] = [];

  private constructor(options: FakeKubernetesOptions) {
    this.executor = options.executor;
    this.failImagePull = options.failImagePull ?? false;
    this.closeWatchesAfterMs = undefined;
    this.unschedulableMs = undefined;
    this.closeLogsAfterMs = undefined;
    this.#server = createServer((req, res) => {
      void this.#handle(req, res).catch((error: unknown) => {
        if (!res.headersSent) this.#status(res, 500, 'InternalError', String(error));
      });
    });
  }

  static async start(options: FakeKubernetesOptions): Promise<FakeKubernetes> {
    const fake = new FakeKubernetes(options);
    await new Promise<void>((resolve) => fake.#server.listen(0, '127.0.0.1', resolve));
    return fake;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  /** Options for `KubeConfig.loadFromOptions` pointing at this fake, with `namespace` as the context's. */
  kubeConfigOptions(namespace = 'default'): Json {
    return {
      clusters: [{ name: 'fake', server: this.url, skipTLSVerify: true }],
      users: [{ name: 'fake-user', token: 'fake-token' }],
      contexts: [{ name: 'fake', cluster: 'fake', user: 'fake-user', namespace }],
      currentContext: 'fake',
    };
  }

  /** What exists now. */
  objects(): { jobs: Json[]; pods: Json[]; secrets: Json[] } {
    return { jobs: [...this.#jobs.values()], pods: [...this.#pods.values()], secrets: [...this.#secrets.values()] };
  }

  async stop(): Promise<void> {
    for (const runtime of this.#runtimes.values()) runtime.abort.abort();
    for (const watcher of this.#watchers) watcher.response.end();
    for (const runtime of this.#runtimes.values()) for (const follower of runtime.followers) follower.res.end();
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  // -------------------------------------------------------------------------------------------

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://fake');
    const query = Object.fromEntries(url.searchParams);
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    let body: unknown;
    if (text !== '') {
      try {
        body = JSON.parse(text);
      } catch {
        return this.#status(res, 400, 'BadRequest', 'body is not JSON');
      }
    }
    const method = req.method ?? 'GET';
    this.requests.push({ method, path: url.pathname, query, ...(body === undefined ? {} : { body }) });
    if (req.headers.authorization !== 'Bearer fake-token') return this.#status(res, 401, 'Unauthorized', 'Unauthorized');

    let m: RegExpExecArray | null;
    if ((m = /^\/api\/v1\/namespaces\/([^/]+)\/secrets(?:\/([^/]+))?$/.exec(url.pathname))) {
      return this.#crud({ res, method, resource: 'secrets', store: this.#secrets, ns: m[1]!, name: m[2], body: body as Json, query });
    }
    if ((m = /^\/apis\/batch\/v1\/namespaces\/([^/]+)\/jobs(?:\/([^/]+))?$/.exec(url.pathname))) {
      if (method === 'GET' && !m[2] && query['watch'] === 'true') return this.#watch(res, 'jobs', m[1]!, query);
      return this.#crud({ res, method, resource: 'jobs', store: this.#jobs, ns: m[1]!, name: m[2], body: body as Json, query });
    }
    if ((m = /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)\/log$/.exec(url.pathname))) {
      return this.#podLog(res, m[1]!, m[2]!, query);
    }
    if ((m = /^\/api\/v1\/namespaces\/([^/]+)\/pods(?:\/([^/]+))?$/.exec(url.pathname))) {
      if (method === 'GET' && !m[2] && query['watch'] === 'true') return this.#watch(res, 'pods', m[1]!, query);
      return this.#crud({ res, method, resource: 'pods', store: this.#pods, ns: m[1]!, name: m[2], body: body as Json, query });
    }
    this.#status(res, 404, 'NotFound', `the fake has no route for ${method} ${url.pathname}`);
  }

  #status(res: ServerResponse, code: number, reason: string, message: string): void {
    this.#send(res, code, { kind: 'Status', apiVersion: 'v1', status: 'Failure', message, reason, code });
  }

  #send(res: ServerResponse, code: number, body: unknown): void {
    res.writeHead(code, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  }

  #crud(request: CrudRequest): void {
    const { res, method, resource, store, ns, name, query } = request;
    if (method === 'POST' && !name) return this.#create(request);
    if (method === 'GET' && !name) {
      const items = [...store.values()].filter((o) => o['metadata']['namespace'] === ns && matchesLabels(o, query['labelSelector']));
      return this.#send(res, 200, { kind: 'List', apiVersion: 'v1', metadata: { resourceVersion: String(this.#resourceVersion) }, items });
    }
    if (!name) return this.#status(res, 405, 'MethodNotAllowed', `${method} on a collection`);
    const object = store.get(`${ns}/${name}`);
    if (!object) return this.#status(res, 404, 'NotFound', `${resource} "${name}" not found`);
    if (method === 'GET') return this.#send(res, 200, object);
    if (method === 'DELETE') return this.#remove(request, name, object);
    this.#status(res, 405, 'MethodNotAllowed', `${method} is not supported by the fake`);
  }

  #create({ res, resource, store, ns, body }: CrudRequest): void {
    const objectName = body?.['metadata']?.['name'] as string | undefined;
    if (!objectName) return this.#status(res, 422, 'Invalid', 'metadata.name is required');
    if (store.has(`${ns}/${objectName}`)) return this.#status(res, 409, 'AlreadyExists', `${resource} "${objectName}" already exists`);
    const object = structuredClone(body);
    object['metadata'] = { ...object['metadata'], namespace: ns, uid: randomBytes(8).toString('hex'), resourceVersion: String(this.#resourceVersion++), creationTimestamp: new Date().toISOString() };
    store.set(`${ns}/${objectName}`, object);
    if (resource === 'secrets') this.createdSecrets.push(structuredClone(object));
    if (resource === 'jobs') {
      object['status'] = {};
      this.createdJobs.push(structuredClone(object));
      this.#notify('jobs', 'ADDED', object);
      setTimeout(() => this.#startPod(object), 20);
    }
    this.#send(res, 201, object);
  }

  #remove({ res, resource, store, ns, body, query }: CrudRequest, name: string, object: Json): void {
    store.delete(`${ns}/${name}`);
    if (resource === 'jobs') {
      const policy = query['propagationPolicy'] ?? body?.['propagationPolicy'];
      this.#notify('jobs', 'DELETED', object);
      if (policy === 'Background' || policy === 'Foreground') this.#deleteJobPods(ns, name);
    }
    if (resource === 'pods') this.#deletePod(`${ns}/${name}`, object);
    this.#send(res, 200, { kind: 'Status', apiVersion: 'v1', status: 'Success', details: { name, kind: resource } });
  }

  #deleteJobPods(ns: string, job: string): void {
    for (const [podKey, pod] of this.#pods) {
      if (pod['metadata']['labels']?.['job-name'] === job && pod['metadata']['namespace'] === ns) this.#deletePod(podKey, pod);
    }
  }

  #deletePod(podKey: string, pod: Json): void {
    this.#pods.delete(podKey);
    const runtime = this.#runtimes.get(podKey);
    if (runtime) {
      runtime.abort.abort();
      this.#endLog(runtime);
    }
    this.#notify('pods', 'DELETED', pod);
  }

  #watch(res: ServerResponse, resource: 'pods' | 'jobs', namespace: string, query: Record<string, string>): void {
    const field = /^metadata\.name=(.+)$/.exec(query['fieldSelector'] ?? '');
    const watcher: Watcher = {
      resource,
      namespace,
      response: res,
      matches: (o) => matchesLabels(o, query['labelSelector']) && (!field || o['metadata']['name'] === field[1]),
    };
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    res.flushHeaders();
    this.#watchers.add(watcher);
    res.on('close', () => this.#watchers.delete(watcher));
    if (this.closeWatchesAfterMs !== undefined) {
      const timer = setTimeout(() => res.end(), this.closeWatchesAfterMs);
      res.on('close', () => clearTimeout(timer));
    }
  }

  #notify(resource: 'pods' | 'jobs', type: string, object: Json): void {
    for (const watcher of this.#watchers) {
      if (watcher.resource === resource && watcher.namespace === object['metadata']['namespace'] && watcher.matches(object)) {
        watcher.response.write(`${JSON.stringify({ type, object })}\n`);
      }
    }
  }

  #podLog(res: ServerResponse, ns: string, name: string, query: Record<string, string>): void {
    const runtime = this.#runtimes.get(`${ns}/${name}`);
    if (!runtime) return this.#status(res, 404, 'NotFound', `pods "${name}" not found`);
    const timestamps = query['timestamps'] === 'true';
    const since = query['sinceTime'] ? Date.parse(query['sinceTime']) : undefined;
    const format = (entry: { stamp: string; line: string }) => (timestamps ? `${entry.stamp} ${entry.line}\n` : `${entry.line}\n`);
    res.writeHead(200, { 'content-type': 'text/plain', 'transfer-encoding': 'chunked' });
    for (const entry of runtime.log) {
      if (since === undefined || Date.parse(entry.stamp.slice(0, 19) + 'Z') >= since) res.write(format(entry));
    }
    if (query['follow'] !== 'true' || runtime.ended) return void res.end();
    const follower = { res, format };
    runtime.followers.add(follower);
    res.on('close', () => runtime.followers.delete(follower));
    if (this.closeLogsAfterMs !== undefined) setTimeout(() => res.end(), this.closeLogsAfterMs);
  }

  #endLog(runtime: PodRuntime): void {
    runtime.ended = true;
    for (const follower of runtime.followers) follower.res.end();
    runtime.followers.clear();
  }

  /** An RFC 3339 time with nanoseconds, strictly increasing, as the kubelet writes with timestamps=true. */
  #stamp(): string {
    const iso = new Date().toISOString();
    this.#stampCounter = (this.#stampCounter + 1) % 1_000_000;
    return `${iso.slice(0, 23)}${String(this.#stampCounter).padStart(6, '0')}Z`;
  }

  #setPodStatus(podKey: string, status: Json): void {
    const pod = this.#pods.get(podKey);
    if (!pod) return;
    pod['status'] = status;
    pod['metadata']['resourceVersion'] = String(this.#resourceVersion++);
    this.#notify('pods', 'MODIFIED', pod);
  }

  #startPod(job: Json): void {
    const ns = job['metadata']['namespace'] as string;
    const jobName = job['metadata']['name'] as string;
    if (!this.#jobs.has(`${ns}/${jobName}`)) return;
    const template = job['spec']['template'];
    const podName = `${jobName}-${randomBytes(3).toString('hex').slice(0, 5)}`;
    const container = template['spec']['containers'][0];
    const pod: Json = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name: podName,
        namespace: ns,
        uid: randomBytes(8).toString('hex'),
        resourceVersion: String(this.#resourceVersion++),
        labels: { ...template['metadata']?.['labels'], 'job-name': jobName, 'batch.kubernetes.io/job-name': jobName },
        ownerReferences: [{ apiVersion: 'batch/v1', kind: 'Job', name: jobName, uid: job['metadata']['uid'], controller: true }],
      },
      spec: structuredClone(template['spec']),
      status: { phase: 'Pending', containerStatuses: [{ name: container['name'], state: { waiting: { reason: 'ContainerCreating' } } }] },
    };
    const podKey = `${ns}/${podName}`;
    this.#pods.set(podKey, pod);
    const runtime: PodRuntime = { log: [], followers: new Set(), ended: false, abort: new AbortController() };
    this.#runtimes.set(podKey, runtime);
    this.#notify('pods', 'ADDED', pod);
    void this.#runPod(job, pod, podKey, runtime);
  }

  async #runPod(job: Json, pod: Json, podKey: string, runtime: PodRuntime): Promise<void> {
    const ns = pod['metadata']['namespace'] as string;
    const container = pod['spec']['containers'][0];
    const signal = runtime.abort.signal;
    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
    // Like a kubelet: secret volumes are mounted once their Secrets exist.
    const secretNames = ((pod['spec']['volumes'] ?? []) as Json[]).map((v) => v['secret']?.['secretName']).filter(Boolean) as string[];
    while (!signal.aborted && secretNames.some((s) => !this.#secrets.has(`${ns}/${s}`))) await sleep(20);
    if (signal.aborted) return;
    if (this.unschedulableMs !== undefined) {
      this.#setPodStatus(podKey, {
        phase: 'Pending',
        conditions: [{ type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message: '0/3 nodes are available: 3 Insufficient memory.' }],
      });
      await sleep(this.unschedulableMs);
      if (signal.aborted) return;
    }
    if (this.failImagePull) {
      const image = container['image'];
      this.#setPodStatus(podKey, {
        phase: 'Pending',
        containerStatuses: [{ name: container['name'], state: { waiting: { reason: 'ErrImagePull', message: `failed to pull image "${image}": not found` } } }],
      });
      await sleep(50);
      this.#setPodStatus(podKey, {
        phase: 'Pending',
        containerStatuses: [{ name: container['name'], state: { waiting: { reason: 'ImagePullBackOff', message: `Back-off pulling image "${image}"` } } }],
      });
      return;
    }
    const secrets: Record<string, Record<string, string>> = {};
    for (const name of secretNames) {
      const data = (this.#secrets.get(`${ns}/${name}`)?.['data'] ?? {}) as Record<string, string>;
      secrets[name] = Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]));
    }
    this.#setPodStatus(podKey, { phase: 'Running', containerStatuses: [{ name: container['name'], state: { running: { startedAt: new Date().toISOString() } } }] });
    let result: FakeExecutorResult;
    try {
      result = await this.executor({
        container,
        pod,
        job,
        secrets,
        signal,
        log: (line) => {
          if (runtime.ended) return;
          const entry = { stamp: this.#stamp(), line };
          runtime.log.push(entry);
          for (const follower of runtime.followers) follower.res.write(follower.format(entry));
        },
      });
    } catch (error) {
      if (signal.aborted) return;
      runtime.log.push({ stamp: this.#stamp(), line: `fake executor crashed: ${String(error)}` });
      result = { exitCode: 1 };
    }
    if (signal.aborted) return;
    let message = result.terminationMessage ?? '';
    if (result.exitCode !== 0 && message === '' && container['terminationMessagePolicy'] === 'FallbackToLogsOnError') {
      message = runtime.log.slice(-80).map((e) => e.line).join('\n').slice(-2048);
    }
    this.#endLog(runtime);
    const succeeded = result.exitCode === 0;
    this.#setPodStatus(podKey, {
      phase: succeeded ? 'Succeeded' : 'Failed',
      containerStatuses: [
        { name: container['name'], state: { terminated: { exitCode: result.exitCode, reason: succeeded ? 'Completed' : 'Error', message } } },
      ],
    });
    const jobKey = `${ns}/${job['metadata']['name']}`;
    const current = this.#jobs.get(jobKey);
    if (current) {
      current['status'] = succeeded
        ? { succeeded: 1, conditions: [{ type: 'Complete', status: 'True' }] }
        : { failed: 1, conditions: [{ type: 'Failed', status: 'True', reason: 'BackoffLimitExceeded', message: 'Job has reached the specified backoff limit' }] };
      current['metadata']['resourceVersion'] = String(this.#resourceVersion++);
      this.#notify('jobs', 'MODIFIED', current);
    }
  }
}

function matchesLabels(object: Json, selector: string | undefined): boolean {
  if (!selector) return true;
  const labels = (object['metadata']?.['labels'] ?? {}) as Record<string, string>;
  return selector.split(',').every((term) => {
    const [k, v] = term.split('=');
    return labels[k!] === v;
  });
}
