import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { KubeConfig } from '@kubernetes/client-node';
import { AuthError, ConfigError, EnvironmentError, ExitCode, RegistryError, Secret, defineImageRegistry, parseImageRef, registerBackend, type RegistryCredentials } from '@prebuilt/core';
import { createLocalRegistry } from '@prebuilt/local';
import { createCliContext } from '../cli-context.js';
import { createProgram, main } from '../main.js';
import { loadKubernetesClient } from '../app/index.js';
import { FakeKubernetesApi, type KubeObject } from '../__fixtures__/fake-kubernetes-api.js';
import { applyPullSecret, dockerConfigJson, podPullHost, PULL_SECRET_TYPE } from '../app/pull-secret.js';
import { DEFAULT_WATCH_INTERVAL_MS, parseInterval } from './pull-secret.js';

const BIN = fileURLToPath(new URL('../../bin/prebuilt.js', import.meta.url));

type StoredSecret = KubeObject & { type?: string; data?: Record<string, string> };

const SECRETS = (namespace: string): string => `/api/v1/namespaces/${namespace}/secrets`;

function secretOf(fake: FakeKubernetesApi, key: string): StoredSecret | undefined {
  const [namespace, name] = key.split('/') as [string, string];
  return fake.get(SECRETS(namespace), name) as StoredSecret | undefined;
}

function kubeConfigFor(server: string, token: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'fake', server, skipTLSVerify: true }],
    users: [{ name: 'ci', token }],
    contexts: [{ name: 'fake', cluster: 'fake', user: 'ci' }],
    currentContext: 'fake',
  });
  return kc;
}

function decodeConfig(secret: StoredSecret | undefined): { auths: Record<string, { username: string; password: string; auth: string }> } {
  return JSON.parse(Buffer.from(secret!.data!['.dockerconfigjson']!, 'base64').toString('utf8'));
}

const credentials = (password: string, source = 'env TEST'): RegistryCredentials => ({ registry: '127.0.0.1:5000', username: 'robot', password: new Secret(password), source });

describe('pull secret content', () => {
  it('dockerConfigJson holds one auths entry (Docker Hub under its config key) with user, password and auth', () => {
    const config = JSON.parse(dockerConfigJson(credentials('pw-1')));
    expect(config).toEqual({ auths: { '127.0.0.1:5000': { username: 'robot', password: 'pw-1', auth: Buffer.from('robot:pw-1').toString('base64') } } });
    const hub = JSON.parse(dockerConfigJson({ ...credentials('pw-2'), registry: 'docker.io' }));
    expect(Object.keys(hub.auths)).toEqual(['https://index.docker.io/v1/']);
    expect(() => dockerConfigJson({ registry: 'x', identityToken: new Secret('t'), source: 'config' })).toThrow(ConfigError);
  });

  it('dockerConfigJson keys the entry by the host pods pull from when given, and only by it', () => {
    const config = JSON.parse(dockerConfigJson(credentials('pw-3'), 'registry.cluster.test:5000'));
    expect(Object.keys(config.auths)).toEqual(['registry.cluster.test:5000']);
    expect(config.auths['registry.cluster.test:5000']).toMatchObject({ username: 'robot', password: 'pw-3' });
  });

  it('podPullHost is the host of the pull tag when pods pull from another host than the push host, else undefined', () => {
    const local = (env: Record<string, string>) => createLocalRegistry({ env: { METAFLOW_PREBUILT_LOCAL_REGISTRY: '127.0.0.1:5000/team', ...env } });
    expect(podPullHost(local({ METAFLOW_PREBUILT_LOCAL_REGISTRY_PULL_HOST: 'registry.cluster.test:5000/team' }))).toBe('registry.cluster.test:5000');
    expect(podPullHost(local({ METAFLOW_PREBUILT_LOCAL_REGISTRY_PULL_HOST: 'host.minikube.internal:5000' }))).toBe('host.minikube.internal:5000');
    // The same host under another path: the push host's credentials are the pods' already.
    expect(podPullHost(local({ METAFLOW_PREBUILT_LOCAL_REGISTRY_PULL_HOST: '127.0.0.1:5000/mirror' }))).toBeUndefined();
    expect(podPullHost(local({}))).toBeUndefined();
    expect(podPullHost({ ...local({}), pullTag: undefined })).toBeUndefined();
  });

  it('parseInterval takes 30s / 4m / 1h and refuses anything else', () => {
    expect([parseInterval('30s'), parseInterval('4m'), parseInterval('1h')]).toEqual([30_000, 240_000, 3_600_000]);
    expect(() => parseInterval('0s')).toThrow(ConfigError);
    expect(() => parseInterval('5 minutes')).toThrow(/30s, 4m or 1h/);
  });

  it('--help shows the --interval default as the user types it (4m), which parses to the default', async () => {
    let out = '';
    const code = await main(['pull-secret', '--help'], { stdout: { write: (text: string) => ((out += text), true) }, stderr: { write: () => true } });
    expect(code).toBe(0);
    expect(out.replace(/\s+/g, ' ')).toContain('--interval <duration> refresh period of --watch, e.g. 30s, 4m, 1h (default: 4m)');
    expect(parseInterval('4m')).toBe(DEFAULT_WATCH_INTERVAL_MS);
  });
});

