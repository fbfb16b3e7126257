/**
 * `prebuilt gc` through the real CLI (node bin/prebuilt.js, after `pnpm build`) on the real local
 * registry (deletes enabled) and a FAKE Kubernetes API server holding Argo objects: what each keep
 * source keeps, what goes (an unreferenced image with its SBOM), the dry run, --yes, --keep-days,
 * the base image, --json, and the errors.
 */
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { mkdirSync, rmSync, symlinkSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { pushReferrer } from '@prebuilt/core';
import { RegistryClient } from '@prebuilt/core/backend';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { startFlakyProxy, type Fault } from '../../../core/src/registry/__fixtures__/flaky-proxy.js';
import { pushImage, pushIndex, uniqueRepo, type PushedImage } from '../../../core/src/registry/__fixtures__/push-image.js';
import { FakeKubernetesApi } from '../__fixtures__/fake-kubernetes-api.js';
import { garbageCollect, type GcProgress } from '../app/gc-run.js';
import { ImageUseMarks } from '../app/image-use-marks.js';
import { renderGc } from './gc.js';
import { describeOrFailInCi, prebuilt, registryMissing, services } from '../lifecycle/__fixtures__/flow-with-images.js';

interface GcJsonItem {
  digest: string;
  tags: string[];
  kind: string;
  size?: number;
  reason: string;
}
interface GcJson {
  ok: boolean;
  registry: string;
  repository: string;
  dryRun: boolean;
  deleted: GcJsonItem[];
  kept: GcJsonItem[];
  reclaimedBytes: number;
  notes: string[];
  error?: { code: string; message: string; hint?: string };
}

const NS = 'metaflow';
const ARGO = `/apis/argoproj.io/v1alpha1/namespaces/${NS}`;

/** A repository with: images a map, a WorkflowTemplate, a CronWorkflow name; an index a Workflow names; the base image; an orphan with its SBOM. */
interface World {
  dir: string;
  repo: string;
  host: string;
  mapped: PushedImage;
  template: PushedImage;
  cron: PushedImage;
  index: { digest: string; amd64: PushedImage; arm64: PushedImage };
  base: PushedImage;
  orphan: PushedImage;
  sbom: string;
  kube: FakeKubernetesApi;
  env: Record<string, string>;
}

/** `host`: where the world's images are pushed and named (the local registry, or a proxy in front of it). */
async function createWorld(prefix: string, host = services.registries!.plain.host): Promise<World> {
  const dir = await mkdtemp(join(tmpdir(), `prebuilt-${prefix}-`));
  const repo = uniqueRepo(prefix);
  const target = { host };
  const [mapped, template, cron, base, orphan] = [
    await pushImage(target, repo, 'env-mapped-amd64'),
    await pushImage(target, repo, 'env-template-amd64'),
    await pushImage(target, repo, 'env-cron-amd64'),
    await pushImage(target, repo, 'base'),
    await pushImage(target, repo, 'env-orphan-amd64'),
  ];
  const index = await pushIndex(target, repo, 'env-multi');
  const client = new RegistryClient({ dockerConfig: false });
  const subject = { mediaType: orphan.mediaType, digest: orphan.digest, size: orphan.manifest.length };
  const sbom = await pushReferrer(client, { repository: `${host}/${repo}`, subject, artifactType: 'application/spdx+json', blob: { bytes: Buffer.from('{"spdxVersion":"SPDX-2.3"}'), mediaType: 'application/spdx+json' } });
  await writeFile(join(dir, 'keep.json'), JSON.stringify({ flow: 'F', images: {}, steps: { start: { envId: 'x', image: `${host}/${repo}:env-mapped-amd64`, pinnedImage: `${host}/${repo}:env-mapped-amd64@${mapped.digest}`, python: 'p' } } }));
  const kube = await FakeKubernetesApi.start({ namespaces: [NS] });
  // Images where Metaflow's compiled templates put them, and deeper: gc scans every `image` key.
  kube.put(`${ARGO}/workflowtemplates`, { metadata: { name: 'trainflow' }, spec: { templates: [{ name: 'start', container: { image: `127.0.0.9:5000/${repo}:env-template-amd64@${template.digest}` } }] } });
  kube.put(`${ARGO}/cronworkflows`, { metadata: { name: 'nightly' }, spec: { workflowSpec: { templates: [{ name: 'end', dag: {}, initContainers: [{ image: `${host}/${repo}:env-cron-amd64` }] }] } } });
  kube.put(`${ARGO}/workflows`, { metadata: { name: 'trainflow-abc12' }, spec: { templates: [{ name: 'x', script: { image: `${host}/${repo}:env-multi` } }] } });
  const kubeconfig = await kube.writeKubeConfig(join(dir, 'kubeconfig'), { namespace: NS });
  const env = { METAFLOW_PREBUILT_IMAGE_NAMESPACE: repo, METAFLOW_PREBUILT_BASE_IMAGE: `${host}/${repo}:base`, KUBECONFIG: kubeconfig };
  return { dir, repo, host, mapped, template, cron, index, base, orphan, sbom: sbom.digest, kube, env };
}

/** The scope of a gc run in this process against `world`'s registry, its cache directory `cache`. */
function inProcessScope(world: World, cache: string) {
  const env: Record<string, string | undefined> = { PATH: process.env.PATH, HOME: process.env.HOME, ...world.env, METAFLOW_PREBUILT_IMAGE_REGISTRY: 'local', METAFLOW_PREBUILT_LOCAL_REGISTRY: world.host, DOCKER_CONFIG: join(world.dir, 'no-docker-config'), METAFLOW_PREBUILT_CACHE_DIR: cache };
  return { cwd: world.dir, cliDir: join(dirname(fileURLToPath(import.meta.url)), '..', '..'), env, signal: new AbortController().signal };
}

async function exists(world: World, digest: string): Promise<boolean> {
  const res = await fetch(`http://${world.host}/v2/${world.repo}/manifests/${digest}`, { method: 'HEAD', headers: { accept: 'application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json' } });
  return res.status === 200;
}

describeOrFailInCi('prebuilt gc (real CLI, real local registry, FAKE Kubernetes API)', registryMissing, () => {
  let world: World;
  beforeAll(async () => {
    world = await createWorld('cli-gc');
  });
  afterAll(async () => {
    await world?.kube.stop();
    if (world) await rm(world.dir, { recursive: true, force: true });
  });
  const gc = (args: string[], env: Record<string, string> = {}) => prebuilt(['gc', ...args], world.dir, { ...world.env, ...env });
  const kept = (out: GcJson, digest: string): GcJsonItem | undefined => out.kept.find((item) => item.digest === digest);

  it('dry run (--json): keeps what the map, the WorkflowTemplate, the CronWorkflow, the Workflow and the kept index name, and the base image; deletes nothing', async () => {
    const result = await gc(['--keep-map', 'keep.json', '--kube-namespace', NS, '--json']);
    expect(result.code, result.stderr).toBe(0);
    const out = JSON.parse(result.stdout) as GcJson;
    expect(out).toMatchObject({ ok: true, registry: 'local', repository: `${world.host}/${world.repo}`, dryRun: true });
    // (a) the kept map
    expect(kept(out, world.mapped.digest)?.reason).toBe('kept map keep.json');
    // (b) each live Argo object, by digest under another pull host, and by tag
    expect(kept(out, world.template.digest)?.reason).toBe(`WorkflowTemplate ${NS}/trainflow`);
    expect(kept(out, world.cron.digest)?.reason).toBe(`CronWorkflow ${NS}/nightly`);
    expect(kept(out, world.index.digest)?.reason).toBe(`Workflow ${NS}/trainflow-abc12`);
    // (c) the kept index's platform images (tagged, named by nothing else)
    expect(kept(out, world.index.amd64.digest)?.reason).toMatch(/^listed by kept index /);
    expect(kept(out, world.index.arm64.digest)?.reason).toMatch(/^listed by kept index /);
    expect(kept(out, world.base.digest)?.reason).toBe(`base image ${world.host}/${world.repo}:base`);
    expect(out.deleted.map((item) => [item.kind, item.digest])).toEqual([
      ['referrers', expect.stringMatching(/^sha256:/)],
      ['sbom', world.sbom],
      ['image', world.orphan.digest],
    ]);
    expect(out.deleted[0]!.tags).toEqual([world.orphan.digest.replace(':', '-')]);
    expect(out.deleted[2]).toMatchObject({ tags: ['env-orphan-amd64'], reason: 'no keep source names it' });
    expect(out.reclaimedBytes).toBeGreaterThan(world.orphan.layerSize);
    for (const digest of [world.orphan.digest, world.sbom]) expect(await exists(world, digest)).toBe(true);
    expect(world.kube.requests.filter((r) => r.startsWith('GET')).map((r) => r.split('?')[0])).toEqual(
      expect.arrayContaining([`GET ${ARGO}/workflowtemplates`, `GET ${ARGO}/cronworkflows`, `GET ${ARGO}/workflows`]),
    );
  });

  it('dry run (text): the table of what goes, the totals, and the dry-run line', async () => {
    const result = await gc(['--keep-map', 'keep.json', '--kube-namespace', NS]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/TAGS\s+DIGEST\s+KIND\s+SIZE\s+WHY IT GOES/);
    expect(result.stdout).toMatch(new RegExp(`env-orphan-amd64 +${world.orphan.digest.slice(7, 19)}  image +[0-9.]+ (bytes|KiB) +no keep source names it`));
    expect(result.stdout).toMatch(/would delete 3, keep 7; .* reclaimed/);
    expect(result.stdout).toContain('dry run: nothing deleted; pass --yes to delete');
    expect(await exists(world, world.orphan.digest)).toBe(true);
  });

  it('--dry-run is the dry run said explicitly; with --yes it is a usage error (exit 2) that deletes nothing', async () => {
    const dry = await gc(['--keep-map', 'keep.json', '--kube-namespace', NS, '--dry-run', '--json']);
    expect(dry.code, dry.stderr).toBe(0);
    const out = JSON.parse(dry.stdout) as GcJson;
    expect(out).toMatchObject({ ok: true, dryRun: true });
    expect(out.deleted.map((item) => item.digest)).toContain(world.orphan.digest);
    const both = await gc(['--keep-map', 'keep.json', '--kube-namespace', NS, '--dry-run', '--yes', '--json']);
    expect(both.code).toBe(2);
    expect((JSON.parse(both.stdout) as GcJson).error).toMatchObject({ code: 'usage', message: "option '--dry-run' cannot be used with option '--yes'" });
    expect(await exists(world, world.orphan.digest)).toBe(true);
  });

  it('keeps an image a build on this machine used within the minimum age (1h by default), with its SBOM; --min-age 0, METAFLOW_PREBUILT_GC_MIN_AGE shorter than its age, let it go; a bad one is exit 2', async () => {
    const cache = join(world.dir, 'cache-used');
    const withCache = { METAFLOW_PREBUILT_CACHE_DIR: cache };
    new ImageUseMarks(join(cache, 'images-used')).mark(`${world.host}/${world.repo}:env-orphan-amd64`, new Date(Date.now() - 5000));
    const keepSources = ['--keep-map', 'keep.json', '--kube-namespace', NS, '--json'];
    const young = JSON.parse((await gc(keepSources, withCache)).stdout) as GcJson & { minAgeSeconds: number };
    expect(young.minAgeSeconds).toBe(3600);
    expect(kept(young, world.orphan.digest)?.reason).toMatch(/^used by a build on this machine \d+s ago \(minimum age 1h\)$/);
    expect(kept(young, world.sbom)).toBeDefined();
    expect(young.deleted).toEqual([]);
    // Without that cache directory nothing marks it: it goes, as before.
    expect((JSON.parse((await gc(keepSources)).stdout) as GcJson).deleted.map((item) => item.digest)).toContain(world.orphan.digest);
    expect((JSON.parse((await gc([...keepSources, '--min-age', '0'], withCache)).stdout) as GcJson).deleted.map((item) => item.digest)).toContain(world.orphan.digest);
    const shorter = JSON.parse((await gc(keepSources, { ...withCache, METAFLOW_PREBUILT_GC_MIN_AGE: '2s' })).stdout) as GcJson;
    expect(shorter.deleted.map((item) => item.digest)).toContain(world.orphan.digest);
    expect(shorter.notes.join('\n')).toContain('protects only images a build sharing this cache directory used');
    const bad = await gc([...keepSources, '--min-age', 'soon'], withCache);
    expect(bad.code).toBe(2);
    expect((JSON.parse(bad.stdout) as GcJson).error?.message).toBe('--min-age soon is not a duration.');
    const badSetting = await gc(keepSources, { ...withCache, METAFLOW_PREBUILT_GC_MIN_AGE: '1 week' });
    expect(badSetting.code).toBe(2);
    expect((JSON.parse(badSetting.stdout) as GcJson).error?.message).toBe('METAFLOW_PREBUILT_GC_MIN_AGE=1 week is not a duration.');
    expect(await exists(world, world.orphan.digest)).toBe(true);
  });

  it("deletes nothing with a minimum age while the marks cannot be read (images-used planted as a symlink: every image looked unused): --yes is exit 2, the dry run says so; --min-age 0 is not refused", async () => {
    const cache = join(world.dir, 'cache-planted');
    await mkdir(join(cache, 'elsewhere'), { recursive: true });
    await symlink(join(cache, 'elsewhere'), join(cache, 'images-used'));
    const withCache = { METAFLOW_PREBUILT_CACHE_DIR: cache };
    const keepSources = ['--keep-map', 'keep.json', '--kube-namespace', NS, '--json'];
    const refused = await gc([...keepSources, '--yes'], withCache);
    expect(refused.code, refused.stderr).toBe(2);
    const error = (JSON.parse(refused.stdout) as GcJson).error;
    expect(error?.message).toBe(
      `prebuilt gc cannot read which images builds on this machine used lately: ${join(cache, 'images-used')} is a symlink, not a directory. It deletes nothing it cannot check, so no image a running build uses goes.`,
    );
    expect(error?.hint).toContain('--min-age 0');
    expect(await exists(world, world.orphan.digest)).toBe(true);
    expect(await exists(world, world.sbom)).toBe(true);
    const dry = JSON.parse((await gc(keepSources, withCache)).stdout) as GcJson;
    expect(dry.notes.join('\n')).toContain(`${join(cache, 'images-used')} is a symlink, not a directory: gc cannot read which images builds on this machine used lately, and with --yes deletes nothing (or pass --min-age 0).`);
    const noMinAge = JSON.parse((await gc([...keepSources, '--min-age', '0'], withCache)).stdout) as GcJson;
    expect(noMinAge.notes.join('\n')).not.toContain('cannot read which images');
    expect(noMinAge.deleted.map((item) => item.digest)).toContain(world.orphan.digest);
  });

  it('--keep-days on a registry without push times keeps every image and says so', async () => {
    const result = await gc(['--keep-days', '30', '--json']);
    expect(result.code, result.stderr).toBe(0);
    const out = JSON.parse(result.stdout) as GcJson;
    expect(out.deleted).toEqual([]);
    expect(out.notes.join('\n')).toContain('does not record when an image was pushed');
    expect(kept(out, world.orphan.digest)?.reason).toBe('push time unknown (--keep-days 30 keeps it)');
  });

  it('--yes deletes the unreferenced image, its SBOM and referrers tag (the registry then answers 404) and nothing it keeps', async () => {
    const result = await gc(['--keep-map', 'keep.json', '--kube-namespace', NS, '--yes', '--json']);
    expect(result.code, result.stderr).toBe(0);
    const out = JSON.parse(result.stdout) as GcJson;
    expect(out.dryRun).toBe(false);
    expect(result.stderr).toMatch(/gc: deleting 1\/3 referrers [0-9a-f]{12}[\s\S]*gc: deleting 3\/3 image/);
    for (const item of out.deleted) expect(await exists(world, item.digest), item.kind).toBe(false);
    for (const image of [world.mapped, world.template, world.cron, world.base, world.index.amd64, world.index.arm64]) expect(await exists(world, image.digest)).toBe(true);
    expect(await exists(world, world.index.digest)).toBe(true);
    const again = JSON.parse((await gc(['--keep-map', 'keep.json', '--kube-namespace', NS, '--json'])).stdout) as GcJson;
    expect(again.deleted).toEqual([]);
  });

  it('without the Workflow the index goes with its platform images, indexes first; the base image survives every rule', async () => {
    const result = await gc(['--keep-map', 'keep.json', '--yes', '--json']);
    expect(result.code, result.stderr).toBe(0);
    const out = JSON.parse(result.stdout) as GcJson;
    const order = out.deleted.map((item) => item.digest);
    expect(order.indexOf(world.index.digest)).toBeLessThan(order.indexOf(world.index.amd64.digest));
    expect(order).toEqual(expect.arrayContaining([world.template.digest, world.cron.digest, world.index.digest, world.index.amd64.digest, world.index.arm64.digest]));
    expect(order).not.toContain(world.base.digest);
    expect(await exists(world, world.base.digest)).toBe(true);
    expect(await exists(world, world.mapped.digest)).toBe(true);
    expect(await exists(world, world.index.arm64.digest)).toBe(false);
  });
});

describeOrFailInCi('prebuilt gc against a build running at the same time (in process, real local registry)', registryMissing, () => {
  let world: World;
  beforeAll(async () => {
    world = await createWorld('cli-gc-race');
  });
  afterAll(async () => {
    await world?.kube.stop();
    if (world) await rm(world.dir, { recursive: true, force: true });
  });

  it('spares an image (and an index with its platform images) a build on this machine starts to use after the plan: looked up again before each deletion; the rest goes', async () => {
    const cache = join(world.dir, 'cache');
    const marks = new ImageUseMarks(join(cache, 'images-used'));
    const events: GcProgress[] = [];
    const result = await garbageCollect(
      inProcessScope(world, cache),
      {
        keepMaps: ['keep.json'],
        yes: true,
        onProgress: (event) => {
          events.push(event);
          // Builds check the orphan's and the index's tags while gc deletes the first item of its plan (the orphan's referrers index).
          if (event.type === 'deleting' && event.index === 0) {
            marks.mark(`${world.host}/${world.repo}:env-orphan-amd64`);
            marks.mark(`${world.host}/${world.repo}:env-multi`);
          }
        },
      },
    );
    const spared = events.filter((event): event is Extract<GcProgress, { type: 'spared' }> => event.type === 'spared');
    expect(spared.map((event) => event.item.digest).sort()).toEqual([world.orphan.digest, world.index.digest, world.index.amd64.digest, world.index.arm64.digest].sort());
    expect(spared.find((event) => event.item.digest === world.index.digest)?.reason).toMatch(/^used by a build on this machine \d+s ago, since the plan \(minimum age 1h\)$/);
    // Spared with the index, planned again (its own mark read anew), or on its own turn.
    expect(spared.find((event) => event.item.digest === world.orphan.digest)?.reason).toMatch(/^used by a build on this machine \d+s ago(, since the plan)? \(minimum age 1h\)$/);
    // The index's platform images stay with it (planned again: listed by the kept index).
    expect(spared.find((event) => event.item.digest === world.index.amd64.digest)?.reason).toMatch(/^listed by kept index /);
    // What no build took up went: the SBOM and referrers deleted before the orphan's turn, the template's and cron's images.
    expect(result.plan.deletions.map((item) => item.digest).sort()).toEqual(expect.arrayContaining([world.sbom, world.template.digest, world.cron.digest]));
    expect(result.plan.deletions.map((item) => item.digest)).not.toContain(world.orphan.digest);
    for (const digest of [world.orphan.digest, world.index.digest, world.index.amd64.digest, world.index.arm64.digest, world.mapped.digest, world.base.digest]) expect(await exists(world, digest)).toBe(true);
    for (const digest of [world.sbom, world.template.digest, world.cron.digest]) expect(await exists(world, digest)).toBe(false);
  });
});

describeOrFailInCi('prebuilt gc errors (real CLI)', registryMissing, () => {
  let dir: string;
  let kube: FakeKubernetesApi;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'prebuilt-cli-gc-errors-'));
    kube = await FakeKubernetesApi.start({ namespaces: [NS] });
  });
  afterAll(async () => {
    await kube.stop();
    await rm(dir, { recursive: true, force: true });
  });
  const env = { METAFLOW_PREBUILT_IMAGE_NAMESPACE: uniqueRepo('cli-gc-errors') };

  it('refuses to run with no keep source (exit 2)', async () => {
    const result = await prebuilt(['gc', '--json'], dir, env);
    expect(result.code).toBe(2);
    const out = JSON.parse(result.stdout) as GcJson;
    expect(out.ok).toBe(false);
    expect(out.error?.message).toContain('needs at least one keep source');
  });

  it('a registry without listImages/deleteImage is a ConfigError (exit 2) naming it and the registries gc supports', async () => {
    const backend = join(dir, 'nolist-registry.mjs');
    await writeFile(
      backend,
      `export default { apiVersion: 1, kind: 'image-registry', name: 'nolist', create: () => ({ name: 'nolist', imageTag: () => 'r.example/x:env-a', pushCredentials: async () => undefined, pullConfig: async () => ({}), imageExists: async () => ({ exists: false }), baseImageIdentity: async () => { throw new Error('no'); } }) };\n`,
    );
    await writeFile(join(dir, 'keep.json'), '{}');
    const result = await prebuilt(['gc', '--keep-map', 'keep.json'], dir, { ...env, METAFLOW_PREBUILT_IMAGE_REGISTRY: backend });
    expect(result.code, result.stderr).toBe(2);
    expect(result.stderr).toContain('The image registry nolist cannot list or delete images');
    expect(result.stderr).toContain('local, dockerhub, ecr, gcr');
    expect(result.stderr).not.toMatch(/^\s+at /m);
  });

  it('a Kubernetes API that refuses the list (403) is an AuthError (exit 1) saying which permission to check', async () => {
    const kubeconfig = await kube.writeKubeConfig(join(dir, 'forbidden'), { token: 'forbidden-token' });
    const result = await prebuilt(['gc', '--kube-namespace', NS, '--json'], dir, { ...env, KUBECONFIG: kubeconfig });
    expect(result.code, result.stderr).toBe(1);
    const out = JSON.parse(result.stdout) as GcJson;
    expect(out.error).toMatchObject({ code: 'auth' });
    expect(out.error?.message).toContain('was refused by the Kubernetes API');
    expect(out.error?.hint).toContain(`kubectl auth can-i list workflowtemplates.argoproj.io -n ${NS}`);
  });

  it('a namespace the cluster lacks is exit 2, never an empty keep set', async () => {
    const kubeconfig = await kube.writeKubeConfig(join(dir, 'ok'));
    const result = await prebuilt(['gc', '--kube-namespace', 'absent', '--json'], dir, { ...env, KUBECONFIG: kubeconfig });
    expect(result.code, result.stderr).toBe(2);
    expect((JSON.parse(result.stdout) as GcJson).error?.message).toContain('the namespace does not exist or Argo Workflows is not installed');
  });

  it('a flow without its lock file is exit 2 saying gc takes the lock as it is (the user gave no --frozen)', async () => {
    await writeFile(
      join(dir, 'unlocked_flow.py'),
      'from metaflow import FlowSpec, conda, step\n\nclass UnlockedFlow(FlowSpec):\n    @conda(packages={"tinynum": "1.4.0"}, python="3.11")\n    @step\n    def start(self):\n        self.next(self.end)\n\n    @step\n    def end(self):\n        pass\n',
    );
    const result = await prebuilt(['gc', 'unlocked_flow.py', '--json'], dir, env);
    expect(result.code, result.stderr).toBe(2);
    const error = (JSON.parse(result.stdout) as GcJson).error;
    expect(error?.message).toBe(`gc keeps the images of the lock file as it is (it never resolves): there is no lock file unlocked_flow.prebuilt.lock.`);
    expect(error?.message).not.toContain('--frozen');
    expect(error?.hint).toBe('Run `prebuilt lock unlocked_flow.py` and commit unlocked_flow.prebuilt.lock.');
  });

  it('a keep map or flow that names no image of the env repository (steps empty, another repository, every env disabled) is exit 2 before anything is listed', async () => {
    await writeFile(join(dir, 'empty.json'), JSON.stringify({ flow: 'F', images: {}, steps: {} }));
    const empty = await prebuilt(['gc', '--keep-map', 'empty.json', '--yes', '--json'], dir, env);
    expect(empty.code, empty.stderr).toBe(2);
    const error = (JSON.parse(empty.stdout) as GcJson).error;
    expect(error?.message).toMatch(new RegExp(`^The image map empty.json names no image of the env repository 127.0.0.1:\\d+/(.*/)?${env.METAFLOW_PREBUILT_IMAGE_NAMESPACE}: as a keep source it keeps nothing, so gc would delete every image nothing else keeps \\(its steps name no image\\)\\.$`));
    expect(error?.hint).toContain('gc has no option to delete every image');
    // Alongside a source that keeps something, still refused: the empty one is the mistake.
    await writeFile(join(dir, 'elsewhere.json'), JSON.stringify({ flow: 'F', images: {}, steps: { start: { envId: 'x', image: '127.0.0.1:5000/other/envs:env-a-amd64', python: 'p' } } }));
    const elsewhere = await prebuilt(['gc', '--keep-map', 'elsewhere.json', '--keep-days', '30'], dir, env);
    expect(elsewhere.code, elsewhere.stderr).toBe(2);
    expect(elsewhere.stderr).toContain('The image map elsewhere.json names no image of the env repository');
    expect(elsewhere.stderr).toContain('(it names 1 image of other repositories)');
    expect(elsewhere.stderr).not.toContain('gc: listing');
    // A flow whose every step's env is disabled has no image: as a keep source it keeps nothing either.
    await writeFile(join(dir, 'off_flow.py'), 'from metaflow import FlowSpec, step, conda_base\n\n@conda_base(disabled=True)\nclass OffFlow(FlowSpec):\n    @step\n    def start(self):\n        self.next(self.end)\n\n    @step\n    def end(self):\n        pass\n');
    const lock = await prebuilt(['lock', 'off_flow.py'], dir, env);
    expect(lock.code, lock.stderr).toBe(0);
    const off = await prebuilt(['gc', 'off_flow.py', '--yes'], dir, env);
    expect(off.code, off.stderr).toBe(2);
    expect(off.stderr).toContain("The flow off_flow.py names no image of the env repository");
    expect(off.stderr).toContain("(every step's env is disabled, so it has no image)");
    expect(off.stderr).not.toContain('gc: listing');
  });

  it('a keep map that does not exist or is not an image map, a flow after --keep-map, and a --keep-days that is not a number, are exit 2', async () => {
    expect((await prebuilt(['gc', '--keep-map', 'missing.json'], dir, env)).stderr).toContain('missing.json does not exist');
    // An absolute path is shown as given, not as a path relative to the current directory.
    const absolute = join(tmpdir(), 'prebuilt-gc-no-such-dir', 'missing.json');
    const missing = await prebuilt(['gc', '--keep-map', absolute], dir, env);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain(`error: The image map ${absolute} does not exist.`);
    await writeFile(join(dir, 'broken.json'), '{"flow": "F", "steps": ');
    const broken = await prebuilt(['gc', '--keep-map', 'broken.json'], dir, env);
    expect(broken.code).toBe(2);
    expect(broken.stderr).toContain('The image map broken.json is not valid');
    expect(broken.stderr).not.toMatch(/^\s+at /m);
    const swallowed = await prebuilt(['gc', '--keep-map', 'keep.json', 'flow.py'], dir, env);
    expect(swallowed.code).toBe(2);
    expect(swallowed.stderr).toContain('--keep-map flow.py is a flow file, not an image map');
    const days = await prebuilt(['gc', '--keep-days', 'soon'], dir, env);
    expect(days.code).toBe(2);
    expect(days.stderr).toContain('--keep-days soon is not a whole number of days');
  });
});

