#!/usr/bin/env node
/**
 * B6 — second platform: what adding linux-aarch64 to a linux-64 env costs, per build service, in
 * bytes pushed to the registry and in time. Through the real CLI, for each build service (`oci`,
 * `docker`) and each run, on a fresh repository:
 *
 *   first  — `prebuilt build flow.py` with METAFLOW_PREBUILT_PLATFORM=linux-64: the env's linux-64
 *            image is built and pushed (the repository is empty; the base layers are mounted from
 *            the base image's repository of the same registry);
 *   second — the same with METAFLOW_PREBUILT_PLATFORM=linux-64,linux-aarch64: the linux-64 image
 *            is found in the registry (HEAD), the linux-aarch64 image is built and pushed into the
 *            same repository, then the image index over both.
 *
 * The env: the conda python, 2 arch-specific conda packages (a native library and a python
 * extension, present for linux-64 and linux-aarch64) and N synthetic noarch python packages —
 * the same bytes, at the same paths under /opt/prebuilt/env, on both platforms. The `oci` service
 * pushes one layer per package and only the blobs the registry lacks, so the second image should
 * only send its arch-specific layers and a few small ones; the `docker` service pushes one COPY
 * layer of the whole prefix per image.
 *
 * Stand-ins (this machine cannot run arm64 code; nothing here runs the arm64 image):
 *   - linux-aarch64 python: the linux-64 fixture python (Debian's python3.11 repackaged) with
 *     `bin/python3.X` replaced by a shell script that says what it is; the x86-64 interpreter's
 *     bytes are kept beside it (`bin/.python3.X-standin-payload`) so the package has the size of a
 *     real one, and every file of it still lands in a layer the linux-64 image does not have.
 *   - the arch-specific packages' binaries: deterministic machine-code-like bytes (about 2:1 under
 *     gzip), other bytes per platform.
 *   - the base: an image index (prebuilt-bench/base-multi:bookworm) over the test base image
 *     (linux/amd64) and an arm64 manifest with the same layers under a config that says arm64.
 *
 * Bytes pushed: every byte the CLI, its build service and the Docker daemon send to the registry
 * (HTTP headers too), counted by a TCP proxy in front of it. Each (run, service) gets its own
 * proxy, so its own registry host name: the Docker daemon remembers which repositories of a host
 * it pushed a layer to and mounts it from there, and would otherwise mount the env layers pushed
 * by an earlier run, which a real first push of a platform never finds. The base image is
 * addressed through the same proxy (METAFLOW_PREBUILT_BASE_IMAGE), as a team that keeps its base
 * images beside its env images. The daemon, though, records where a layer lives only when it
 * downloads or uploads it, not when it pulls an image whose layers it has already: so before a
 * docker run it pushes the base once to the new host (untimed, not counted), as it would know the
 * base's layers there after pulling it. Time: wall time of the CLI process (start-up,
 * reading the flow, the lock, HEADs, materializing, build, push). Untimed beforehand: the lock for
 * both platforms (restored before every build, so nothing is resolved), one build per service (the
 * package cache and the oci layer cache are warm, as on a machine that built the env before).
 * Runs alternate between the services (AB, BA, …).
 *
 *   pnpm build && bash scripts/test-services.sh up
 *   node bench/second-platform.mjs [--runs 3] [--port 5186] [--packages 20] [--file-size 32768] [--arch-size 2097152] [--json]
 *
 * --file-size: bytes of each of a noarch package's 6 modules; --arch-size: bytes of the native
 * library (the extension module is half of it).
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { lstat, mkdir, readdir, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { alternate, benchArgs, benchDir, cliEnv, countingProxy, fail, fmtBytes, fmtMs, loadFixtures, loadServices, machine, main, output, prebuilt, ratio, serveFixtures, stats, timed, writeFlowProject } from './lib.mjs';

const exec = promisify(execFile);
const args = benchArgs(
  { runs: 3 },
  {
    port: { type: 'string', default: '5186' },
    packages: { type: 'string', default: '20' },
    'file-size': { type: 'string', default: '32768' },
    'arch-size': { type: 'string', default: '2097152' },
  },
);
const COUNT = Number(args.packages);
if (!Number.isInteger(COUNT) || COUNT < 1 || COUNT > 200) fail(`--packages must be an integer from 1 to 200 (got ${args.packages})`);
const FILE_SIZE = Number(args['file-size']);
if (!Number.isInteger(FILE_SIZE) || FILE_SIZE < 64 || FILE_SIZE > 16 << 20) fail(`--file-size must be an integer from 64 to 16777216 (got ${args['file-size']})`);
const ARCH_SIZE = Number(args['arch-size']);
if (!Number.isInteger(ARCH_SIZE) || ARCH_SIZE < 1024 || ARCH_SIZE > 256 << 20) fail(`--arch-size must be an integer from 1024 to 268435456 (got ${args['arch-size']})`);

const PLATFORMS = ['linux-64', 'linux-aarch64'];
const MACHINE = { 'linux-64': 'x86_64', 'linux-aarch64': 'aarch64' };
const BASE_REPOSITORY = 'prebuilt-bench/base-multi';
const BASE_TAG = 'bookworm';
const SINGLE_TYPES = 'application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json';
const LIST_TYPE = 'application/vnd.docker.distribution.manifest.list.v2+json';

const sha256 = (data) => `sha256:${createHash('sha256').update(data).digest('hex')}`;

/** `size` deterministic bytes from `seed` that compress about 2:1 under gzip, as machine code does: 8 random bytes, then one of 16 recurring 8-byte patterns. */
function machineCodeLike(seed, size) {
  const out = Buffer.alloc(size);
  const patterns = Array.from({ length: 16 }, (_, i) => createHash('sha256').update(`${seed}/pattern/${i}`).digest().subarray(0, 8));
  let block = createHash('sha256').update(seed).digest();
  for (let offset = 0; offset < size; offset += 16) {
    block = createHash('sha256').update(block).digest();
    block.copy(out, offset, 0, Math.min(8, size - offset));
    if (offset + 8 < size) patterns[block[8] & 15].copy(out, offset + 8, 0, Math.min(8, size - offset - 8));
  }
  return out;
}

