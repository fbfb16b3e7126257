// Helpers for the end-to-end tests of `prebuilt build` / `prebuilt plan`: the real CLI
// (packages/cli/bin/prebuilt.js, run asynchronously so this process keeps serving the fixture
// channel and index), the test services' Docker daemon and registries, and the example fixtures.
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import {
  buildDebianPythonPackage,
  createTar,
  debianBoto3FixtureSet,
  exampleFixtureSet,
  generateFixtures,
  startFixtureServer,
  type CondaPackageSpec,
  type FixtureServer,
  type GeneratedFixtures,
} from '../../packages/fixtures/dist/index.js';
import { basicAuthorization, type TestServices } from '../services.js';

export { metaflowSource } from '../services.js';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CLI = join(ROOT, 'packages', 'cli', 'bin', 'prebuilt.js');

/** The Accept header of a manifest GET or HEAD: every manifest and index type the tests' images are. */
export const MANIFEST_TYPES = [
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.oci.image.index.v1+json',
].join(', ');

/**
 * A conda package built with a short prefix placeholder (`/opt/short`) in a binary file: the env
 * prefix (`/opt/prebuilt/env`) is longer, so a binary file cannot be relocated and the
 * env cannot be materialized — a real way for one env's build to fail.
 */
export const SHORT_PREFIX_PACKAGE: CondaPackageSpec = {
  name: 'shortprefix',
  version: '1.0.0',
  subdir: 'linux-64',
  placeholder: '/opt/short',
  summary: 'Test double built with a too-short prefix placeholder (cannot be relocated)',
  files: [{ path: 'lib/libshort.so', content: Buffer.concat([Buffer.from('ELF\0@PREFIX@/lib\0', 'latin1'), Buffer.alloc(8, 0xff)]), prefix: 'binary' }],
};

export interface Fixtures {
  dir: string;
  generated: GeneratedFixtures;
  server: FixtureServer;
  /** Shared by every CLI run of a test file: the lock and package caches. */
  cacheDir: string;
  pythonVersion: string;
}

export interface StartFixturesOptions {
  /**
   * Serve real boto3, requests and their dependencies (Debian bookworm's, repackaged) instead of the
   * example set's stand-ins: what a Metaflow task needs to download its code package.
   */
  realBoto3?: boolean;
}

/**
 * Generates the example channel and index (plus {@link SHORT_PREFIX_PACKAGE} and the conda packages
 * `extra` gives for the fixture python's version) and serves them.
 */
export async function startFixtures(extra?: (pythonVersion: string) => CondaPackageSpec[], options: StartFixturesOptions = {}): Promise<Fixtures> {
  const dir = await mkdtemp(join(tmpdir(), 'prebuilt-e2e-'));
  let set = exampleFixtureSet();
  if (options.realBoto3) {
    const real = await debianBoto3FixtureSet();
    const replaced = new Set(real.conda.map((c) => c.name));
    set = { conda: [...set.conda.filter((c) => !replaced.has(c.name)), ...real.conda], wheels: [...set.wheels.filter((w) => !replaced.has(w.name)), ...real.wheels] };
  }
  // The python package is built once and cached; generateFixtures below takes it from the cache.
  const more = extra ? extra((await buildDebianPythonPackage({}))[0]!.record.version) : [];
  const generated = await generateFixtures(join(dir, 'fixtures'), { conda: [...set.conda, SHORT_PREFIX_PACKAGE, ...more], wheels: set.wheels }, { python: {} });
  const server = await startFixtureServer({ channels: { example: generated.channelDir }, indexes: { example: generated.indexDir } });
  const python = generated.python[0];
  if (!python) throw new Error('the fixture python package was not built');
  const cacheDir = join(dir, 'cache');
  await mkdir(cacheDir);
  return { dir, generated, server, cacheDir, pythonVersion: python.record.version };
}

/** Stops serving the fixtures and removes their directory (for afterAll; a no-op when they never started). */
export async function stopFixtures(fixtures: Fixtures | undefined): Promise<void> {
  if (!fixtures) return;
  await fixtures.server.close();
  await rm(fixtures.dir, { recursive: true, force: true });
}

