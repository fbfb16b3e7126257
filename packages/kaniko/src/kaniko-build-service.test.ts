import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { KubeConfig } from '@kubernetes/client-node';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CancelledError, ConfigError, EnvironmentError, InputError, Secret, type BuildRequest, type BuildResult } from '@prebuilt/core/backend';
import kanikoDefinition, { createKanikoBuildService, DEFAULT_KANIKO_IMAGE, type KanikoBuildServiceOptions } from './index.js';
import { FakeKubernetes, type FakeExecution } from './__testing__/fake-kubernetes.js';
import { fakeKanikoExecutor } from './__testing__/fake-kaniko-executor.js';
import { FakeGcs } from './__testing__/fake-gcs.js';
import { startFakeS3, type FakeS3, usePrivateTmpdir } from '@prebuilt/fixtures';

// A private temp directory for this file (its own process): see usePrivateTmpdir.
afterAll(usePrivateTmpdir('prebuilt-kaniko-tests-').remove);


const TAG = 'registry.example.com/team/metaflow-prebuilt:env-abc';
const CREDENTIALS = { registry: 'registry.example.com', username: 'pusher', password: new Secret('k4niko-pa55word'), source: 'the test' };

let kube: FakeKubernetes;
let s3: FakeS3;
let gcs: FakeGcs;
let s3Client: S3Client;
let contextDir: string;
const executions: { execution: FakeExecution; args: Record<string, string> }[] = [];

async function fetchContext(url: string): Promise<Buffer> {
  const m = /^(s3|gs):\/\/([^/]+)\/(.+)$/.exec(url)!;
  if (m[1] === 'gs') return gcs.objects.get(`${m[2]}/${m[3]}`)!;
  const object = await s3Client.send(new GetObjectCommand({ Bucket: m[2], Key: m[3] }));
  return Buffer.from(await object.Body!.transformToByteArray());
}

beforeAll(async () => {
  kube = await FakeKubernetes.start({ executor: fakeKanikoExecutor({ fetchContext, onExecution: (execution, args) => executions.push({ execution, args }) }) });
  s3 = await startFakeS3('contexts');
  s3Client = new S3Client(s3.clientConfig);
  gcs = await FakeGcs.start();
  contextDir = await mkdtemp(join(tmpdir(), 'prebuilt-kaniko-test-'));
  await writeFile(join(contextDir, 'env.txt'), 'an env\n');
});

afterAll(async () => {
  await kube?.stop();
  await s3?.stop();
  await gcs?.stop();
  s3Client?.destroy();
  await rm(contextDir, { recursive: true, force: true });
});

function kubeConfig(namespace = 'builds'): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions(kube.kubeConfigOptions(namespace));
  return kc;
}

function service(extra: KanikoBuildServiceOptions = {}) {
  return createKanikoBuildService({
    env: {},
    contextBucket: 's3://contexts/prebuilt/ctx',
    kubeConfig: kubeConfig(),
    s3: s3.clientConfig,
    gcs: { apiEndpoint: gcs.url, projectId: 'fake-project' },
    ...extra,
  });
}

function request(dockerfile: string, extra: Partial<BuildRequest> = {}): BuildRequest {
  return { dockerfile, contextDir, imageTag: TAG, platform: 'linux/amd64', ...extra };
}

async function s3Keys(): Promise<string[]> {
  const list = await s3Client.send(new ListObjectsV2Command({ Bucket: 'contexts' }));
  return (list.Contents ?? []).map((o) => o.Key!);
}

/** Nothing this service created may remain: jobs, pods, secrets, context objects, temp archives. */
async function expectNothingLeft(): Promise<void> {
  // Deletions run before buildAndPush returns; the fake applies them synchronously.
  const { jobs, pods, secrets } = kube.objects();
  expect(jobs.map((j) => j['metadata'].name), 'jobs left').toEqual([]);
  expect(pods.map((p) => p['metadata'].name), 'pods left').toEqual([]);
  expect(secrets.map((s) => s['metadata'].name), 'secrets left').toEqual([]);
  expect(await s3Keys(), 'S3 context objects left').toEqual([]);
  expect([...gcs.objects.keys()], 'GCS context objects left').toEqual([]);
  expect((await readdir(tmpdir())).filter((n) => n.startsWith('prebuilt-kaniko-context-')), 'temp archives left').toEqual([]);
}