/** The two arch-specific packages, once per platform: a native library and a python extension that links it. */
function archPackages(minor) {
  const abi = `cpython-${minor.replace('.', '')}`;
  return PLATFORMS.flatMap((subdir) => [
    {
      name: 'bsixnative',
      version: '2.1.0',
      subdir,
      summary: `Synthetic native library for ${subdir} (benchmark fixture; its bytes stand in for machine code)`,
      files: [
        { path: 'lib/libbsixnative.so.2', content: machineCodeLike(`bsixnative/${subdir}`, ARCH_SIZE), mode: 0o755 },
        { path: 'lib/libbsixnative.so', symlink: 'libbsixnative.so.2' },
      ],
      formats: ['.conda'],
    },
    {
      name: 'bsixaccel',
      version: '0.9.0',
      subdir,
      depends: [`python >=${minor},<${minor.split('.')[0]}.${Number(minor.split('.')[1]) + 1}`, 'bsixnative >=2.1'],
      summary: `Synthetic python extension for ${subdir} (benchmark fixture; its bytes stand in for machine code)`,
      files: [
        { path: `lib/python${minor}/site-packages/bsixaccel/__init__.py`, content: 'from ._accel import *  # noqa: F401,F403\n' },
        {
          path: `lib/python${minor}/site-packages/bsixaccel/_accel.${abi}-${MACHINE[subdir]}-linux-gnu.so`,
          content: machineCodeLike(`bsixaccel/${subdir}`, Math.floor(ARCH_SIZE / 2)),
          mode: 0o755,
        },
      ],
      formats: ['.conda'],
    },
  ]);
}

/**
 * The linux-aarch64 python stand-in: the files of the linux-64 fixture python (`artifact`, its
 * .tar.bz2), with `bin/python3.X` a shell script and the x86-64 interpreter's bytes kept as
 * `bin/.python3.X-standin-payload`, so that the package is as large as the real one.
 */