/** The environment of a CLI run against the fixtures, the test daemon and the plain registry. */
export function cliEnv(fixtures: Fixtures, services: TestServices, namespace: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    DOCKER_HOST: services.dockerHost ?? undefined,
    METAFLOW_PREBUILT_CONDA_CHANNELS: fixtures.server.channelUrl,
    METAFLOW_PREBUILT_PYPI_INDEX_URL: fixtures.server.indexUrl,
    METAFLOW_PREBUILT_PIP_ISOLATED: '1',
    METAFLOW_PREBUILT_DEFAULT_PYTHON: fixtures.pythonVersion,
    METAFLOW_PREBUILT_IMAGE_REGISTRY: 'local',
    METAFLOW_PREBUILT_BUILD_SERVICE: 'docker',
    METAFLOW_PREBUILT_LOCAL_REGISTRY: services.registries!.plain.host,
    METAFLOW_PREBUILT_BASE_IMAGE: services.baseImage!.ref,
    METAFLOW_PREBUILT_IMAGE_NAMESPACE: namespace,
    METAFLOW_PREBUILT_CACHE_DIR: fixtures.cacheDir,
    ...extra,
  };
  // Settings of the machine or of an outer run must not leak into the test.
  for (const key of ['METAFLOW_PREBUILT_STATE_FILE', 'METAFLOW_PREBUILT_GPU_BASE_IMAGE', 'METAFLOW_PREBUILT_REGISTRY_CACHE', 'METAFLOW_PREBUILT_BUILD_WORKERS', 'DEBUG']) {
    if (!(key in extra)) delete env[key];
  }
  for (const [key, value] of Object.entries(env)) if (value === undefined) delete env[key];
  return env;
}

/** A namespace no other test (or earlier run) has pushed to. */
export function uniqueNamespace(label: string): string {
  return `prebuilt-e2e/${label}-${Date.now().toString(36)}${randomBytes(3).toString('hex')}`;
}

export interface CliRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

export interface RunOptions {
  env: NodeJS.ProcessEnv;
  cwd: string;
  /** Called with the stderr seen so far, after each chunk; may send the child a signal. */
  onStderr?: (stderr: string, kill: (signal: NodeJS.Signals) => void) => void;
  timeoutMs?: number;
}

/** Runs `prebuilt <args>` asynchronously (this process keeps serving the fixtures meanwhile). */
export function runCli(args: readonly string[], options: RunOptions): Promise<CliRun> {
  const started = Date.now();
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd: options.cwd, env: options.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const kill = (signal: NodeJS.Signals): void => void child.kill(signal);
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      fail(new Error(`prebuilt ${args.join(' ')} did not finish in ${options.timeoutMs ?? 240_000} ms; stderr so far:\n${stderr}`));
    }, options.timeoutMs ?? 240_000);
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
      options.onStderr?.(stderr, kill);
    });
    child.on('error', (error) => {
      clearTimeout(timer);
      fail(error);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      done({ code, signal, stdout, stderr, ms: Date.now() - started });
    });
  });
}

/** Runs a command (docker, …) and collects its output. */
export function run(command: string, args: readonly string[], env: NodeJS.ProcessEnv = process.env, cwd?: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((done, fail) => {
    const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'], ...(cwd !== undefined ? { cwd } : {}) });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', fail);
    child.on('close', (code) => done({ code, stdout, stderr }));
  });
}

/** Writes `<dir>/<name>` (creating the directory) and returns its path. */
export async function writeFlow(dir: string, name: string, source: string): Promise<string> {
  await mkdir(dir, { recursive: true });
  const path = join(dir, name);
  await writeFile(path, source);
  return path;
}

export function splitTag(ref: string): { host: string; repository: string; tag: string } {
  const slash = ref.indexOf('/');
  const colon = ref.lastIndexOf(':');
  return { host: ref.slice(0, slash), repository: ref.slice(slash + 1, colon), tag: ref.slice(colon + 1) };
}

/** HEAD of a tag's manifest: the status and the digest the registry reports. */
export async function headManifest(ref: string, auth?: { username: string; password: string }): Promise<{ status: number; digest: string | null }> {
  const { host, repository, tag } = splitTag(ref);
  const response = await fetch(`http://${host}/v2/${repository}/manifests/${tag}`, {
    method: 'HEAD',
    headers: { accept: MANIFEST_TYPES, ...(auth ? { authorization: basicAuthorization(auth.username, auth.password) } : {}) },
  });
  return { status: response.status, digest: response.headers.get('docker-content-digest') };
}

export { closedPort } from '../../packages/fixtures/dist/index.js';

const sha256 = (data: Uint8Array | string): string => `sha256:${createHash('sha256').update(data).digest('hex')}`;

async function uploadBlob(host: string, repository: string, data: Uint8Array): Promise<string> {
  const digest = sha256(data);
  const start = await fetch(`http://${host}/v2/${repository}/blobs/uploads/`, { method: 'POST' });
  if (start.status !== 202) throw new Error(`blob upload to ${host}/${repository}: ${start.status}`);
  const location = new URL(start.headers.get('location') ?? '', `http://${host}`);
  location.searchParams.set('digest', digest);
  const put = await fetch(location, { method: 'PUT', headers: { 'content-type': 'application/octet-stream' }, body: data });
  if (put.status !== 201) throw new Error(`blob upload to ${host}/${repository}: ${put.status} ${await put.text()}`);
  return digest;
}

