// End to end: `prebuilt build` for two platforms (METAFLOW_PREBUILT_PLATFORM=linux-64,linux-aarch64)
// through the real CLI and the plain test registry. Each env is locked and built once per platform
// and published as one image index, which the step pulls. The base image is an index over the test
// base (linux/amd64) and an arm64 stand-in; the linux-aarch64 python is a stand-in too (this
// machine cannot run arm64 code): the amd64 side is run under Docker, the arm64 side is checked by
// its manifest, config and layers. Tests run in order and share one flow and one namespace.
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect } from 'vitest';
import { describeWith, getServices, itWith } from '../services.js';
import {
  aarch64PythonStandIn,
  cliEnv,
  headManifest,
  importsInImage,
  parseJson,
  pushMultiPlatformBase,
  runCli,
  splitTag,
  startFixtures,
  stopFixtures,
  uniqueNamespace,
  writeFlow,
  type BuildJson,
  type Fixtures,
} from './harness.js';

const exec = promisify(execFile);
const services = getServices();
const NEEDS = ['registries', 'baseImage'] as const;
const RUN_NEEDS = ['docker', 'registries', 'baseImage'] as const;

const FLOW = `from metaflow import FlowSpec, conda, conda_base, pypi, step


@conda_base(python="3.11")
class MultiArchFlow(FlowSpec):
    @conda(packages={"tinytool": "", "tinynum": "1.4.0"})
    @step
    def start(self):
        self.next(self.fetch)

    @pypi(packages={"tinyurl": ""})
    @step
    def fetch(self):
        self.next(self.end)

    @conda(packages={"tinytool": "", "tinynum": "1.4.0"})
    @step
    def end(self):
        pass


if __name__ == "__main__":
    MultiArchFlow()
`;

interface LockFileJson {
  envs: Record<string, { platform: string; packages: { name: string; sha256: string; subdir?: string }[] }>;
  steps: Record<string, Record<string, string> | null>;
}

async function getJson<T>(ref: string, reference: string, accept: string): Promise<T> {
  const { host, repository } = splitTag(ref);
  const response = await fetch(`http://${host}/v2/${repository}/${reference}`, { headers: { accept } });
  if (response.status !== 200) throw new Error(`GET ${host}/${repository}/${reference}: ${response.status}`);
  return (await response.json()) as T;
}

const INDEX_TYPES = 'application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json';
const MANIFEST_TYPES = 'application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json';

