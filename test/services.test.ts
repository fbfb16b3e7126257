// Proves the test services of scripts/test-services.sh work as other tests expect: the three
// registries, the token server, the base image, and the Docker daemon (host networking only).
import { spawn } from 'node:child_process';
import { createHash, randomBytes, X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { basicAuthorization, describeWith, dockerEnv, getServices, itOrFailInCi, type TestServices } from './services.js';

const services: TestServices = getServices();
const MANIFEST_TYPES = [
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.oci.image.manifest.v1+json',
].join(', ');

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

function run(command: string, args: string[], options: { env?: NodeJS.ProcessEnv; input?: string } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env: options.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    // A command that exits without reading its stdin (EPIPE) fails by its exit code, not by an
    // unhandled stream error that fails the whole run.
    child.stdin.on('error', () => undefined);
    child.stdin.end(options.input ?? '');
  });
}

function decodeJwt(token: string): { header: Record<string, unknown>; claims: Record<string, unknown> } {
  const [header, claims] = token.split('.');
  return {
    header: JSON.parse(Buffer.from(header ?? '', 'base64url').toString('utf8')) as Record<string, unknown>,
    claims: JSON.parse(Buffer.from(claims ?? '', 'base64url').toString('utf8')) as Record<string, unknown>,
  };
}

/** Parses `Bearer realm="...",service="...",scope="..."`. */
function parseChallenge(header: string | null): Record<string, string> {
  const params: Record<string, string> = {};
  const body = (header ?? '').replace(/^\s*\w+\s+/, '');
  for (const m of body.matchAll(/(\w+)="([^"]*)"/g)) params[m[1] ?? ''] = m[2] ?? '';
  return params;
}

function splitRef(ref: string): { host: string; repo: string; tag: string } {
  const slash = ref.indexOf('/');
  const colon = ref.lastIndexOf(':');
  return { host: ref.slice(0, slash), repo: ref.slice(slash + 1, colon), tag: ref.slice(colon + 1) };
}

