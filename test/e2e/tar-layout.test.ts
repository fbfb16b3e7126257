// End to end: back from EROFS layers to tar layers, through the real CLI, the test Docker daemon
// and the plain test registry. A flow with 2 envs is built by the oci service with EROFS layers
// (each manifest records `dev.prebuilt.erofs`); then, with the docker build service (some nodes
// have no erofs snapshotter), `plan` shows both images missing and why — a plan with kaniko too
// (installed in the project),
// none of its settings set: a plan creates no build service to know it makes tar layers —, the
// build rebuilds them under the same tags with tar layers and no record, a second build is a
// no-op, and an oci gzip build keeps them (tar images stay whatever their codec). The tests of
// this file run in order.
import { mkdir, symlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, expect } from 'vitest';
import { describeWith, getServices, itWith } from '../services.js';
import { cliEnv, MANIFEST_TYPES, parseJson, ROOT, runCli, splitTag, startFixtures, stopFixtures, uniqueNamespace, writeFlow, type BuildJson, type Fixtures } from './harness.js';

const services = getServices();
// erofsContainerd: the test services' mkfs.erofs ≥ 1.8, which the erofs build runs.
const NEEDS = ['docker', 'registries', 'baseImage', 'erofsContainerd'] as const;
const EROFS_TYPE = 'application/vnd.oci.image.layer.v1.erofs';

const FLOW = `from metaflow import FlowSpec, conda, conda_base, pypi, step


@conda_base(python="3.11")
class BackToTarFlow(FlowSpec):
    @conda(packages={"tinyframe": ""})
    @step
    def start(self):
        self.next(self.end)

    @pypi(packages={"tinyhttp": ""})
    @step
    def end(self):
        pass


if __name__ == "__main__":
    BackToTarFlow()
`;

type PlanJson = { images: Record<string, { image: string; status: string; reason?: string; layout?: string }> };
type Manifest = { layers: { mediaType: string }[]; annotations?: Record<string, string> };

/** The image manifest a digest names in the plain registry. */
async function manifestOf(image: string, digest: string): Promise<Manifest> {
  const { host, repository } = splitTag(image);
  const response = await fetch(`http://${host}/v2/${repository}/manifests/${digest}`, { headers: { accept: MANIFEST_TYPES } });
  expect(response.status, `manifest ${host}/${repository}@${digest}`).toBe(200);
  return (await response.json()) as Manifest;
}