for (const buildService of ['oci', 'docker'] as const) {
// The Docker daemon builds the arm64 image without emulation: the materialized recipe only COPYs.
const needs = buildService === 'docker' ? RUN_NEEDS : NEEDS;
describeWith(needs, `prebuilt build for linux-64 and linux-aarch64 (${buildService} build service, plain registry): one image index per env`, () => {
  let fixtures: Fixtures;
  let flowDir: string;
  let env: NodeJS.ProcessEnv;
  let first: BuildJson;

  beforeAll(async () => {
    const base = await pushMultiPlatformBase(services.baseImage!.ref);
    // The stand-in aarch64 python has the version of the fixture (Debian) python of linux-64.
    fixtures = await startFixtures((version) => [aarch64PythonStandIn(version)]);
    flowDir = join(fixtures.dir, 'flow');
    await writeFlow(flowDir, 'multi_arch_flow.py', FLOW);
    env = cliEnv(fixtures, services, uniqueNamespace(`multiarch-${buildService}`), {
      METAFLOW_PREBUILT_BUILD_SERVICE: buildService,
      METAFLOW_PREBUILT_PLATFORM: 'linux-64,linux-aarch64',
      METAFLOW_PREBUILT_BASE_IMAGE: base,
    });
  }, 240_000);
  afterAll(async () => {
    await stopFixtures(fixtures);
  });

  const cli = (...args: string[]) => runCli(args, { env, cwd: flowDir });

  itWith(needs, 'plan: two images and one index per env, all missing', async () => {
    const planned = await cli('plan', 'multi_arch_flow.py', '--json');
    expect(planned.code, planned.stderr).toBe(0);
    const plan = parseJson<{ images: Record<string, { status: string; platform: string; platforms?: Record<string, { envId: string; image: string }>; memberOf?: string[] }>; steps: Record<string, { envId: string }> }>(planned);
    const images = Object.entries(plan.images);
    expect(images).toHaveLength(6);
    const indexes = images.filter(([, image]) => image.platforms);
    expect(indexes).toHaveLength(2);
    expect(images.every(([, image]) => image.status === 'missing')).toBe(true);
    expect(indexes.map(([, image]) => Object.keys(image.platforms!))).toEqual([
      ['linux-64', 'linux-aarch64'],
      ['linux-64', 'linux-aarch64'],
    ]);
    // Every step is mapped to its index, not to one platform's image.
    expect(new Set(Object.values(plan.steps).map((step) => step.envId))).toEqual(new Set(indexes.map(([id]) => id)));
  }, 240_000);

  itWith(needs, 'build --json pushes each platform image and an image index naming them; the steps pull the index', async () => {
    const built = await cli('build', 'multi_arch_flow.py', '--json');
    expect(built.code, built.stderr).toBe(0);
    first = parseJson<BuildJson>(built);
    expect(Object.keys(first.images)).toHaveLength(2);
    const start = first.steps['start']!;
    expect(first.steps['end']).toEqual(start);
    expect(start.image).toBe(`${env['METAFLOW_PREBUILT_LOCAL_REGISTRY']}/${env['METAFLOW_PREBUILT_IMAGE_NAMESPACE']}:env-${start.envId}`);
    for (const image of Object.values(first.images)) {
      expect(image.status).toBe('built');
      expect(Object.keys(image.platforms!)).toEqual(['linux-64', 'linux-aarch64']);
      expect(image.platforms!['linux-64']!.image).toMatch(/-amd64$/);
      expect(image.platforms!['linux-aarch64']!.image).toMatch(/-arm64$/);
      expect(await headManifest(image.image)).toEqual({ status: 200, digest: image.digest });
      const index = await getJson<{ mediaType: string; manifests: { digest: string; platform: { architecture: string; os: string } }[] }>(
        image.image,
        `manifests/${image.digest}`,
        INDEX_TYPES,
      );
      // The oci service keeps the base's manifest format (Docker v2 here), so the index is a Docker manifest list.
      expect(index.mediaType).toBe('application/vnd.docker.distribution.manifest.list.v2+json');
      expect(index.manifests.map((m) => [m.platform.os, m.platform.architecture, m.digest])).toEqual([
        ['linux', 'amd64', image.platforms!['linux-64']!.digest],
        ['linux', 'arm64', image.platforms!['linux-aarch64']!.digest],
      ]);
    }
    expect(built.stderr).toBe('');
    // Each index and each platform's image has its SBOM; the report sizes each platform from the index.
    for (const image of Object.values(first.images)) {
      expect(image.sbom?.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
      for (const member of Object.values(image.platforms!)) expect(member.sbom?.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    }
    const report = await cli('report', 'multi_arch_flow.py', '--json', '--step', 'start');
    expect(report.code, report.stderr).toBe(0);
    const [step] = parseJson<{ steps: { index: boolean; digest: string; platforms: { platform: string; digest: string; compressedBytes: number }[] }[] }>(report).steps;
    expect(step).toMatchObject({ index: true, digest: first.images[start.envId!]!.digest });
    expect(step!.platforms.map((p) => [p.platform.split('/').slice(0, 2).join('/'), p.digest])).toEqual([
      ['linux/amd64', first.images[start.envId!]!.platforms!['linux-64']!.digest],
      ['linux/arm64', first.images[start.envId!]!.platforms!['linux-aarch64']!.digest],
    ]);
  }, 300_000);

  itWith(needs, "the arm64 image is built for arm64 from the arm64 base, with the linux-aarch64 packages of the lock", async () => {
    expect(first, 'the build test ran').toBeDefined();
    const lock = JSON.parse(await readFile(join(flowDir, 'multi_arch_flow.prebuilt.lock'), 'utf8')) as LockFileJson;
    const entry = lock.envs[lock.steps['start']!['linux-aarch64']!]!;
    expect(entry.platform).toBe('linux-aarch64');
    const tool = entry.packages.find((p) => p.name === 'tinytool')!;
    expect(tool.subdir).toBe('linux-aarch64');
    const amdTool = lock.envs[lock.steps['start']!['linux-64']!]!.packages.find((p) => p.name === 'tinytool')!;
    expect(amdTool.sha256).not.toBe(tool.sha256);

    const arm = first.images[first.steps['start']!.envId!]!.platforms!['linux-aarch64']!;
    const manifest = await getJson<{ config: { digest: string }; layers: { digest: string }[] }>(arm.image, `manifests/${arm.digest}`, MANIFEST_TYPES);
    const config = await getJson<{ architecture: string; os: string; history: { created_by?: string }[] }>(arm.image, `blobs/${manifest.config.digest}`, '*/*');
    expect([config.os, config.architecture]).toEqual(['linux', 'arm64']);
    if (buildService === 'oci') {
      // One layer per package, its history naming the package file it came from.
      const history = config.history.map((h) => h.created_by ?? '').join('\n');
      expect(history).toContain(`(sha256 ${tool.sha256.slice(0, 12)})`);
      expect(history).not.toContain(`(sha256 ${amdTool.sha256.slice(0, 12)})`);
    }
    const amd = first.images[first.steps['start']!.envId!]!.platforms!['linux-64']!;
    const amdManifest = await getJson<{ config: { digest: string }; layers: { digest: string }[] }>(amd.image, `manifests/${amd.digest}`, MANIFEST_TYPES);
    const amdConfig = await getJson<{ architecture: string }>(amd.image, `blobs/${amdManifest.config.digest}`, '*/*');
    expect(amdConfig.architecture).toBe('amd64');
    // The env layers differ (other tinytool and python files); the base layers are shared.
    expect(manifest.layers.at(-1)!.digest).not.toBe(amdManifest.layers.at(-1)!.digest);
    // The arm64 base's layers come first: the stand-in shares the amd64 base's layers.
    const baseLayers = (await getJson<{ layers: { digest: string }[] }>(services.baseImage!.ref, `manifests/${services.baseImage!.digest}`, MANIFEST_TYPES)).layers;
    expect(manifest.layers.slice(0, baseLayers.length).map((l) => l.digest)).toEqual(baseLayers.map((l) => l.digest));
  }, 120_000);

  itWith(needs, "skopeo agrees on the index digest and resolves it to each platform's image", async () => {
    expect(first, 'the build test ran').toBeDefined();
    const image = first.images[first.steps['start']!.envId!]!;
    for (const [arch, platform] of [['amd64', 'linux-64'], ['arm64', 'linux-aarch64']] as const) {
      const { stdout } = await exec('skopeo', ['inspect', '--tls-verify=false', '--no-creds', '--override-os', 'linux', '--override-arch', arch, `docker://${image.image}`]);
      const inspected = JSON.parse(stdout) as { Digest: string; Architecture: string; Layers: string[] };
      expect(inspected.Digest).toBe(image.digest);
      expect(inspected.Architecture).toBe(arch);
      const member = image.platforms![platform]!;
      const manifest = await getJson<{ layers: { digest: string }[] }>(member.image, `manifests/${member.digest}`, MANIFEST_TYPES);
      expect(inspected.Layers).toEqual(manifest.layers.map((l) => l.digest));
    }
  }, 120_000);

  itWith(RUN_NEEDS, "under Docker the index gives the amd64 image, whose interpreter imports the step's packages", async () => {
    expect(first, 'the build test ran').toBeDefined();
    const start = first.steps['start']!;
    const imports = await importsInImage(services, start.image, start.python, ['tinynum', 'requests']);
    expect(imports['tinynum']).toBe('1.4.0');
    expect(imports['requests']).toBe('2.32.3');
  }, 180_000);

  if (buildService === 'oci') {
    itWith(needs, 'reproducible: a build from an empty cache into another repository gives the same image and index digests', async () => {
      expect(first, 'the build test ran').toBeDefined();
      const fresh = await runCli(['build', 'multi_arch_flow.py', '--json'], {
        env: { ...env, METAFLOW_PREBUILT_IMAGE_NAMESPACE: uniqueNamespace('multiarch-again'), METAFLOW_PREBUILT_CACHE_DIR: join(fixtures.dir, 'fresh-cache') },
        cwd: flowDir,
      });
      expect(fresh.code, fresh.stderr).toBe(0);
      const map = parseJson<BuildJson>(fresh);
      expect(Object.keys(map.images)).toEqual(Object.keys(first.images));
      for (const [id, image] of Object.entries(map.images)) {
        expect(image.status).toBe('built');
        expect(image.digest).toBe(first.images[id]!.digest);
        expect(Object.values(image.platforms!).map((m) => m.digest)).toEqual(Object.values(first.images[id]!.platforms!).map((m) => m.digest));
        // The same lock gives the same SBOMs (licences read again from freshly downloaded packages): same documents, same artifacts.
        expect(image.sbom).toEqual(first.images[id]!.sbom);
        expect(Object.values(image.platforms!).map((m) => m.sbom)).toEqual(Object.values(first.images[id]!.platforms!).map((m) => m.sbom));
      }
    }, 300_000);

    itWith(needs, 'to a registry that needs a login (htpasswd), through the push credentials: the index is pushed and needs them too', async () => {
      const basic = services.registries!.basic;
      const namespace = uniqueNamespace('multiarch-basic');
      const authEnv = {
        ...env,
        METAFLOW_PREBUILT_LOCAL_REGISTRY: basic.host,
        METAFLOW_PREBUILT_LOCAL_REGISTRY_USERNAME: basic.username,
        METAFLOW_PREBUILT_LOCAL_REGISTRY_PASSWORD: basic.password,
        METAFLOW_PREBUILT_IMAGE_NAMESPACE: namespace,
      };
      const built = await runCli(['build', 'multi_arch_flow.py', '--json'], { env: authEnv, cwd: flowDir });
      expect(built.code, built.stderr).toBe(0);
      expect(built.stdout).not.toContain(basic.password);
      const map = parseJson<BuildJson>(built);
      const start = map.steps['start']!;
      expect(start.image).toBe(`${basic.host}/${namespace}:env-${start.envId}`);
      const entry = map.images[start.envId!]!;
      expect(await headManifest(start.image, { username: basic.username, password: basic.password })).toEqual({ status: 200, digest: entry.digest });
      expect((await headManifest(start.image)).status).toBe(401);
    }, 300_000);
  }

  itWith(needs, 'build again pushes nothing: every platform image and index is present', async () => {
    expect(first, 'the build test ran').toBeDefined();
    const again = await cli('build', 'multi_arch_flow.py', '--json');
    expect(again.code, again.stderr).toBe(0);
    const map = parseJson<BuildJson>(again);
    expect(map.steps).toEqual(first.steps);
    for (const [id, image] of Object.entries(map.images)) {
      expect(image.status).toBe('present');
      expect(image.digest).toBe(first.images[id]!.digest);
      expect(image.platforms).toEqual(first.images[id]!.platforms);
    }
    const human = await cli('build', 'multi_arch_flow.py');
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout).toMatch(/PLATFORM/);
    expect(human.stdout).toMatch(/linux-64\+linux-aarch64/);
  }, 240_000);
});
}