function sha256(data: Uint8Array | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

describeWith(['registries'], 'test registries (scripts/test-services.sh)', () => {
  const registries = services.registries!;

  async function token(params: Record<string, string | string[]>, authorization?: string): Promise<Response> {
    const url = new URL(registries.token.realm);
    for (const [key, value] of Object.entries(params)) {
      for (const one of Array.isArray(value) ? value : [value]) url.searchParams.append(key, one);
    }
    return fetch(url, { headers: authorization ? { authorization } : {} });
  }

  it('the no-auth registry answers GET /v2/ with 200', async () => {
    const response = await fetch(`http://${registries.plain.host}/v2/`);
    expect(response.status).toBe(200);
    expect(response.headers.get('docker-distribution-api-version')).toBe('registry/2.0');
  });

  it('the htpasswd registry challenges with Basic, accepts its user and refuses a wrong password', async () => {
    const url = `http://${registries.basic.host}/v2/`;
    const anonymous = await fetch(url);
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get('www-authenticate')).toMatch(/^Basic realm=/);
    const good = await fetch(url, { headers: { authorization: basicAuthorization(registries.basic.username, registries.basic.password) } });
    expect(good.status).toBe(200);
    const bad = await fetch(url, { headers: { authorization: basicAuthorization(registries.basic.username, 'wrong-password') } });
    expect(bad.status).toBe(401);
  });

  it('the token registry challenges with Bearer, naming the token server realm and service', async () => {
    const response = await fetch(`http://${registries.token.host}/v2/`);
    expect(response.status).toBe(401);
    const header = response.headers.get('www-authenticate');
    expect(header).toMatch(/^Bearer /);
    expect(parseChallenge(header)).toMatchObject({ realm: registries.token.realm, service: registries.token.service });
    const scoped = await fetch(`http://${registries.token.host}/v2/prebuilt-test/base/manifests/bookworm`);
    expect(parseChallenge(scoped.headers.get('www-authenticate'))['scope']).toBe('repository:prebuilt-test/base:pull');
  });

  it('the token server refuses a wrong password with 401', async () => {
    const response = await token(
      { service: registries.token.service, scope: 'repository:prebuilt-test/base:pull' },
      basicAuthorization(registries.token.username, 'wrong-password'),
    );
    expect(response.status).toBe(401);
  });

  it('the token server grants its user the requested scopes, as docker login asks (account, offline_token, client_id)', async () => {
    const response = await token(
      {
        account: registries.token.username,
        client_id: 'docker',
        offline_token: 'true',
        service: registries.token.service,
        scope: ['repository:prebuilt-test/base:pull,push', 'registry:catalog:*'],
      },
      basicAuthorization(registries.token.username, registries.token.password),
    );
    expect(response.status).toBe(200);
    const body = (await response.json()) as { token: string; access_token: string; expires_in: number };
    expect(body.access_token).toBe(body.token);
    expect(body.expires_in).toBeGreaterThan(0);
    const { header, claims } = decodeJwt(body.token);
    expect(header['alg']).toBe('RS256');
    const chain = header['x5c'] as string[];
    const cert = await readFile(join(services.stateDir ?? '/var/tmp/prebuilt-test-services', 'token-server', 'cert.pem'), 'utf8');
    expect(chain[0]).toBe(new X509Certificate(cert).raw.toString('base64'));
    expect(claims).toMatchObject({
      iss: registries.token.issuer,
      sub: registries.token.username,
      aud: registries.token.service,
      access: [
        { type: 'repository', name: 'prebuilt-test/base', actions: ['pull', 'push'] },
        { type: 'registry', name: 'catalog', actions: ['*'] },
      ],
    });
    const catalog = await fetch(`http://${registries.token.host}/v2/_catalog`, { headers: { authorization: `Bearer ${body.token}` } });
    expect(catalog.status).toBe(200);
    expect(await catalog.json()).toHaveProperty('repositories');
  });

  it('the token server gives an anonymous caller a token that grants nothing, which the registry refuses', async () => {
    const response = await token({ service: registries.token.service, scope: 'registry:catalog:*' });
    expect(response.status).toBe(200);
    const { token: anonymous } = (await response.json()) as { token: string };
    expect(decodeJwt(anonymous).claims['access']).toEqual([]);
    const catalog = await fetch(`http://${registries.token.host}/v2/_catalog`, { headers: { authorization: `Bearer ${anonymous}` } });
    expect(catalog.status).toBe(401);
    expect(catalog.headers.get('www-authenticate')).toMatch(/error="insufficient_scope"/);
  });

  it('the token server accepts an OAuth2 password grant (POST form)', async () => {
    const form = new URLSearchParams({
      grant_type: 'password',
      username: registries.token.username,
      password: registries.token.password,
      service: registries.token.service,
      scope: 'registry:catalog:*',
      client_id: 'prebuilt-test',
    });
    const response = await fetch(registries.token.realm, { method: 'POST', body: form });
    expect(response.status).toBe(200);
    const { access_token: accessToken } = (await response.json()) as { access_token: string };
    const catalog = await fetch(`http://${registries.token.host}/v2/_catalog`, { headers: { authorization: `Bearer ${accessToken}` } });
    expect(catalog.status).toBe(200);
    form.set('password', 'wrong-password');
    expect((await fetch(registries.token.realm, { method: 'POST', body: form })).status).toBe(401);
  });
});