describe('renderGc of what a hostile registry lists', () => {
  it('shows the control characters of its tags and of a note quoting it as escapes', () => {
    const item = { digest: `sha256:${'a'.repeat(64)}`, tags: ['v1\x1b]52;c;cHduZWQ=\x07', 'ok\r\x1b[2Kfake'], kind: 'image' as const, size: 10, action: 'delete' as const, reason: 'no keep source names it' };
    const text = renderGc({
      registry: 'local',
      repository: '127.0.0.1:5000/team/envs',
      plan: { items: [item], deletions: [item], kept: [], reclaimedBytes: 10, reclaimedPartial: false, pushTimeUnknown: false },
      minAgeMs: 3_600_000,
      notes: ['base image 127.0.0.1:5000/base:1 could not be read (registry said: \x1b]8;;https://attacker.example/\x07details\x1b]8;;\x07)'],
      deleted: false,
    });
    expect(text).not.toMatch(/[\x00-\x09\x0b-\x1f\x7f-\x9f]/);
    expect(text).toContain('v1\\x1b]52;c;cHduZWQ=\\x07, ok\\x0d\\x1b[2Kfake');
    expect(text).toContain('note: base image 127.0.0.1:5000/base:1 could not be read (registry said: \\x1b]8;;https://attacker.example/\\x07details\\x1b]8;;\\x07)');
  });
});