describe('the Kubernetes client, an optional peer dependency of the CLI', () => {
  it('loads the installed @kubernetes/client-node on use', async () => {
    expect(typeof (await loadKubernetesClient('pull-secret')).KubeConfig).toBe('function');
  });

  it('when it is not installed, an EnvironmentError (exit 2) says to install it beside prebuilt', async () => {
    const error = await loadKubernetesClient('pull-secret', undefined, '@prebuilt-absent/kubernetes-client').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(EnvironmentError);
    expect((error as EnvironmentError).exitCode).toBe(ExitCode.usage);
    expect((error as EnvironmentError).message).toContain('@prebuilt-absent/kubernetes-client, which is not installed');
    expect((error as EnvironmentError).hint).toContain('npm i -g @prebuilt-absent/kubernetes-client@~1.4');
  });
});

describe('applyPullSecret against a fake Kubernetes API server (real @kubernetes/client-node)', () => {
  let fake: FakeKubernetesApi;
  beforeAll(async () => {
    fake = await FakeKubernetesApi.start({ token: 'good-token', namespaces: ['metaflow', 'default'] });
  });
  afterAll(async () => {
    await fake.stop();
  });
  beforeEach(() => {
    fake.clear();
  });

  it('creates the secret, leaves it alone when unchanged, and updates it with new credentials', async () => {
    const kubeConfig = kubeConfigFor(fake.url, 'good-token');
    const created = await applyPullSecret({ kubeConfig, namespace: 'metaflow', name: 'prebuilt-pull', credentials: credentials('first-pw') });
    expect(created).toEqual({ namespace: 'metaflow', name: 'prebuilt-pull', action: 'created', registry: '127.0.0.1:5000', source: 'env TEST' });
    const stored = secretOf(fake, 'metaflow/prebuilt-pull');
    expect(stored?.type).toBe(PULL_SECRET_TYPE);
    expect(stored?.metadata?.labels).toEqual({ 'app.kubernetes.io/managed-by': 'prebuilt' });
    expect(decodeConfig(stored).auths['127.0.0.1:5000']).toMatchObject({ username: 'robot', password: 'first-pw' });
    expect(JSON.stringify(stored?.metadata)).not.toContain('first-pw');

    expect((await applyPullSecret({ kubeConfig, namespace: 'metaflow', name: 'prebuilt-pull', credentials: credentials('first-pw') })).action).toBe('unchanged');
    const updated = await applyPullSecret({ kubeConfig, namespace: 'metaflow', name: 'prebuilt-pull', credentials: credentials('second-pw') });
    expect(updated.action).toBe('updated');
    expect(decodeConfig(secretOf(fake, 'metaflow/prebuilt-pull')).auths['127.0.0.1:5000']!.password).toBe('second-pw');
  });

  it('refuses to overwrite a secret of another type', async () => {
    fake.put(SECRETS('metaflow'), { apiVersion: 'v1', kind: 'Secret', type: 'Opaque', metadata: { name: 'taken', namespace: 'metaflow', resourceVersion: '1' }, data: {} });
    const error = await applyPullSecret({ kubeConfig: kubeConfigFor(fake.url, 'good-token'), namespace: 'metaflow', name: 'taken', credentials: credentials('pw') }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toContain('Opaque');
    expect(secretOf(fake, 'metaflow/taken')?.type).toBe('Opaque');
  });

  it('a missing namespace is a ConfigError; a forbidden user is an AuthError saying which permission is needed', async () => {
    const missing = await applyPullSecret({ kubeConfig: kubeConfigFor(fake.url, 'good-token'), namespace: 'nope', name: 's', credentials: credentials('pw') }).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(ConfigError);
    expect((missing as Error).message).toContain('namespace nope does not exist');

    const forbidden = await applyPullSecret({ kubeConfig: kubeConfigFor(fake.url, 'forbidden-token'), namespace: 'metaflow', name: 's', credentials: credentials('secret-pw') }).catch((e: unknown) => e);
    expect(forbidden).toBeInstanceOf(AuthError);
    expect((forbidden as AuthError).hint).toContain('kubectl auth can-i update secrets -n metaflow');
    expect(`${(forbidden as Error).message} ${(forbidden as AuthError).hint}`).not.toContain('secret-pw');
  });

  it('bad names are ConfigErrors before anything is sent', async () => {
    const before = fake.requests.length;
    await expect(applyPullSecret({ kubeConfig: kubeConfigFor(fake.url, 'good-token'), namespace: 'Meta Flow', name: 's', credentials: credentials('pw') })).rejects.toThrow(ConfigError);
    await expect(applyPullSecret({ kubeConfig: kubeConfigFor(fake.url, 'good-token'), namespace: 'metaflow', name: 'Bad_Name', credentials: credentials('pw') })).rejects.toThrow(ConfigError);
    expect(fake.requests.length).toBe(before);
  });
});

describe('prebuilt pull-secret against a fake Kubernetes API server', () => {
  let fake: FakeKubernetesApi;
  let dir: string;
  let kubeconfigFile: string;
  let dockerConfig: string;
  let unregister: () => void;
  let tokenCounter = 0;

  const capture = () => {
    const out = { stdout: '', stderr: '' };
    return { out, stdout: { write: (t: string) => void (out.stdout += t) }, stderr: { write: (t: string) => void (out.stderr += t) } };
  };

  beforeAll(async () => {
    fake = await FakeKubernetesApi.start({ token: 'cli-token', namespaces: ['metaflow', 'default'] });
    dir = await mkdtemp(join(tmpdir(), 'prebuilt-pull-secret-'));
    kubeconfigFile = join(dir, 'kubeconfig');
    dockerConfig = join(dir, 'docker');
    await writeFile(
      kubeconfigFile,
      [
        'apiVersion: v1',
        'kind: Config',
        'clusters:',
        `- name: fake\n  cluster:\n    server: ${fake.url}\n    insecure-skip-tls-verify: true`,
        'users:',
        '- name: ci\n  user:\n    token: cli-token',
        'contexts:',
        '- name: fake\n  context:\n    cluster: fake\n    user: ci',
        'current-context: fake',
        '',
      ].join('\n'),
    );
    // A registry whose token changes on every call, like a short-lived cloud token.
    unregister = registerBackend(
      defineImageRegistry({
        name: 'rotating-test-registry',
        create: () => ({
          name: 'rotating-test-registry',
          imageTag: ({ envId }) => `127.0.0.1:5999/x:env-${envId}`,
          pushCredentials: async () => ({ registry: '127.0.0.1:5999', username: 'AWS', password: new Secret(`rotating-${++tokenCounter}`), source: 'test rotation' }),
          pullConfig: async () => ({}),
          imageExists: async () => ({ exists: false }),
          baseImageIdentity: async (ref) => ({ ref, digest: 'sha256:' + '0'.repeat(64), pinned: `${ref}@sha256:${'0'.repeat(64)}` }),
        }),
      }),
    );
  });
  afterAll(async () => {
    unregister?.();
    await fake.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('creates the secret from the default dockerhub registry\'s credentials (KUBECONFIG), printing no secret', async () => {
    const io = capture();
    const env = {
      KUBECONFIG: kubeconfigFile,
      DOCKER_CONFIG: dockerConfig,
      METAFLOW_PREBUILT_DOCKERHUB_USERNAME: 'acme-bot',
      METAFLOW_PREBUILT_DOCKERHUB_PASSWORD: 'dckr_pat_cli-secret',
    };
    const code = await main(['pull-secret', '--namespace', 'metaflow', '--name', 'hub-pull'], { env, stdout: io.stdout, stderr: io.stderr });
    expect(io.out.stderr).toBe('');
    expect(code).toBe(0);
    expect(io.out.stdout).toContain('created secret metaflow/hub-pull');
    expect(io.out.stdout).toContain('METAFLOW_PREBUILT_DOCKERHUB_USERNAME');
    expect(io.out.stdout).not.toContain('dckr_pat_cli-secret');
    expect(decodeConfig(secretOf(fake, 'metaflow/hub-pull')).auths['https://index.docker.io/v1/']).toMatchObject({ username: 'acme-bot', password: 'dckr_pat_cli-secret' });

    const json = capture();
    expect(await main(['pull-secret', '-n', 'metaflow', '--name', 'hub-pull', '--json'], { env, stdout: json.stdout, stderr: json.stderr })).toBe(0);
    const parsed = JSON.parse(json.out.stdout) as Record<string, unknown>;
    expect(parsed).toMatchObject({ ok: true, action: 'unchanged', namespace: 'metaflow', name: 'hub-pull', registry: 'docker.io', imageRegistry: 'dockerhub' });
    expect(json.out.stdout).not.toContain('dckr_pat_cli-secret');
  });

  it('--watch refreshes the secret every --interval until interrupted', async () => {
    const io = capture();
    const controller = new AbortController();
    const context = createCliContext(controller.signal, {
      env: { KUBECONFIG: kubeconfigFile, METAFLOW_PREBUILT_IMAGE_REGISTRY: 'rotating-test-registry' },
      stdout: io.stdout,
      stderr: io.stderr,
    });
    const running = (await createProgram(context)).parseAsync(['pull-secret', '-n', 'metaflow', '--name', 'rotating', '--watch', '--interval', '1s'], { from: 'user' }).then(
      () => undefined,
      (error: unknown) => error,
    );
    const deadline = Date.now() + 15_000;
    while ((io.out.stdout.match(/updated secret/g) ?? []).length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    controller.abort();
    expect(await running).toBeUndefined();
    // Stopped, not interrupted: main exits 0 (see the next test), after the one line.
    expect(context.stopsOnInterrupt).toBe(true);
    expect(io.out.stderr).toMatch(/watch stopped; secret metaflow\/rotating stays as last refreshed \(.+\)\n$/);
    expect(io.out.stdout).toMatch(/^created secret metaflow\/rotating/);
    expect((io.out.stdout.match(/updated secret metaflow\/rotating/g) ?? []).length).toBeGreaterThanOrEqual(2);
    const password = decodeConfig(secretOf(fake, 'metaflow/rotating')).auths['127.0.0.1:5999']!.password;
    expect(password).toBe(`rotating-${tokenCounter}`);
    expect(io.out.stdout + io.out.stderr).not.toContain('rotating-1');
  });

  it.each(['SIGINT', 'SIGTERM'] as const)('--watch stopped by %s (Ctrl-C, a pod stopped): one line saying so, exit 0 — a stop is how a watch ends (the real CLI, real signal)', async (signal) => {
    const env = { ...process.env, KUBECONFIG: kubeconfigFile, DOCKER_CONFIG: dockerConfig, METAFLOW_PREBUILT_DOCKERHUB_USERNAME: 'acme-bot', METAFLOW_PREBUILT_DOCKERHUB_PASSWORD: 'dckr_pat_watch' };
    const child = spawn(process.execPath, [BIN, 'pull-secret', '-n', 'metaflow', '--name', 'watched', '--watch', '--interval', '1h'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (t: string) => (stdout += t));
    child.stderr.setEncoding('utf8').on('data', (t: string) => {
      stderr += t;
      if (t.includes('watching: refreshing every 3600s')) child.kill(signal);
    });
    const code = await new Promise<number | null>((done) => child.on('close', (c) => done(c)));
    expect(code, stderr).toBe(0);
    expect(stdout).toMatch(/^(created|updated|unchanged) secret metaflow\/watched/);
    expect(stderr).toMatch(/\nwatch stopped; secret metaflow\/watched stays as last refreshed \(\d{4}-\d\d-\d\dT[\d:.]+Z\)\n$/);
    expect(stderr).not.toContain('interrupted');
  }, 60_000);

  it('--watch says a failed refresh on stderr without the escape sequences of the registry\'s answer, and keeps watching', async () => {
    let calls = 0;
    const body = 'denied: \x1b[1A\x1b[2K\rupdated secret metaflow/flaky\x1b]52;c;cHdu\x07\u202e';
    const unregisterFlaky = registerBackend(
      defineImageRegistry({
        name: 'flaky-test-registry',
        create: () => ({
          name: 'flaky-test-registry',
          imageTag: ({ envId }) => `127.0.0.1:5999/x:env-${envId}`,
          pushCredentials: async () => {
            if (++calls === 2) throw new RegistryError(`the token service answered 403: ${body}`, { registry: '127.0.0.1:5999', status: 403 });
            return { registry: '127.0.0.1:5999', username: 'AWS', password: new Secret(`flaky-${calls}`), source: 'test' };
          },
          pullConfig: async () => ({}),
          imageExists: async () => ({ exists: false }),
          baseImageIdentity: async (ref) => ({ ref, digest: 'sha256:' + '0'.repeat(64), pinned: `${ref}@sha256:${'0'.repeat(64)}` }),
        }),
      }),
    );
    try {
      const io = capture();
      const controller = new AbortController();
      const context = createCliContext(controller.signal, { env: { KUBECONFIG: kubeconfigFile, METAFLOW_PREBUILT_IMAGE_REGISTRY: 'flaky-test-registry' }, stdout: io.stdout, stderr: io.stderr });
      const running = (await createProgram(context)).parseAsync(['pull-secret', '-n', 'metaflow', '--name', 'flaky', '--watch', '--interval', '1s'], { from: 'user' }).then(
        () => undefined,
        (error: unknown) => error,
      );
      const deadline = Date.now() + 15_000;
      while (calls < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      controller.abort();
      expect(await running).toBeUndefined();
      expect(io.out.stderr).toContain('error: refreshing metaflow/flaky failed: the token service answered 403: denied: \\x1b[1A\\x1b[2K\\x0dupdated secret metaflow/flaky\\x1b]52;c;cHdu\\x07\\u202e; retrying in 1s\n');
      expect(io.out.stderr).not.toMatch(/[\x07\x1b\r\u202e]/);
    } finally {
      unregisterFlaky();
    }
  });

  it('a bad --namespace or --name is exit 2 saying so, before the registry or the cluster configuration is read', async () => {
    for (const [args, message] of [
      [['-n', 'Bad_NS', '--name', 'x'], "'Bad_NS' is not a Kubernetes namespace name"],
      [['-n', 'metaflow', '--name', 'Bad_Name'], "'Bad_Name' is not a Kubernetes secret name"],
    ] as const) {
      const io = capture();
      // No KUBECONFIG, and a registry that cannot load: neither is reached.
      const code = await main(['pull-secret', ...args], { env: { HOME: join(dir, 'empty-home'), METAFLOW_PREBUILT_IMAGE_REGISTRY: 'no-such-registry-backend' }, stdout: io.stdout, stderr: io.stderr });
      expect(code).toBe(2);
      expect(io.out.stderr).toContain(`error: ${message}`);
      expect(io.out.stderr).not.toContain('KUBECONFIG');
    }
  });

  it('without a Kubernetes configuration, exits 2 with a ConfigError naming KUBECONFIG', async () => {
    const io = capture();
    const code = await main(['pull-secret', '-n', 'metaflow', '--name', 'x'], {
      env: { HOME: join(dir, 'empty-home'), METAFLOW_PREBUILT_IMAGE_REGISTRY: 'rotating-test-registry' },
      stdout: io.stdout,
      stderr: io.stderr,
    });
    expect(code).toBe(2);
    expect(io.out.stderr).toContain('No Kubernetes configuration found');
    expect(io.out.stderr).toContain('KUBECONFIG');
  });

  it('local with a pull host: the secret holds the credentials for the host the image map\'s images are pulled from, not the push host (pods got 401)', async () => {
    const env = {
      KUBECONFIG: kubeconfigFile,
      DOCKER_CONFIG: dockerConfig,
      METAFLOW_PREBUILT_IMAGE_REGISTRY: 'local',
      METAFLOW_PREBUILT_LOCAL_REGISTRY: '127.0.0.1:5999',
      METAFLOW_PREBUILT_LOCAL_REGISTRY_PULL_HOST: 'registry.cluster.test:5000',
      METAFLOW_PREBUILT_LOCAL_REGISTRY_USERNAME: 'robot',
      METAFLOW_PREBUILT_LOCAL_REGISTRY_PASSWORD: 'local-pull-pw',
      METAFLOW_PREBUILT_PULL_SECRET: 'local-pull',
    };
    const io = capture();
    expect(await main(['pull-secret', '-n', 'metaflow', '--name', 'local-pull'], { env, stdout: io.stdout, stderr: io.stderr })).toBe(0);
    expect(io.out.stdout).toContain('created secret metaflow/local-pull (kubernetes.io/dockerconfigjson) for registry.cluster.test:5000 (the pull host of 127.0.0.1:5999)');
    expect(io.out.stdout + io.out.stderr).not.toContain('local-pull-pw');
    const stored = secretOf(fake, 'metaflow/local-pull');
    // Only the pull host: the pods never pull from the push host, so its credentials stay out.
    const auths = decodeConfig(stored).auths;
    expect(Object.keys(auths)).toEqual(['registry.cluster.test:5000']);
    expect(auths['registry.cluster.test:5000']).toMatchObject({ username: 'robot', password: 'local-pull-pw' });
    expect(stored?.metadata?.['annotations']).toMatchObject({ 'prebuilt.dev/registry': 'registry.cluster.test:5000' });

    // What the compiled workflows get from the image map: the pull tag and a pull config naming this
    // secret; the kubelet offers the secret's credentials to the pull tag's host only.
    const registry = createLocalRegistry({ env });
    const pullTag = registry.pullTag!(registry.imageTag({ envId: '3f9c0a1b2c3d4e5f', platform: 'linux-64' }));
    expect(await registry.pullConfig(pullTag)).toMatchObject({ kubernetes: { imagePullSecrets: ['local-pull'] } });
    expect(Object.keys(auths)).toContain(parseImageRef(pullTag).registry);

    const json = capture();
    expect(await main(['pull-secret', '-n', 'metaflow', '--name', 'local-pull', '--json'], { env, stdout: json.stdout, stderr: json.stderr })).toBe(0);
    expect(JSON.parse(json.out.stdout)).toMatchObject({ ok: true, action: 'unchanged', registry: 'registry.cluster.test:5000', pushRegistry: '127.0.0.1:5999', imageRegistry: 'local' });

    // Without a pull host the secret is for the push host, and the JSON has no pushRegistry.
    const same = capture();
    const { METAFLOW_PREBUILT_LOCAL_REGISTRY_PULL_HOST: _pullHost, ...pushOnly } = env;
    expect(await main(['pull-secret', '-n', 'metaflow', '--name', 'local-pull', '--json'], { env: pushOnly, stdout: same.stdout, stderr: same.stderr })).toBe(0);
    const parsed = JSON.parse(same.out.stdout) as Record<string, unknown>;
    expect(parsed).toMatchObject({ action: 'updated', registry: '127.0.0.1:5999' });
    expect(parsed).not.toHaveProperty('pushRegistry');
    expect(Object.keys(decodeConfig(secretOf(fake, 'metaflow/local-pull')).auths)).toEqual(['127.0.0.1:5999']);
  });

  it('a registry without credentials is a ConfigError (pods pull from it without a secret)', async () => {
    const io = capture();
    const code = await main(['pull-secret', '-n', 'metaflow', '--name', 'x'], {
      env: { KUBECONFIG: kubeconfigFile, METAFLOW_PREBUILT_IMAGE_REGISTRY: 'local', METAFLOW_PREBUILT_LOCAL_REGISTRY: '127.0.0.1:5999', DOCKER_CONFIG: dockerConfig },
      stdout: io.stdout,
      stderr: io.stderr,
    });
    expect(code).toBe(2);
    expect(io.out.stderr).toContain("image registry 'local' has no credentials");
  });
});