describeWith(['registries', 'baseImage'], 'base image (debootstrap bookworm minbase)', () => {
  const registries = services.registries!;
  const base = services.baseImage!;
  // Bodies of skipped suites still run at collection: dereference only inside tests and hooks.
  const ref = (): { host: string; repo: string; tag: string } => splitRef(base.ref);

  it('is in the no-auth registry with the recorded digest', async () => {
    const { host, repo, tag } = ref();
    expect(host).toBe(registries.plain.host);
    const head = await fetch(`http://${host}/v2/${repo}/manifests/${tag}`, { method: 'HEAD', headers: { accept: MANIFEST_TYPES } });
    expect(head.status).toBe(200);
    expect(head.headers.get('docker-content-digest')).toBe(base.digest);
    const body = new Uint8Array(await (await fetch(`http://${host}/v2/${repo}/manifests/${base.digest}`, { headers: { accept: MANIFEST_TYPES } })).arrayBuffer());
    expect(sha256(body)).toBe(base.digest);
    const manifest = JSON.parse(Buffer.from(body).toString('utf8')) as { config: { digest: string }; layers: unknown[] };
    expect(manifest.layers).toHaveLength(1);
    const config = (await (await fetch(`http://${host}/v2/${repo}/blobs/${manifest.config.digest}`)).json()) as {
      os: string;
      config: { Env?: string[] };
    };
    expect(config.os).toBe('linux');
    expect(config.config.Env).toContain('PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin');
  });

  describe('copied to the token registry over HTTP with a push token, then pulled with a pull token', () => {
    // A fixed name: blobs already there from an earlier run are not sent again (the manifest is
    // deleted after the test, the blob links stay), which keeps the test fast on a warm machine.
    const target = 'prebuilt-test/services-check';
    let pushToken = '';

    async function grant(scope: string): Promise<string> {
      const url = new URL(registries.token.realm);
      url.searchParams.set('service', registries.token.service);
      url.searchParams.set('scope', scope);
      const response = await fetch(url, { headers: { authorization: basicAuthorization(registries.token.username, registries.token.password) } });
      expect(response.status).toBe(200);
      return ((await response.json()) as { token: string }).token;
    }

    beforeAll(async () => {
      pushToken = await grant(`repository:${target}:pull,push,delete`);
    });

    afterAll(async () => {
      const response = await fetch(`http://${registries.token.host}/v2/${target}/manifests/${base.digest}`, {
        method: 'DELETE',
        headers: { authorization: `Bearer ${pushToken}` },
      });
      expect([202, 404]).toContain(response.status);
    });

    it('the registry accepts the token for a push and a pull of the base image; the digest is unchanged', async () => {
      const { host, repo } = ref();
      const token = registries.token.host;
      const manifestBody = new Uint8Array(
        await (await fetch(`http://${host}/v2/${repo}/manifests/${base.digest}`, { headers: { accept: MANIFEST_TYPES } })).arrayBuffer(),
      );
      const manifest = JSON.parse(Buffer.from(manifestBody).toString('utf8')) as {
        mediaType: string;
        config: { digest: string };
        layers: Array<{ digest: string }>;
      };
      const auth = { authorization: `Bearer ${pushToken}` };
      // An upload session opens with the push token (and is cancelled).
      const session = await fetch(`http://${token}/v2/${target}/blobs/uploads/`, { method: 'POST', headers: auth });
      expect(session.status).toBe(202);
      const sessionUrl = new URL(session.headers.get('location') ?? '', `http://${token}`);
      expect((await fetch(sessionUrl, { method: 'DELETE', headers: auth })).status).toBe(204);

      for (const digest of [manifest.config.digest, ...manifest.layers.map((l) => l.digest)]) {
        const present = await fetch(`http://${token}/v2/${target}/blobs/${digest}`, { method: 'HEAD', headers: auth });
        if (present.status === 200) continue;
        expect(present.status).toBe(404);
        const blob = new Uint8Array(await (await fetch(`http://${host}/v2/${repo}/blobs/${digest}`)).arrayBuffer());
        const start = await fetch(`http://${token}/v2/${target}/blobs/uploads/`, { method: 'POST', headers: auth });
        expect(start.status).toBe(202);
        const location = new URL(start.headers.get('location') ?? '', `http://${token}`);
        location.searchParams.set('digest', digest);
        const put = await fetch(location, {
          method: 'PUT',
          headers: { ...auth, 'content-type': 'application/octet-stream' },
          body: blob,
        });
        expect(put.status).toBe(201);
      }
      const putManifest = await fetch(`http://${token}/v2/${target}/manifests/bookworm`, {
        method: 'PUT',
        headers: { ...auth, 'content-type': manifest.mediaType },
        body: manifestBody,
      });
      expect(putManifest.status).toBe(201);
      expect(putManifest.headers.get('docker-content-digest')).toBe(base.digest);

      const pullToken = await grant(`repository:${target}:pull`);
      const pulled = await fetch(`http://${token}/v2/${target}/manifests/bookworm`, {
        headers: { authorization: `Bearer ${pullToken}`, accept: MANIFEST_TYPES },
      });
      expect(pulled.status).toBe(200);
      expect(sha256(new Uint8Array(await pulled.arrayBuffer()))).toBe(base.digest);
      // A pull-only token does not allow a push.
      const denied = await fetch(`http://${token}/v2/${target}/blobs/uploads/`, {
        method: 'POST',
        headers: { authorization: `Bearer ${pullToken}` },
      });
      expect(denied.status).toBe(401);
      expect(denied.headers.get('www-authenticate')).toMatch(/error="insufficient_scope"/);
    });
  });
});