describeOrFailInCi('prebuilt gc while images-used is swapped for a symlink (in process, real local registry)', registryMissing, () => {
  it('stops before the next deletion, naming why, once the marks cannot be read (images-used swapped for a symlink): what it had not deleted stays', async () => {
    const world = await createWorld('cli-gc-swap');
    onTestFinished(async () => {
      await world.kube.stop();
      await rm(world.dir, { recursive: true, force: true });
    });
    const cache = join(world.dir, 'cache');
    const dir = join(cache, 'images-used');
    new ImageUseMarks(dir).mark(`${world.host}/${world.repo}:env-mapped-amd64`, new Date(Date.now() - 2 * 3_600_000));
    const deleting: string[] = [];
    const run = garbageCollect(
      inProcessScope(world, cache),
      {
        keepMaps: ['keep.json'],
        yes: true,
        onProgress: (event) => {
          if (event.type !== 'deleting') return;
          deleting.push(event.item.digest);
          // A co-user of the cache swaps images-used for a symlink while gc deletes its first item: lastUse then said "unused" of everything.
          if (event.index === 0) {
            rmSync(dir, { recursive: true, force: true });
            mkdirSync(join(cache, 'elsewhere'));
            symlinkSync(join(cache, 'elsewhere'), dir);
          }
        },
      },
    );
    await expect(run).rejects.toThrow(`prebuilt gc cannot read which images builds on this machine used lately: ${dir} is a symlink, not a directory.`);
    expect(deleting).toHaveLength(1);
    for (const digest of [world.orphan.digest, world.template.digest, world.cron.digest, world.index.digest, world.mapped.digest, world.base.digest]) expect(await exists(world, digest)).toBe(true);
  });

  describe('stopped while deleting (a proxy in front of the registry answers the first or the second DELETE)', () => {
    /** A world behind a proxy whose `nth` DELETE (the second unless told) gets `fault`, and `prebuilt gc --yes --json` started on it. */
    async function stoppedRun(prefix: string, fault: Fault, nth = 2) {
      let deletes = 0;
      const proxy = await startFlakyProxy(services.registries!.plain.host, [fault], 0, { faultOn: (method) => method === 'DELETE' && ++deletes >= nth });
      const world = await createWorld(prefix, proxy.host);
      onTestFinished(async () => {
        await world.kube.stop();
        await proxy.close();
        await rm(world.dir, { recursive: true, force: true });
      });
      const env = { ...process.env, ...world.env, METAFLOW_PREBUILT_IMAGE_REGISTRY: 'local', METAFLOW_PREBUILT_LOCAL_REGISTRY: proxy.host, DOCKER_CONFIG: join(world.dir, 'no-docker-config') };
      const child = spawn(process.execPath, [fileURLToPath(new URL('../../bin/prebuilt.js', import.meta.url)), 'gc', '--keep-map', 'keep.json', '--kube-namespace', NS, '--yes', '--json'], { cwd: world.dir, env });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      const exit = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
      return { world, proxy, child, exit, out: () => ({ stdout, stderr, json: JSON.parse(stdout) as GcJson & { interrupted?: boolean } }) };
    }

    it('a DELETE refused (403): exit non-zero, and --json names the error and what it had deleted before (it stays deleted)', async () => {
      const run = await stoppedRun('cli-gc-refused', { status: 403 });
      expect(await run.exit).not.toBe(0);
      const { json, stderr } = run.out();
      expect(json.ok).toBe(false);
      expect(json.error?.message).toBeTruthy();
      expect(json.deleted).toHaveLength(1);
      expect(stderr).toContain(`gc: deleted ${json.deleted[0]!.digest.slice(7, 19)}`);
      expect(await exists(run.world, json.deleted[0]!.digest)).toBe(false);
      expect(run.proxy.requests.filter((r) => r.startsWith('DELETE')).length).toBeGreaterThanOrEqual(2);
    });

    it('its very first DELETE refused: --json says it had started deleting, with an empty deleted list beside the error', async () => {
      const run = await stoppedRun('cli-gc-refused-first', { status: 403 }, 1);
      expect(await run.exit).not.toBe(0);
      const { json, stderr } = run.out();
      expect(json).toMatchObject({ ok: false, dryRun: false, deleted: [] });
      expect(json.error?.message).toBeTruthy();
      expect(stderr).not.toContain('gc: deleted ');
    });

    it('interrupted (SIGINT) while its second DELETE waits: exit 130, and the interrupted envelope names what it had deleted', async () => {
      const run = await stoppedRun('cli-gc-interrupted', 'hang');
      await expect.poll(() => run.proxy.requests.filter((r) => r.startsWith('DELETE')).length, { timeout: 60_000, interval: 50 }).toBe(2);
      run.child.kill('SIGINT');
      expect(await run.exit).toBe(130);
      const { json } = run.out();
      expect(json).toMatchObject({ ok: false, interrupted: true, dryRun: false });
      expect(json.deleted).toHaveLength(1);
      expect(await exists(run.world, json.deleted[0]!.digest)).toBe(false);
    });
  });
});