/**
 * Pushes `<host>/<repository>:<tag>`, a linux/amd64 image with one unique layer, then deletes that
 * layer's blob: the registry still answers for the manifest (so the base image resolves to a
 * digest) but no builder can pull it — a base image whose layers the registry lost.
 */
export async function pushImageWithLostLayer(host: string, repository: string, tag: string): Promise<string> {
  const tar = createTar([{ type: 'file', path: 'gpu-runtime/marker', data: randomBytes(64), mode: 0o644 }]);
  const layer = gzipSync(tar);
  const config = Buffer.from(
    JSON.stringify({ architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [sha256(tar)] } }),
  );
  const configDigest = await uploadBlob(host, repository, config);
  const layerDigest = await uploadBlob(host, repository, layer);
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
    config: { mediaType: 'application/vnd.docker.container.image.v1+json', size: config.length, digest: configDigest },
    layers: [{ mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', size: layer.length, digest: layerDigest }],
  });
  const put = await fetch(`http://${host}/v2/${repository}/manifests/${tag}`, {
    method: 'PUT',
    headers: { 'content-type': 'application/vnd.docker.distribution.manifest.v2+json' },
    body: manifest,
  });
  if (put.status !== 201) throw new Error(`manifest put: ${put.status} ${await put.text()}`);
  const deleted = await fetch(`http://${host}/v2/${repository}/blobs/${layerDigest}`, { method: 'DELETE' });
  if (deleted.status !== 202) throw new Error(`blob delete: ${deleted.status} ${await deleted.text()}`);
  const gone = await fetch(`http://${host}/v2/${repository}/blobs/${layerDigest}`, { method: 'HEAD' });
  if (gone.status !== 404) throw new Error(`the deleted layer is still served (${gone.status})`);
  return `${host}/${repository}:${tag}`;
}

/**
 * A stand-in linux-aarch64 conda `python` of `version` (this machine cannot run arm64 code): a shell
 * script that says what it is, under the same paths as the real package. Only a solver and the
 * image layout see it.
 */
export function aarch64PythonStandIn(version: string): CondaPackageSpec {
  const minor = version.split('.').slice(0, 2).join('.');
  return {
    name: 'python',
    version,
    subdir: 'linux-aarch64',
    summary: 'Stand-in linux-aarch64 python (a shell script; arm64 code cannot run on this machine)',
    files: [
      { path: `bin/python${minor}`, content: '#!/bin/sh\necho "stand-in linux-aarch64 python"\n', mode: 0o755 },
      { path: 'bin/python3', symlink: `python${minor}` },
      { path: 'bin/python', symlink: `python${minor}` },
      { path: `lib/python${minor}/os.py`, content: '# stand-in\n' },
    ],
  };
}

/**
 * A multi-platform base image: an image index over the test base image (linux/amd64) and a
 * linux/arm64 stand-in — the same layers under a config that says arm64 (nothing runs it: this
 * machine cannot run arm64 code). Pushed once beside the base as `<repository>:<tag>-multi`.
 */
export async function pushMultiPlatformBase(baseRef: string): Promise<string> {
  const { host, repository, tag } = splitTag(baseRef);
  const get = async (path: string, accept: string): Promise<Buffer> => {
    const response = await fetch(`http://${host}/v2/${repository}/${path}`, { headers: { accept } });
    if (response.status !== 200) throw new Error(`GET ${host}/${repository}/${path}: ${response.status}`);
    return Buffer.from(await response.arrayBuffer());
  };
  const put = async (reference: string, mediaType: string, body: Buffer): Promise<string> => {
    const response = await fetch(`http://${host}/v2/${repository}/manifests/${reference}`, { method: 'PUT', headers: { 'content-type': mediaType }, body });
    if (response.status !== 201) throw new Error(`manifest put ${reference}: ${response.status} ${await response.text()}`);
    return sha256(body);
  };
  const amdBytes = await get(`manifests/${tag}`, MANIFEST_TYPES);
  const amd = JSON.parse(amdBytes.toString('utf8')) as { mediaType: string; config: { digest: string; mediaType: string }; layers: unknown[] };
  if (!/manifest\.v2\+json|image\.manifest/.test(amd.mediaType)) throw new Error(`${baseRef} is not a single-platform image (${amd.mediaType})`);
  const config = JSON.parse((await get(`blobs/${amd.config.digest}`, '*/*')).toString('utf8')) as Record<string, unknown>;
  const armConfig = Buffer.from(JSON.stringify({ ...config, architecture: 'arm64', variant: 'v8' }));
  const armConfigDigest = await uploadBlob(host, repository, armConfig);
  const armBytes = Buffer.from(JSON.stringify({ ...amd, config: { ...amd.config, size: armConfig.length, digest: armConfigDigest } }));
  const armDigest = await put(sha256(armBytes), amd.mediaType, armBytes);
  const index = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.docker.distribution.manifest.list.v2+json',
      manifests: [
        { mediaType: amd.mediaType, size: amdBytes.length, digest: sha256(amdBytes), platform: { architecture: 'amd64', os: 'linux' } },
        { mediaType: amd.mediaType, size: armBytes.length, digest: armDigest, platform: { architecture: 'arm64', os: 'linux', variant: 'v8' } },
      ],
    }),
  );
  await put(`${tag}-multi`, 'application/vnd.docker.distribution.manifest.list.v2+json', index);
  return `${host}/${repository}:${tag}-multi`;
}