describeWith(['docker', 'registries', 'baseImage'], 'Docker daemon (host networking only)', () => {
  const registries = services.registries!;
  const base = services.baseImage!;
  let dockerConfig = '';
  const pushed: Array<{ ref: string; host: string; repo: string; authorization: () => Promise<string> }> = [];

  beforeAll(async () => {
    dockerConfig = await mkdtemp(join(tmpdir(), 'prebuilt-docker-config-'));
  });

  afterAll(async () => {
    for (const image of pushed) {
      const digest = await fetch(`http://${image.host}/v2/${image.repo}/manifests/run`, {
        method: 'HEAD',
        headers: { accept: MANIFEST_TYPES, authorization: await image.authorization() },
      });
      const found = digest.headers.get('docker-content-digest');
      if (found) {
        const deleted = await fetch(`http://${image.host}/v2/${image.repo}/manifests/${found}`, {
          method: 'DELETE',
          headers: { authorization: await image.authorization() },
        });
        expect(deleted.status).toBe(202);
      }
      await run('docker', ['rmi', image.ref], { env: dockerEnv(services) });
    }
    await rm(dockerConfig, { recursive: true, force: true });
  });

  it('has no bridge network (started with --bridge=none)', async () => {
    const result = await run('docker', ['network', 'ls', '--format', '{{.Name}} {{.Driver}}'], { env: dockerEnv(services) });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).not.toMatch(/\bbridge\b/);
    expect(result.stdout).toMatch(/^host host$/m);
  });

  it('runs python3 in the base image with --network=host', async () => {
    const result = await run('docker', ['run', '--network=host', '--rm', base.ref, 'python3', '-c', 'print(1)'], { env: dockerEnv(services) });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout.trim()).toBe('1');
  });

  for (const flavour of ['basic', 'token'] as const) {
    it(`docker login + docker push work against the ${flavour === 'basic' ? 'htpasswd (Basic)' : 'token (Bearer)'} registry`, async () => {
      const endpoint = registries[flavour];
      const env = dockerEnv(services, dockerConfig);
      const repo = `prebuilt-test/login-check-${randomBytes(4).toString('hex')}`;
      const ref = `${endpoint.host}/${repo}:run`;

      const wrong = await run('docker', ['login', '-u', endpoint.username, '--password-stdin', endpoint.host], { env, input: 'wrong-password' });
      expect(wrong.code).not.toBe(0);
      expect(wrong.stderr).toMatch(/unauthorized|incorrect/i);

      const login = await run('docker', ['login', '-u', endpoint.username, '--password-stdin', endpoint.host], { env, input: endpoint.password });
      expect(login.code, login.stderr).toBe(0);
      expect((await run('docker', ['tag', base.ref, ref], { env })).code).toBe(0);
      pushed.push({
        ref,
        host: endpoint.host,
        repo,
        authorization: async () => {
          if (flavour === 'basic') return basicAuthorization(endpoint.username, endpoint.password);
          const url = new URL(registries.token.realm);
          url.searchParams.set('service', registries.token.service);
          url.searchParams.set('scope', `repository:${repo}:pull,delete`);
          const response = await fetch(url, { headers: { authorization: basicAuthorization(endpoint.username, endpoint.password) } });
          return `Bearer ${((await response.json()) as { token: string }).token}`;
        },
      });
      const push = await run('docker', ['push', ref], { env });
      expect(push.code, push.stderr).toBe(0);
      const printed = /digest: (sha256:[0-9a-f]{64})/.exec(push.stdout)?.[1];
      expect(printed, push.stdout).toBeDefined();
      const head = await fetch(`http://${endpoint.host}/v2/${repo}/manifests/run`, {
        method: 'HEAD',
        headers: { accept: MANIFEST_TYPES, authorization: await pushed[pushed.length - 1]!.authorization() },
      });
      expect(head.status).toBe(200);
      expect(head.headers.get('docker-content-digest')).toBe(printed);
    });
  }
});