afterEach(async () => {
  kube.failImagePull = false;
  kube.closeWatchesAfterMs = undefined;
  kube.unschedulableMs = undefined;
  kube.closeLogsAfterMs = undefined;
  await expectNothingLeft();
});

describe('kaniko build service settings', () => {
  it('is a build-service definition named kaniko', async () => {
    expect(kanikoDefinition).toMatchObject({ apiVersion: 1, kind: 'build-service', name: 'kaniko' });
    const created = await kanikoDefinition.create({}, { env: { METAFLOW_PREBUILT_KANIKO_CONTEXT_BUCKET: 'gs://bkt' }, cwd: process.cwd() });
    expect(created.name).toBe('kaniko');
  });

  it('needs the context bucket: ConfigError naming the env var and the option', () => {
    let error: unknown;
    try {
      createKanikoBuildService({ env: {} });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).hint).toMatch(/METAFLOW_PREBUILT_KANIKO_CONTEXT_BUCKET.*'contextBucket'/);
    expect(() => createKanikoBuildService({ env: { METAFLOW_PREBUILT_KANIKO_CONTEXT_BUCKET: 'https://bucket' } })).toThrow(/not a gs:\/\/ or s3:\/\//);
    // A bucket that is fine, a timeout that is not: the timeout is named, with its range.
    expect(() => createKanikoBuildService({ env: { METAFLOW_PREBUILT_KANIKO_CONTEXT_BUCKET: 's3://bkt', METAFLOW_PREBUILT_KANIKO_TIMEOUT: 'x' } })).toThrow(
      "METAFLOW_PREBUILT_KANIKO_TIMEOUT='x' is not a number of seconds above 0, at most 2147483 (24 days).",
    );
  });

  it('CPU and memory: Kubernetes quantities, else a ConfigError naming the setting and the form', () => {
    const env = { METAFLOW_PREBUILT_KANIKO_CONTEXT_BUCKET: 's3://bkt' };
    expect(() => createKanikoBuildService({ env: { ...env, METAFLOW_PREBUILT_KANIKO_CPU: '500m', METAFLOW_PREBUILT_KANIKO_MEMORY: '4Gi' } })).not.toThrow();
    expect(() => createKanikoBuildService({ env: { ...env, METAFLOW_PREBUILT_KANIKO_CPU: '1.5', METAFLOW_PREBUILT_KANIKO_MEMORY: '2e9' } })).not.toThrow();
    const refused = (extra: Record<string, string>): ConfigError => {
      try {
        createKanikoBuildService({ env: { ...env, ...extra } });
      } catch (e) {
        return e as ConfigError;
      }
      throw new Error('accepted');
    };
    const cpu = refused({ METAFLOW_PREBUILT_KANIKO_CPU: 'two' });
    expect(cpu).toBeInstanceOf(ConfigError);
    expect(cpu.message).toBe("METAFLOW_PREBUILT_KANIKO_CPU='two' is not a Kubernetes quantity of CPUs, e.g. 2, 1.5 or 500m (millicores).");
    expect(cpu.setting).toBe('METAFLOW_PREBUILT_KANIKO_CPU');
    expect(cpu.hint).toContain("(or the option 'cpu')");
    // Given as an option, the option is named: the variable was not set.
    try {
      createKanikoBuildService({ env, memory: '4GB' });
      throw new Error('accepted');
    } catch (e) {
      expect((e as ConfigError).message).toBe("The option 'memory' ('4GB') is not a Kubernetes quantity of bytes, e.g. 4Gi, 512Mi or 2G.");
    }
    for (const bad of ['4GB', '-1Gi', '4 Gi']) {
      const memory = refused({ METAFLOW_PREBUILT_KANIKO_MEMORY: bad });
      expect(memory.message).toBe(`METAFLOW_PREBUILT_KANIKO_MEMORY='${bad}' is not a Kubernetes quantity of bytes, e.g. 4Gi, 512Mi or 2G.`);
    }
  });

  it('check() before any work: refuses a kubeconfig without a current cluster; passes once the cluster is set and the storage SDK loads', async () => {
    const empty = createKanikoBuildService({ env: { METAFLOW_PREBUILT_KANIKO_CONTEXT_BUCKET: 's3://bkt' }, kubeConfig: new KubeConfig() });
    const error = await empty.check!().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(EnvironmentError);
    expect((error as Error).message).toContain('the kubeconfig has no current cluster');
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'c', server: 'http://127.0.0.1:1' }],
      users: [{ name: 'u' }],
      contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
      currentContext: 'x',
    });
    const configured = createKanikoBuildService({ env: { METAFLOW_PREBUILT_KANIKO_CONTEXT_BUCKET: 's3://bkt' }, kubeConfig: kc });
    await expect(configured.check!()).resolves.toBeUndefined();
    await configured.close!();
  });

  it('refuses several platforms in one image and credentials for another registry', async () => {
    await expect(service().buildAndPush(request('FROM base\n', { platform: 'linux/amd64,linux/arm64' }))).rejects.toBeInstanceOf(InputError);
    const error = await service()
      .buildAndPush(request('FROM base\n', { pushCredentials: { ...CREDENTIALS, registry: 'other.example.com' } }))
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).not.toContain('k4niko');
  });
});