async function aarch64PythonStandIn(artifact, dir) {
  const version = artifact.record.version;
  const minor = version.split('.').slice(0, 2).join('.');
  const archive = join(dir, artifact.filename);
  const tree = join(dir, 'tree');
  await mkdir(tree, { recursive: true });
  await writeFile(archive, artifact.bytes);
  await exec('tar', ['-xjf', archive, '-C', tree]);
  const files = [];
  const walk = async (absolute, relative) => {
    for (const entry of (await readdir(absolute, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const path = relative ? `${relative}/${entry.name}` : entry.name;
      const full = join(absolute, entry.name);
      if (path === 'info') continue;
      if (entry.isDirectory()) await walk(full, path);
      else if (entry.isSymbolicLink()) files.push({ path, symlink: await readlink(full) });
      else {
        const st = await lstat(full);
        files.push({ path, content: await readFile(full), mode: st.mode & 0o111 ? 0o755 : 0o644 });
      }
    }
  };
  await walk(tree, '');
  const interpreter = files.find((f) => f.path === `bin/python${minor}`);
  if (!interpreter?.content) throw new Error(`the fixture python ${artifact.filename} has no bin/python${minor}`);
  interpreter.content = `#!/bin/sh\necho "stand-in linux-aarch64 python ${version} (benchmark fixture; arm64 code cannot run here)"\n`;
  files.push({ path: `bin/.python${minor}-standin-payload`, content: await readFile(join(tree, 'bin', `python${minor}`)), mode: 0o644 });
  await rm(tree, { recursive: true, force: true });
  await rm(archive, { force: true });
  return {
    name: 'python',
    version,
    subdir: 'linux-aarch64',
    summary: 'Stand-in linux-aarch64 python: the linux-64 fixture python with a shell script as interpreter (arm64 code cannot run here)',
    files,
    formats: ['.conda'],
  };
}

/** Registry API of the plain test registry (not through the proxy: setting up is not measured). */
function registryApi(host) {
  const url = (repository, path) => `http://${host}/v2/${repository}/${path}`;
  const check = async (response, what, ...ok) => {
    if (!ok.includes(response.status)) throw new Error(`${what}: HTTP ${response.status} ${(await response.text()).slice(0, 200)}`);
    return response;
  };
  return {
    async get(repository, path, accept) {
      const response = await check(await fetch(url(repository, path), { headers: { accept } }), `GET ${host}/${repository}/${path}`, 200);
      return Buffer.from(await response.arrayBuffer());
    },
    /** Makes `digest` a blob of `repository`: mounted from `from`, else uploaded from `data()`. */
    async blob(repository, digest, from, data) {
      if ((await fetch(url(repository, `blobs/${digest}`), { method: 'HEAD' })).status === 200) return;
      const started = await check(
        await fetch(url(repository, `blobs/uploads/?mount=${encodeURIComponent(digest)}${from ? `&from=${encodeURIComponent(from)}` : ''}`), { method: 'POST' }),
        `mount ${digest} into ${host}/${repository}`,
        201,
        202,
      );
      if (started.status === 201) return;
      const location = new URL(started.headers.get('location') ?? '', `http://${host}`);
      location.searchParams.set('digest', digest);
      await check(await fetch(location, { method: 'PUT', headers: { 'content-type': 'application/octet-stream' }, body: await data() }), `upload ${digest} to ${host}/${repository}`, 201);
    },
    async putManifest(repository, reference, mediaType, body) {
      await check(await fetch(url(repository, `manifests/${reference}`), { method: 'PUT', headers: { 'content-type': mediaType }, body }), `PUT ${host}/${repository}:${reference}`, 201);
    },
  };
}

/**
 * The multi-platform base: `BASE_REPOSITORY:BASE_TAG` in the registry of `baseRef`, an image index
 * over `baseRef` (linux/amd64, layers mounted from its repository) and an arm64 stand-in — the
 * same layers under a config that says arm64. Deterministic, so pushing it again changes nothing.
 * Returns the sizes of its layers (the same for both platforms).
 */
async function pushMultiPlatformBase(host, baseRef) {
  const api = registryApi(host);
  const [, repository, tag] = /^[^/]+\/(.+):([^:/]+)$/.exec(baseRef) ?? [];
  if (!repository) throw new Error(`cannot read the base image reference ${baseRef}`);
  const amdBytes = await api.get(repository, `manifests/${tag}`, SINGLE_TYPES);
  const amd = JSON.parse(amdBytes.toString('utf8'));
  if (!amd.config || !Array.isArray(amd.layers)) throw new Error(`${baseRef} is not a single-platform image (${amd.mediaType})`);
  for (const blob of [amd.config, ...amd.layers]) {
    await api.blob(BASE_REPOSITORY, blob.digest, repository, () => api.get(repository, `blobs/${blob.digest}`, '*/*'));
  }
  await api.putManifest(BASE_REPOSITORY, sha256(amdBytes), amd.mediaType, amdBytes);
  const config = JSON.parse((await api.get(repository, `blobs/${amd.config.digest}`, '*/*')).toString('utf8'));
  const armConfig = Buffer.from(JSON.stringify({ ...config, architecture: 'arm64', variant: 'v8' }));
  await api.blob(BASE_REPOSITORY, sha256(armConfig), undefined, async () => armConfig);
  const armBytes = Buffer.from(JSON.stringify({ ...amd, config: { ...amd.config, size: armConfig.length, digest: sha256(armConfig) } }));
  await api.putManifest(BASE_REPOSITORY, sha256(armBytes), amd.mediaType, armBytes);
  const index = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: LIST_TYPE,
      manifests: [
        { mediaType: amd.mediaType, size: amdBytes.length, digest: sha256(amdBytes), platform: { architecture: 'amd64', os: 'linux' } },
        { mediaType: amd.mediaType, size: armBytes.length, digest: sha256(armBytes), platform: { architecture: 'arm64', os: 'linux', variant: 'v8' } },
      ],
    }),
  );
  await api.putManifest(BASE_REPOSITORY, BASE_TAG, LIST_TYPE, index);
  return amd.layers.map((l) => l.digest);
}