async function info(host: string): Promise<Record<string, unknown>> {
  const result = await run('docker', ['info', '--format', '{{json .}}'], { env: { ...process.env, DOCKER_HOST: host } });
  expect(result.code, result.stderr).toBe(0);
  return JSON.parse(result.stdout) as Record<string, unknown>;
}

/** The `driver-type` line of `docker info`'s storage driver status (only a containerd-store daemon has one). */
function driverType(daemon: Record<string, unknown>): string | undefined {
  return (daemon['DriverStatus'] as [string, string][] | null)?.find(([key]) => key === 'driver-type')?.[1];
}

async function expectNoBridge(host: string): Promise<void> {
  const networks = await run('docker', ['network', 'ls', '--format', '{{.Name}} {{.Driver}}'], { env: { ...process.env, DOCKER_HOST: host } });
  expect(networks.code, networks.stderr).toBe(0);
  expect(networks.stdout).not.toMatch(/\bbridge\b/);
}

async function runsBaseImage(host: string): Promise<void> {
  const env = { ...process.env, DOCKER_HOST: host };
  const result = await run('docker', ['run', '--network=host', '--rm', services.baseImage!.ref, 'python3', '-c', 'print(1)'], { env });
  expect(result.code, result.stderr).toBe(0);
  expect(result.stdout.trim()).toBe('1');
}