/** Parses `build --json` / `plan --json` output, with the raw text in the error when it is not JSON. */
export function parseJson<T = Record<string, unknown>>(run: CliRun): T {
  try {
    return JSON.parse(run.stdout) as T;
  } catch {
    throw new Error(`stdout is not JSON (exit ${run.code}):\n${run.stdout}\nstderr:\n${run.stderr}`);
  }
}

export interface ImageEntry {
  image: string;
  digest: string;
  python: string;
  status: string;
  steps: string[];
  pullConfig: Record<string, unknown>;
  platforms?: Record<string, { envId: string; image: string; digest: string; sbom?: { digest: string; documentDigest: string } }>;
  /** The SPDX SBOM that refers to the image: its artifact manifest's digest and the document's. */
  sbom?: { digest: string; documentDigest: string };
}
export interface BuildJson {
  /** The --json envelope: true when every image is there, false with `error` and `failures` otherwise. */
  ok: boolean;
  error?: { name: string; code: string; message: string; hint: string | null };
  flow: string;
  images: Record<string, ImageEntry>;
  /** Each step's image; `pinnedImage` (`image@digest`) is absent for a disabled step. */
  steps: Record<string, { envId: string | null; image: string; pinnedImage?: string; python: string }>;
  stateFile: string | null;
  failures?: { envId: string; image: string; steps: string[]; reason: string; hint?: string; logTail: string[] }[];
}

/** What each module import gives inside the image (pulled, run, then removed from the daemon): its version, or the ImportError. */
export async function importsInImage(services: TestServices, image: string, python: string, modules: readonly string[]): Promise<Record<string, string>> {
  const code =
    'import importlib, json, sys\n' +
    'out = {}\n' +
    `for name in ${JSON.stringify(modules)}:\n` +
    '    try:\n' +
    '        out[name] = getattr(importlib.import_module(name), "__version__", "?")\n' +
    '    except ImportError as error:\n' +
    '        out[name] = "ImportError: " + str(error)\n' +
    'print(json.dumps(out))\n';
  const env = { ...process.env, DOCKER_HOST: services.dockerHost ?? '' };
  const result = await run('docker', ['run', '--rm', '--network=host', '--pull=always', image, python, '-c', code], env);
  await run('docker', ['image', 'rm', image], env); // leave the daemon as it was
  if (result.code !== 0) throw new Error(`docker run ${image} ${python} exited ${result.code}: ${result.stderr}`);
  return JSON.parse(result.stdout.trim().split('\n').pop() ?? '{}') as Record<string, string>;
}

/**
 * The JSON document Metaflow printed. Stock Metaflow's @conda step_init may print "Creating local
 * datastore in current directory" on stdout first (it does so under --environment=conda as well).
 */
export function specJson<T>(stdout: string): T {
  const start = stdout.search(/^[{[]/m);
  if (start < 0) throw new Error(`no JSON document on stdout:\n${stdout}`);
  return JSON.parse(stdout.slice(start)) as T;
}

/** A flow whose two steps share one env (tinynum from the fixture channel): one image to build. */
export const ONE_ENV_FLOW = `from metaflow import FlowSpec, conda, conda_base, step


@conda_base(python="3.11")
class OneEnvFlow(FlowSpec):
    @conda(packages={"tinynum": "1.4.0"})
    @step
    def start(self):
        self.next(self.end)

    @conda(packages={"tinynum": "1.4.0"})
    @step
    def end(self):
        pass


if __name__ == "__main__":
    OneEnvFlow()
`;