describeWith(NEEDS, 'back from EROFS layers to tar layers (real CLI: oci erofs build, then the docker build service)', () => {
  let fixtures: Fixtures;
  let flowDir: string;
  let env: NodeJS.ProcessEnv;
  let erofs: BuildJson;
  let tar: BuildJson;

  beforeAll(async () => {
    fixtures = await startFixtures();
    flowDir = join(fixtures.dir, 'flow');
    await writeFlow(flowDir, 'back_to_tar_flow.py', FLOW);
    const mkfs = dirname(services.erofsContainerd!.mkfsErofs.path);
    env = cliEnv(fixtures, services, uniqueNamespace('tar-layout'), { PATH: `${mkfs}:${process.env['PATH'] ?? ''}` });
  });
  afterAll(async () => {
    await stopFixtures(fixtures);
  });

  const cli = (extra: NodeJS.ProcessEnv, ...args: string[]) => runCli(args, { env: { ...env, ...extra }, cwd: flowDir });
  const build = async (extra: NodeJS.ProcessEnv = {}): Promise<BuildJson> => {
    const result = await cli(extra, 'build', 'back_to_tar_flow.py', '--json');
    const json = parseJson<BuildJson>(result);
    expect(result.code, JSON.stringify(json.failures ?? result.stderr)).toBe(0);
    return json;
  };
  const statuses = (json: BuildJson | PlanJson) => Object.values(json.images).map((image) => image.status);
  const OCI_EROFS = { METAFLOW_PREBUILT_BUILD_SERVICE: 'oci', METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION: 'erofs', METAFLOW_PREBUILT_OCI_RUNNERS: 'containerd@2.1' };

  itWith(NEEDS, 'the oci service builds both images with EROFS layers, each manifest recording their media type', async () => {
    erofs = await build(OCI_EROFS);
    expect(statuses(erofs)).toEqual(['built', 'built']);
    for (const image of Object.values(erofs.images)) {
      const manifest = await manifestOf(image.image, image.digest);
      expect(manifest.annotations).toEqual({ 'dev.prebuilt.erofs': EROFS_TYPE });
      expect(manifest.layers.some((layer) => layer.mediaType === EROFS_TYPE)).toBe(true);
    }
  }, 600_000);

  itWith(NEEDS, 'plan with the docker build service: both images missing, saying why; with kaniko (none of its settings) too, naming it', async () => {
    const reason = 'built with EROFS layers; the docker build service makes tar layers';
    const json = await cli({}, 'plan', 'back_to_tar_flow.py', '--json');
    expect(json.code, json.stderr).toBe(0);
    const plan = parseJson<PlanJson>(json);
    expect(Object.values(plan.images).map((image) => [image.image, image.status, image.reason, image.layout])).toEqual(
      Object.values(erofs.images).map((image) => [image.image, 'missing', reason, undefined]),
    );
    const text = await cli({}, 'plan', 'back_to_tar_flow.py');
    expect(text.code, text.stderr).toBe(0);
    // The reason once below the table, naming both images; the STATUS column says only `will rebuild`.
    expect(text.stdout.split(`will rebuild: ${reason}`)).toHaveLength(2);
    expect(text.stdout).toContain(`will rebuild: ${reason} (env ${Object.keys(plan.images).join(', ')})`);
    expect(text.stdout.match(/ will rebuild {2}/g)).toHaveLength(2);
    // kaniko installed in the project, as `npm i -D @prebuilt/kaniko` would (a plan finds the selected service, never creates it).
    await mkdir(join(flowDir, 'node_modules', '@prebuilt'), { recursive: true });
    await symlink(join(ROOT, 'packages', 'kaniko'), join(flowDir, 'node_modules', '@prebuilt', 'kaniko'));
    const kaniko = await cli({ METAFLOW_PREBUILT_BUILD_SERVICE: 'kaniko' }, 'plan', 'back_to_tar_flow.py', '--json');
    expect(kaniko.code, kaniko.stderr).toBe(0);
    expect(Object.values(parseJson<PlanJson>(kaniko).images).map((image) => image.reason)).toEqual([
      'built with EROFS layers; the kaniko build service makes tar layers',
      'built with EROFS layers; the kaniko build service makes tar layers',
    ]);
  }, 300_000);

  itWith(NEEDS, 'the docker build rebuilds both under the same tags: tar layers, no EROFS layer, no record', async () => {
    tar = await build();
    expect(statuses(tar)).toEqual(['built', 'built']);
    for (const [envId, image] of Object.entries(tar.images)) {
      expect(image.image).toBe(erofs.images[envId]!.image);
      expect(image.digest).not.toBe(erofs.images[envId]!.digest);
      const manifest = await manifestOf(image.image, image.digest);
      expect(manifest.annotations?.['dev.prebuilt.erofs']).toBeUndefined();
      expect(manifest.layers.map((layer) => layer.mediaType).filter((type) => /erofs/.test(type))).toEqual([]);
      expect(manifest.layers.every((layer) => /tar/.test(layer.mediaType)), manifest.layers.map((layer) => layer.mediaType).join(', ')).toBe(true);
    }
  }, 600_000);

  itWith(NEEDS, 'a second docker build is a no-op (both present, same digests); plan agrees; an oci gzip build keeps the tar images', async () => {
    const again = await build();
    expect(Object.entries(again.images).map(([envId, image]) => [envId, image.status, image.digest])).toEqual(
      Object.entries(tar.images).map(([envId, image]) => [envId, 'present', image.digest]),
    );
    const plan = parseJson<PlanJson>(await cli({}, 'plan', 'back_to_tar_flow.py', '--json'));
    expect(Object.values(plan.images).map((image) => [image.status, image.reason])).toEqual([['present', undefined], ['present', undefined]]);
    const gzip = await build({ METAFLOW_PREBUILT_BUILD_SERVICE: 'oci', METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION: 'gzip' });
    expect(Object.values(gzip.images).map((image) => [image.status, image.digest])).toEqual(Object.values(tar.images).map((image) => ['present', image.digest]));
  }, 300_000);
});