describeWith(['docker', 'modernDocker', 'baseImage'], 'modern Docker daemon (Debian trixie\'s Docker Engine 26, beside the 20.10 one)', () => {
  const modern = services.modernDocker!;

  it('is Docker Engine >= 23 with containerd 1.7 from its private root, and another daemon than the 20.10 one (own data root, no bridge)', async () => {
    expect(modern.host).not.toBe(services.dockerHost);
    const [mine, system] = await Promise.all([info(modern.host), info(services.dockerHost!)]);
    expect(Number(/^(\d+)/.exec(String(mine['ServerVersion']))?.[1])).toBeGreaterThanOrEqual(23);
    expect(mine['ServerVersion']).toBe(modern.version);
    expect((mine['ContainerdCommit'] as { ID: string }).ID).toBeTruthy();
    expect(mine['DockerRootDir']).not.toBe(system['DockerRootDir']);
    expect(mine['ID']).not.toBe(system['ID']);
    expect(driverType(mine)).toBeUndefined();
    await expectNoBridge(modern.host);
    const containerd = await run(join(modern.root, 'usr', 'bin', 'containerd'), ['--version']);
    expect(containerd.stdout).toMatch(/ 1\.7\./);
  });

  it('when apt cannot fetch the runtimes, they are listed as missing saying what and how to fix, and no root is left behind', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'prebuilt-modern-fetch-'));
    try {
      const script = join(import.meta.dirname, '..', 'scripts', 'test-services.sh');
      const env = { ...process.env, PREBUILT_TEST_SERVICES_DIR: dir, PREBUILT_TEST_MODERN_SUITE: 'no-such-suite' };
      const result = await run('bash', ['-c', 'source "$1" && ensure_modern_root && echo "ok=$MODERN_OK" && printf "%s\\n" "${MISSING[@]}"', 'bash', script], { env });
      expect(result.code, result.stderr).toBe(0);
      expect(result.stdout).toContain('ok=0');
      expect(result.stdout).toMatch(/modern runtimes \(Docker 26, containerd 1\.7, buildx\): apt could not fetch docker\.io containerd docker-buildx from \S+ no-such-suite \(log: .*apt\.log\)\. Let apt reach/);
      expect(result.stdout).toContain('the tests that need Docker >= 23 or buildx skip');
      await expect(readFile(join(dir, 'no-such-suite', 'root', '.prebuilt-recipe'), 'utf8')).rejects.toThrow(/ENOENT/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('pulls the base image from the local registry and runs python3 in it with --network=host', () => runsBaseImage(modern.host));
});

describeWith(['docker', 'modernDocker', 'containerdStoreDocker', 'baseImage'], 'Docker daemon with the containerd image store (the modern Docker Engine 26, a third daemon)', () => {
  const store = services.containerdStoreDocker!;

  it('is the modern daemon\'s Docker Engine with the containerd-snapshotter feature on (driver-type io.containerd.snapshotter.v1), and a daemon of its own (data root, no bridge)', async () => {
    const [mine, modern, system] = await Promise.all([info(store.host), info(services.modernDocker!.host), info(services.dockerHost!)]);
    expect(mine['ServerVersion']).toBe(store.version);
    expect(store.version).toBe(services.modernDocker!.version);
    expect(driverType(mine)).toBe('io.containerd.snapshotter.v1');
    expect(driverType(modern)).toBeUndefined();
    expect(new Set([mine['ID'], modern['ID'], system['ID']]).size).toBe(3);
    expect(new Set([mine['DockerRootDir'], modern['DockerRootDir'], system['DockerRootDir']]).size).toBe(3);
    await expectNoBridge(store.host);
  });

  it('pulls the base image from the local registry and runs python3 in it with --network=host', () => runsBaseImage(store.host));

  it('names the pulled base image by its manifest digest (a graphdriver daemon names it by its config digest)', async () => {
    const id = async (host: string): Promise<string> => {
      const env = { ...process.env, DOCKER_HOST: host };
      expect((await run('docker', ['pull', '-q', services.baseImage!.ref], { env })).code).toBe(0);
      const inspect = await run('docker', ['image', 'inspect', '--format', '{{.Id}}', services.baseImage!.ref], { env });
      expect(inspect.code, inspect.stderr).toBe(0);
      return inspect.stdout.trim();
    };
    expect(await id(store.host)).toBe(services.baseImage!.digest);
    expect(await id(services.modernDocker!.host)).not.toBe(services.baseImage!.digest);
  });
});

describeWith(['erofsContainerd'], 'containerd 2.1 for the erofs snapshotter (Debian forky\'s, unpacked; mkfs.erofs >= 1.8 beside it)', () => {
  const erofs = services.erofsContainerd!;
  const script = join(import.meta.dirname, '..', 'scripts', 'test-services.sh');
  const atLeast = (version: string, major: number, minor: number): boolean => {
    const [a, b] = version.split('.').map(Number);
    return a! > major || (a === major && b! >= minor);
  };

  it('the root holds containerd >= 2.1 (the recorded version), ctr and the runc shim, and no runc (forky\'s needs glibc 2.38: the system\'s runs); the recorded mkfs.erofs is >= 1.8', async () => {
    const bin = join(erofs.root, 'usr', 'bin');
    const containerd = await run(join(bin, 'containerd'), ['--version']);
    expect(containerd.code, containerd.stderr).toBe(0);
    expect(containerd.stdout).toContain(` ${erofs.version} `);
    expect(atLeast(erofs.version, 2, 1), erofs.version).toBe(true);
    for (const [tool, flag] of [['ctr', '--version'], ['containerd-shim-runc-v2', '-v']] as const) {
      const result = await run(join(bin, tool), [flag]);
      expect(result.code, tool).toBe(0);
      expect(result.stdout, tool).toContain(erofs.version);
    }
    expect((await run('test', ['-e', join(bin, 'runc')])).code).not.toBe(0);
    const mkfs = await run(erofs.mkfsErofs.path, ['--version']);
    expect(mkfs.stdout).toMatch(new RegExp(`^mkfs\\.erofs \\(erofs-utils\\) ${erofs.mkfsErofs.version.replace(/\./g, '\\.')}\n`));
    expect(atLeast(erofs.mkfsErofs.version, 1, 8), erofs.mkfsErofs.version).toBe(true);
  });

  it('with a mkfs.erofs older than 1.8 first on PATH, it is missing and the entry says to run scripts/build-erofs-utils.sh', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'prebuilt-old-mkfs-'));
    try {
      await writeFile(join(dir, 'mkfs.erofs'), '#!/bin/sh\necho "mkfs.erofs (erofs-utils) 1.5"\n', { mode: 0o755 });
      const env = { ...process.env, PATH: `${dir}:${process.env['PATH'] ?? ''}` };
      const result = await run('bash', ['-c', 'source "$1" && ensure_erofs_containerd && echo "version=$EROFS_CONTAINERD_VERSION" && printf "%s\\n" "${MISSING[@]}"', 'bash', script], { env });
      expect(result.code, result.stderr).toBe(0);
      expect(result.stdout).toContain('version=\n');
      expect(result.stdout).toMatch(/containerd 2\.1 for the erofs snapshotter: its erofs differ runs mkfs\.erofs --tar=f, which needs erofs-utils >= 1\.8; the mkfs\.erofs on PATH is 1\.5: run 'sudo bash scripts\/build-erofs-utils\.sh'/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('when apt cannot fetch containerd, it is missing saying what and how to fix, and no root is left behind', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'prebuilt-erofs-fetch-'));
    try {
      const env = { ...process.env, PREBUILT_TEST_SERVICES_DIR: dir, PREBUILT_TEST_EROFS_SUITE: 'no-such-suite' };
      const result = await run('bash', ['-c', 'source "$1" && ensure_erofs_containerd && echo "version=$EROFS_CONTAINERD_VERSION" && printf "%s\\n" "${MISSING[@]}"', 'bash', script], { env });
      expect(result.code, result.stderr).toBe(0);
      expect(result.stdout).toContain('version=\n');
      expect(result.stdout).toMatch(/containerd 2\.1 for the erofs snapshotter: apt could not fetch containerd from \S+ no-such-suite \(log: .*apt\.log\)\. Let apt reach/);
      expect(result.stdout).toContain('the erofs snapshotter tests skip, and fail in CI (PREBUILT_TEST_EROFS_SUITE names another suite)');
      await expect(readFile(join(dir, 'no-such-suite', 'root', '.prebuilt-recipe'), 'utf8')).rejects.toThrow(/ENOENT/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('scripts/build-erofs-utils.sh', () => {
  const script = join(import.meta.dirname, '..', 'scripts', 'build-erofs-utils.sh');

  it('with a mkfs.erofs >= 1.8 in its bin dir, builds nothing and says it reuses that one', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'prebuilt-erofs-bin-'));
    try {
      await writeFile(join(dir, 'mkfs.erofs'), '#!/bin/sh\necho "mkfs.erofs (erofs-utils) 1.8.6"\n', { mode: 0o755 });
      const result = await run('bash', [script], { env: { ...process.env, PREBUILT_EROFS_BIN_DIR: dir, PREBUILT_EROFS_SUITE: 'no-such-suite' } });
      expect(result.code, result.stderr).toBe(0);
      expect(result.stderr).toBe(`[erofs-utils] reusing ${dir}/mkfs.erofs 1.8.6\n`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  const notRoot = process.getuid?.() !== 0 ? 'the build needs root (it checks that before apt): run the tests as root, as .ci/run does' : undefined;
  itOrFailInCi('with a mkfs.erofs 1.5 and a suite apt cannot fetch, fails (exit 1) saying what failed and what to do, and leaves the old mkfs.erofs', notRoot, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'prebuilt-erofs-bin-'));
    try {
      const old = '#!/bin/sh\necho "mkfs.erofs (erofs-utils) 1.5"\n';
      await writeFile(join(dir, 'mkfs.erofs'), old, { mode: 0o755 });
      const env = { ...process.env, PREBUILT_EROFS_BIN_DIR: dir, PREBUILT_EROFS_SUITE: 'no-such-suite', PREBUILT_EROFS_WORK_DIR: join(dir, 'work') };
      const result = await run('bash', [script], { env });
      expect(result.code).toBe(1);
      expect(result.stderr).toContain(`${dir}/mkfs.erofs is 1.5, containerd 2.1's erofs differ needs >= 1.8`);
      expect(result.stderr).toMatch(/FAILED: apt could not fetch no-such-suite's erofs-utils source \(log: .*build\.log\)\n.*Let apt reach the Debian mirror's no-such-suite suite/);
      expect(result.stderr).not.toMatch(/^\s+at /m);
      expect(await readFile(join(dir, 'mkfs.erofs'), 'utf8')).toBe(old);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describeWith(['buildx'], 'docker buildx plugin', () => {
  it('docker buildx version answers with the recorded version', async () => {
    const result = await run('docker', ['buildx', 'version']);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain(` ${services.buildx!.version} `);
  });
});

describeWith(['docker', 'registries', 'baseImage'], 'scripts/test-services.sh on a machine where everything runs', () => {
  const script = join(import.meta.dirname, '..', 'scripts', 'test-services.sh');

  it('status finds every service up', async () => {
    const result = await run('bash', [script, 'status']);
    expect(result.code, result.stdout + result.stderr).toBe(0);
    for (const name of ['docker', 'registry-plain', 'registry-basic', 'registry-token', 'token-server', 'base-image', 'modern-docker', 'containerd-store', 'buildx', 'erofs-containerd']) {
      expect(result.stdout).toMatch(new RegExp(`^${name}\\s+up\\s`, 'm'));
    }
  });

  it('up again reuses everything and describes the same services, printing no password', async () => {
    const result = await run('bash', [script, 'up']);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).not.toMatch(/starting|debootstrap|import|apt-get|installing/);
    const printed = JSON.parse(result.stdout) as TestServices;
    expect(printed.dockerHost).toBe(services.dockerHost);
    expect(printed.baseImage).toEqual(services.baseImage);
    expect(printed.modernDocker).toEqual(services.modernDocker);
    expect(printed.containerdStoreDocker).toEqual(services.containerdStoreDocker);
    expect(printed.buildx).toEqual(services.buildx);
    expect(printed.erofsContainerd).toEqual(services.erofsContainerd);
    expect(printed.missing).toEqual([]);
    expect(printed.registries?.token.realm).toBe(services.registries?.token.realm);
    expect(result.stdout).not.toContain(services.registries?.basic.password ?? '-');
    expect(result.stdout).not.toContain(services.registries?.token.password ?? '-');
  });

  it('refuses an unknown command with exit 2', async () => {
    const result = await run('bash', [script, 'restart']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("unknown command 'restart'");
  });
});