describe('kaniko build service (FAKE Kubernetes API + s3rver FAKE S3 + FAKE GCS)', () => {
  it('S3 context: runs the executor Job with the right flags and mounted registry secret, streams the log, returns the digest, removes everything', async () => {
    const lines: string[] = [];
    let sawRunningLine: () => void = () => undefined;
    const running = new Promise<void>((resolve) => (sawRunningLine = resolve));
    // The executor waits until the test has received its first line: the log is streamed, not read at the end.
    const base = kube.executor;
    kube.executor = async (execution) => {
      execution.log('INFO[0000] fake: first line');
      await running;
      return base(execution);
    };
    try {
      const result = await service({ serviceAccount: 'builder', cpu: '2', memory: '4Gi', extraArgs: ['--cache=true'] }).buildAndPush(
        request('FROM base\nCOPY env.txt /opt/env.txt\n', {
          pushCredentials: CREDENTIALS,
          log: (line) => {
            lines.push(line);
            if (line.includes('fake: first line')) sawRunningLine();
          },
        }),
      );
      expect(result).toMatchObject({ ok: true, digest: expect.stringMatching(/^sha256:[a-f0-9]{64}$/) });
    } finally {
      kube.executor = base;
    }
    const { execution, args } = executions.at(-1)!;
    expect(args['context']).toMatch(/^s3:\/\/contexts\/prebuilt\/ctx\/prebuilt-kaniko-[a-f0-9]+\.tar\.gz$/);
    expect(args['dockerfile']).toMatch(/^\.prebuilt-[a-f0-9]+\.Dockerfile$/);
    expect(args['destination']).toBe(TAG);
    expect(args['custom-platform']).toBe('linux/amd64');
    expect(args['digest-file']).toBe('/dev/termination-log');
    expect(execution.container['args']).toContain('--cache=true');
    expect(execution.container['image']).toBe(DEFAULT_KANIKO_IMAGE);
    expect(execution.container['resources']).toEqual({ requests: { cpu: '2', memory: '4Gi' }, limits: { cpu: '2', memory: '4Gi' } });
    expect(execution.container['volumeMounts']).toEqual([{ name: 'docker-config', mountPath: '/kaniko/.docker', readOnly: true }]);
    expect(execution.pod['spec'].serviceAccountName).toBe('builder');
    expect(execution.pod['metadata'].namespace).toBe('builds');
    expect(execution.job['spec'].backoffLimit).toBe(0);
    const [secretName, secret] = Object.entries(execution.secrets)[0]!;
    expect(execution.pod['spec'].volumes[0].secret).toEqual({ secretName, items: [{ key: '.dockerconfigjson', path: 'config.json' }] });
    expect(JSON.parse(secret['.dockerconfigjson']!)).toEqual({
      auths: { 'registry.example.com': { auth: Buffer.from('pusher:k4niko-pa55word').toString('base64') } },
    });
    expect(kube.createdSecrets.at(-1)!['type']).toBe('kubernetes.io/dockerconfigjson');
    const jobDelete = kube.requests.filter((r) => r.method === 'DELETE' && r.path.includes('/jobs/')).at(-1)!;
    expect(jobDelete.query['propagationPolicy']).toBe('Background');
    expect(kube.requests.some((r) => r.query['watch'] === 'true' && r.path.endsWith('/pods'))).toBe(true);
    expect(kube.requests.some((r) => r.query['watch'] === 'true' && r.path.endsWith('/jobs'))).toBe(true);
    expect(lines.some((l) => l.startsWith('INFO[0004] Pushed registry.example.com/team/metaflow-prebuilt@sha256:'))).toBe(true);
    expect(lines.join('\n')).not.toContain('k4niko-pa55word');
  });

  it('GCS context (FAKE GCS JSON API): uploads to gs://, builds, removes the object; reports building then pushing', async () => {
    const phases: string[] = [];
    const result = await service({ contextBucket: 'gs://ctx-bucket' }).buildAndPush(request('FROM base\nCOPY env.txt /e\n', { onPhase: (p) => phases.push(p) }));
    expect(phases).toEqual(['building', 'pushing']);
    expect(result.ok).toBe(true);
    expect(executions.at(-1)!.args['context']).toMatch(/^gs:\/\/ctx-bucket\/prebuilt-kaniko-[a-f0-9]+\.tar\.gz$/);
    expect(gcs.requests.some((r) => r.method === 'POST' && r.path === '/upload/storage/v1/b/ctx-bucket/o')).toBe(true);
    expect(gcs.requests.some((r) => r.method === 'DELETE')).toBe(true);
  });

  it('watches closed by the (FAKE) API server are opened again, and an unschedulable pod is reported in the log', async () => {
    kube.closeWatchesAfterMs = 150;
    kube.unschedulableMs = 400;
    const lines: string[] = [];
    const watchesBefore = kube.requests.filter((r) => r.query['watch'] === 'true').length;
    const result = await service().buildAndPush(request('FROM base\nRUN sleep 2\n', { log: (l) => lines.push(l) }));
    expect(result.ok).toBe(true);
    const watches = kube.requests.filter((r) => r.query['watch'] === 'true').length - watchesBefore;
    expect(watches, 'pod and job watches were re-established').toBeGreaterThan(2);
    expect(lines.filter((l) => l.includes('is not scheduled yet: Unschedulable: 0/3 nodes are available'))).toHaveLength(1);
  });

  it('a log follow the (FAKE) kubelet closes early is followed again from the last timestamp: every line once, in order', async () => {
    kube.closeLogsAfterMs = 120;
    const base = kube.executor;
    kube.executor = async (execution) => {
      for (let i = 1; i <= 12; i++) {
        execution.log(`fake line ${i}`);
        await new Promise((r) => setTimeout(r, 40));
      }
      return base(execution);
    };
    const lines: string[] = [];
    try {
      const result = await service().buildAndPush(request('FROM base\n', { log: (l) => lines.push(l) }));
      expect(result.ok).toBe(true);
    } finally {
      kube.executor = base;
    }
    const numbered = lines.filter((l) => l.startsWith('fake line '));
    expect(numbered).toEqual(Array.from({ length: 12 }, (_, i) => `fake line ${i + 1}`));
    expect(lines.filter((l) => l.includes('Pushing image to'))).toHaveLength(1);
    const logRequests = kube.requests.filter((r) => r.path.endsWith('/log'));
    expect(logRequests.length, 'the log was opened again').toBeGreaterThan(2);
    expect(logRequests.at(-1)!.query['sinceTime']).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  });

  it('passes AWS_REGION to the executor for an s3:// context, and keys a Docker Hub login the way kaniko looks it up', async () => {
    await service().buildAndPush(
      request('FROM base\n', {
        imageTag: 'docker.io/team/metaflow-prebuilt:env-abc',
        pushCredentials: { registry: 'docker.io', username: 'team', password: new Secret('hub-t0ken'), source: 'the test' },
      }),
    );
    const { execution } = executions.at(-1)!;
    expect(execution.container['env']).toEqual([{ name: 'AWS_REGION', value: 'us-east-1' }]);
    const config = JSON.parse(Object.values(execution.secrets)[0]!['.dockerconfigjson']!) as { auths: Record<string, unknown> };
    expect(Object.keys(config.auths)).toEqual(['https://index.docker.io/v1/']);
  });

  it('without push credentials there is no secret and no /kaniko/.docker mount (ambient registry auth)', async () => {
    const before = kube.createdSecrets.length;
    const result = await service().buildAndPush(request('FROM base\n'));
    expect(result.ok).toBe(true);
    expect(kube.createdSecrets.length).toBe(before);
    expect(executions.at(-1)!.execution.container['volumeMounts']).toBeUndefined();
  });

  it('a failing build is { ok: false } with the executor error and the log tail; job, secret and context removed', async () => {
    const result = await service().buildAndPush(request('FROM base\nCOPY missing.txt /m\n', { pushCredentials: CREDENTIALS }));
    expect(result.ok).toBe(false);
    const failed = result as Extract<BuildResult, { ok: false }>;
    expect(failed.reason).toMatch(/exited with code 1 \(Error\): error building image: .*missing\.txt: no such file or directory/);
    expect(failed.logTail.at(-1)).toContain('no such file or directory');
  });

  it('an executor image that cannot be pulled fails fast with the reason (not at the timeout)', async () => {
    kube.failImagePull = true;
    const started = Date.now();
    const result = await service({ image: '127.0.0.1:1/nope:1' }).buildAndPush(request('FROM base\n', { pushCredentials: CREDENTIALS }));
    expect(result).toMatchObject({ ok: false, reason: expect.stringContaining('ImagePullBackOff') });
    expect((result as { reason: string }).reason).toContain('127.0.0.1:1/nope:1');
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('a build that outlives the timeout is stopped: { ok: false } naming the timeout; the pod is deleted with the job', async () => {
    const result = await service({ timeoutSeconds: 2 }).buildAndPush(request('FROM base\nRUN sleep 600\n', { pushCredentials: CREDENTIALS }));
    expect(result).toMatchObject({ ok: false, reason: expect.stringContaining('timeout of 2 s') });
    expect((result as { logTail: string[] }).logTail.some((l) => l.includes('Running: [/bin/sh -c sleep 600]'))).toBe(true);
  });

  it('cancelling a running build rejects with CancelledError and removes job, pod, secret and context', async () => {
    const controller = new AbortController();
    const error = await service()
      .buildAndPush(
        request('FROM base\nRUN sleep 600\n', {
          pushCredentials: CREDENTIALS,
          signal: controller.signal,
          log: (line) => line.includes('Running:') && controller.abort('SIGINT'),
        }),
      )
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CancelledError);
    expect((error as CancelledError).exitCode).toBe(130);
  });

  it('cancelling during the upload removes whatever was created', async () => {
    const controller = new AbortController();
    const promise = service().buildAndPush(request('FROM base\n', { pushCredentials: CREDENTIALS, signal: controller.signal }));
    setTimeout(() => controller.abort(), 5);
    await expect(promise).rejects.toBeInstanceOf(CancelledError);
  });
});