await main(async (defer) => {
  const services = loadServices();
  const registryHost = services.registries.plain.host;
  const dir = await benchDir(defer, 'b6');
  const fixtures = await loadFixtures();

  // The fixture set: the real linux-64 python (built once, cached by @prebuilt/fixtures), its
  // linux-aarch64 stand-in, the arch-specific packages and the noarch ones.
  const python64 = (await fixtures.buildDebianPythonPackage()).find((a) => a.filename.endsWith('.tar.bz2'));
  if (!python64) throw new Error('the fixture python has no .tar.bz2 artifact');
  const minor = python64.record.version.split('.').slice(0, 2).join('.');
  await mkdir(join(dir, 'standin'));
  const standIn = await aarch64PythonStandIn(python64, join(dir, 'standin'));
  const noarch = fixtures.syntheticFixtureSet({ count: COUNT, wheelCount: 0, prefix: 'bsix', fileSize: FILE_SIZE });
  const arch = archPackages(minor);
  const { generated, server } = await serveFixtures(defer, dir, {
    port: Number(args.port),
    extra: [noarch, { conda: [...arch, standIn], wheels: [] }],
  });

  const packages = Object.fromEntries([...new Set(arch.map((p) => p.name)), ...noarch.condaNames].map((name) => [name, '']));
  // Two steps, one env.
  const project = await writeFlowProject(dir, 'SecondPlatformFlow', [{ decorator: 'conda', packages }, { decorator: 'conda', packages }]);
  const baseLayers = await pushMultiPlatformBase(registryHost, services.baseImage.ref);
  const cacheDir = join(dir, 'cache');
  const envFor = (registry, namespace, platforms, service) =>
    cliEnv({
      server,
      generated,
      services,
      cacheDir,
      extra: {
        ...(services.dockerHost ? { DOCKER_HOST: services.dockerHost } : {}),
        METAFLOW_PREBUILT_LOCAL_REGISTRY: registry,
        METAFLOW_PREBUILT_BASE_IMAGE: `${registry}/${BASE_REPOSITORY}:${BASE_TAG}`,
        METAFLOW_PREBUILT_IMAGE_NAMESPACE: namespace,
        METAFLOW_PREBUILT_PLATFORM: platforms.join(','),
        METAFLOW_PREBUILT_BUILD_SERVICE: service,
      },
    });

  // Untimed: the lock for both platforms, kept and put back before every build.
  const lockPath = join(project, 'flow.prebuilt.lock');
  await prebuilt(['lock', 'flow.py'], { cwd: project, env: envFor(registryHost, 'prebuilt-bench/b6-lock', PLATFORMS, 'oci') });
  const lockText = await readFile(lockPath, 'utf8');
  const lock = JSON.parse(lockText);
  const composition = {};
  for (const platform of PLATFORMS) {
    const entry = lock.envs[lock.steps.start[platform]];
    if (!entry) throw new Error(`the lock has no ${platform} env for step start`);
    const sum = (f) => entry.packages.filter(f).reduce((s, p) => s + p.size, 0);
    composition[platform] = {
      packages: entry.packages.length,
      bytes: sum(() => true),
      noarchBytes: sum((p) => p.subdir === 'noarch'),
      archBytes: sum((p) => p.subdir === platform),
      archPackages: entry.packages.filter((p) => p.subdir === platform).map((p) => p.name),
      noarchPackages: entry.packages.filter((p) => p.subdir === 'noarch').length,
    };
  }

  /** Sum of the compressed sizes of an image's layers above the base (what a push may have to send). */
  const envLayerBytes = async (image, digest) => {
    const repository = image.slice(image.indexOf('/') + 1).replace(/:[^:/]+$/, '');
    const manifest = JSON.parse((await registryApi(registryHost).get(repository, `manifests/${digest}`, SINGLE_TYPES)).toString('utf8'));
    return manifest.layers.filter((l) => !baseLayers.includes(l.digest)).reduce((s, l) => s + l.size, 0);
  };

  const dockerCli = (cliArgs) => timed('docker', cliArgs, { env: { ...process.env, ...(services.dockerHost ? { DOCKER_HOST: services.dockerHost } : {}) } });
  const amdBase = JSON.parse((await registryApi(registryHost).get(BASE_REPOSITORY, `manifests/${BASE_TAG}`, LIST_TYPE)).toString('utf8')).manifests.find(
    (m) => m.platform.architecture === 'amd64',
  ).digest;
  /** The daemon learns that the base's layers are in `host` (see the header): it pushes the base there once. */
  const seedDaemon = async (host) => {
    const pinned = `${host}/${BASE_REPOSITORY}@${amdBase}`;
    const seed = `${host}/${BASE_REPOSITORY}:${BASE_TAG}-seed`;
    await dockerCli(['pull', pinned]);
    await dockerCli(['tag', pinned, seed]);
    await dockerCli(['push', seed]);
  };
  /** Drops the daemon's references to images under `host` (the pulled base, the seed tag); the images stay under their other names. */
  const forgetHost = async (host) => {
    const listed = await dockerCli(['images', '--digests', '--format', '{{.Repository}} {{.Tag}} {{.Digest}}']);
    const refs = listed.stdout
      .split('\n')
      .map((line) => line.split(' '))
      .filter(([repository]) => repository?.startsWith(`${host}/`))
      .map(([repository, tag, digest]) => (tag && tag !== '<none>' ? `${repository}:${tag}` : `${repository}@${digest}`));
    for (const ref of new Set(refs)) await dockerCli(['image', 'rm', '--no-prune', ref]).catch(() => {});
  };

  const build = async (proxy, namespace, platforms, service) => {
    await writeFile(lockPath, lockText);
    proxy.state.sent = 0;
    const r = await prebuilt(['build', 'flow.py', '--json'], { cwd: project, env: envFor(proxy.host, namespace, platforms, service) });
    const bytes = proxy.state.sent;
    const images = Object.values(JSON.parse(r.stdout).images);
    if (images.length !== 1 || images[0].status !== 'built') throw new Error(`${service}, ${platforms.join('+')}: expected 1 built image, got ${images.map((i) => i.status).join(', ') || 'none'}`);
    return { ms: r.ms, bytes, image: images[0] };
  };
  const measure = (service) => async () => {
    // A new proxy, so a new registry host for the Docker daemon, and a new repository.
    const proxy = await countingProxy(registryHost);
    try {
      if (service === 'docker') await seedDaemon(proxy.host);
      const namespace = `prebuilt-bench/b6-${service}-${randomBytes(4).toString('hex')}`;
      const first = await build(proxy, namespace, ['linux-64'], service);
      const second = await build(proxy, namespace, PLATFORMS, service);
      const members = second.image.platforms ?? {};
      if (members['linux-64']?.digest !== first.image.digest) throw new Error(`${service}: the second build did not reuse the linux-64 image (${members['linux-64']?.digest} vs ${first.image.digest})`);
      const arm = members['linux-aarch64'];
      if (!arm) throw new Error(`${service}: the second build has no linux-aarch64 image`);
      return {
        first: { ms: first.ms, bytes: first.bytes, layerBytes: await envLayerBytes(first.image.image, first.image.digest) },
        second: { ms: second.ms, bytes: second.bytes, layerBytes: await envLayerBytes(arm.image, arm.digest) },
      };
    } finally {
      if (service === 'docker') await forgetHost(proxy.host);
      await proxy.close();
    }
  };

  // Untimed: one build of both platforms per service (package cache, oci layer cache, base pulled by the daemon).
  for (const service of ['oci', 'docker']) {
    const proxy = await countingProxy(registryHost);
    try {
      if (service === 'docker') await seedDaemon(proxy.host);
      await build(proxy, `prebuilt-bench/b6-warm-${service}-${randomBytes(4).toString('hex')}`, PLATFORMS, service);
    } finally {
      if (service === 'docker') await forgetHost(proxy.host);
      await proxy.close();
    }
  }

  const atStart = machine();
  const [ociRuns, dockerRuns] = await alternate(args.runs, measure('oci'), measure('docker'));
  const summarize = (runs) => {
    const f = {
      first: { time: stats(runs.map((r) => r.first.ms)), bytes: stats(runs.map((r) => r.first.bytes)), envLayerBytes: runs[0].first.layerBytes },
      second: { time: stats(runs.map((r) => r.second.ms)), bytes: stats(runs.map((r) => r.second.bytes)), envLayerBytes: runs[0].second.layerBytes },
    };
    return { ...f, secondVsFirst: { time: ratio(f.second.time.median, f.first.time.median), bytes: ratio(f.second.bytes.median, f.first.bytes.median) } };
  };
  const oci = summarize(ociRuns);
  const docker = summarize(dockerRuns);
  const result = {
    benchmark: 'B6 second platform: linux-aarch64 added to a linux-64 env, oci vs docker build service',
    noarchPackages: COUNT,
    fileSize: FILE_SIZE,
    archSize: ARCH_SIZE,
    env: composition,
    runs: args.runs,
    oci,
    docker,
    ociVsDocker: {
      secondTime: ratio(oci.second.time.median, docker.second.time.median),
      secondBytes: ratio(oci.second.bytes.median, docker.second.bytes.median),
      firstTime: ratio(oci.first.time.median, docker.first.time.median),
      firstBytes: ratio(oci.first.bytes.median, docker.first.bytes.median),
    },
    machineAtStart: atStart,
    machine: machine(),
  };
  const range = (s, fmt) => `${fmt(s.median)} (${fmt(s.min)}–${fmt(s.max)})`;
  const rows = (name, f) => [
    `  ${name.padEnd(7)} first  (linux-64):        time ${range(f.first.time, fmtMs).padEnd(26)} pushed ${range(f.first.bytes, fmtBytes).padEnd(34)} env layers ${fmtBytes(f.first.envLayerBytes)}`,
    `  ${''.padEnd(7)} second (+ linux-aarch64): time ${range(f.second.time, fmtMs).padEnd(26)} pushed ${range(f.second.bytes, fmtBytes).padEnd(34)} env layers ${fmtBytes(f.second.envLayerBytes)}`,
    `  ${''.padEnd(7)} second/first: time ${f.secondVsFirst.time}, bytes ${f.secondVsFirst.bytes}`,
  ];
  const c64 = composition['linux-64'];
  const cArm = composition['linux-aarch64'];
  output(args, result, [
    `B6 second platform — one env: ${c64.archPackages.join(', ')} (arch-specific) + ${c64.noarchPackages} noarch conda packages (package files: linux-64 ${fmtBytes(c64.bytes)}, linux-aarch64 ${fmtBytes(cArm.bytes)}, of which noarch ${fmtBytes(c64.noarchBytes)}); linux-aarch64 python and binaries are stand-ins`,
    `  medians of ${args.runs} alternating runs, min–max in brackets; pushed: bytes sent to the registry (counting proxy); time: the \`prebuilt build\` process; env layers: compressed layers above the base in that image`,
    ...rows('oci', oci),
    ...rows('docker', docker),
    `  oci/docker: second platform time ${result.ociVsDocker.secondTime}, bytes ${result.ociVsDocker.secondBytes}; first platform time ${result.ociVsDocker.firstTime}, bytes ${result.ociVsDocker.firstBytes}`,
    `  machine at start: load average ${atStart.loadAverage.join(' ')}`,
  ]);
});
