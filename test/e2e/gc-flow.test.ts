// `prebuilt gc FLOW` through the real CLI: the flow's current image (its lock file planned on the
// current base image, as `prebuilt plan --frozen` computes it) and what its state file names stay;
// an image neither names goes. Images are small pushed stand-ins under the planned tags, so no
// Docker build runs.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { pushImage, uniqueRepo } from '../../packages/core/src/registry/__fixtures__/push-image.js';
import { describeOrFailInCi, getServices, missingFor } from '../services.js';
import { createWorld, runCli, SMALL_FLOW, type World } from '../support/cli.js';

const services = getServices();
const missing = missingFor(['registries', 'baseImage'], services);

interface GcJson {
  ok: boolean;
  notes: string[];
  deleted: { digest: string; tags: string[]; reason: string }[];
  kept: { digest: string; tags: string[]; reason: string }[];
  error?: { message: string };
}

describeOrFailInCi('prebuilt gc FLOW (real CLI, real local registry)', missing, () => {
  let world: World;
  let flowDir: string;
  let env: Record<string, string>;
  const host = (): string => services.registries!.plain.host;
  const repo = uniqueRepo('gc-flow');
  beforeAll(async () => {
    world = await createWorld('gc-flow');
    flowDir = await world.flow('small_flow.py', SMALL_FLOW);
    env = world.env({ METAFLOW_PREBUILT_IMAGE_REGISTRY: 'local', METAFLOW_PREBUILT_LOCAL_REGISTRY: host(), METAFLOW_PREBUILT_IMAGE_NAMESPACE: repo, METAFLOW_PREBUILT_BASE_IMAGE: services.baseImage!.ref });
    const lock = await runCli(['lock', 'small_flow.py'], { cwd: flowDir, env });
    expect(lock.code, lock.output).toBe(0);
  }, 300_000);
  afterAll(async () => {
    await world?.close();
  });

  it("keeps the image the flow's lock plans and the one its state file names; deletes the rest", async () => {
    const plan = await runCli(['plan', 'small_flow.py', '--frozen', '--json'], { cwd: flowDir, env });
    expect(plan.code, plan.output).toBe(0);
    const planned = Object.values((JSON.parse(plan.stdout) as { images: Record<string, { image: string }> }).images).map((image) => image.image);
    expect(planned).toHaveLength(1);
    const tag = planned[0]!.slice(planned[0]!.lastIndexOf(':') + 1);
    const current = await pushImage({ host: host() }, repo, tag);
    const previous = await pushImage({ host: host() }, repo, 'env-previous-amd64');
    const orphan = await pushImage({ host: host() }, repo, 'env-orphan-amd64');
    await mkdir(join(flowDir, '.prebuilt', 'SmallFlow'), { recursive: true });
    const stateImage = `${host()}/${repo}:env-previous-amd64`;
    await writeFile(join(flowDir, '.prebuilt', 'SmallFlow', 'images.json'), JSON.stringify({ flow: 'SmallFlow', images: {}, steps: { start: { envId: 'p', image: stateImage, pinnedImage: `${stateImage}@${previous.digest}`, python: 'p' } } }));

    const result = await runCli(['gc', 'small_flow.py', '--yes', '--json'], { cwd: flowDir, env });
    expect(result.code, result.output).toBe(0);
    const out = JSON.parse(result.stdout) as GcJson;
    expect(out.kept.find((item) => item.digest === current.digest)?.reason).toBe('flow SmallFlow (small_flow.py)');
    expect(out.kept.find((item) => item.digest === previous.digest)?.reason).toBe("flow SmallFlow's image map .prebuilt/SmallFlow/images.json");
    expect(out.deleted.map((item) => item.digest)).toEqual([orphan.digest]);
    const head = await fetch(`http://${host()}/v2/${repo}/manifests/${orphan.digest}`, { method: 'HEAD', headers: { accept: orphan.mediaType } });
    expect(head.status).toBe(404);
  });

  it("another flow's image map beside the flow (a project of two flows) that no keep source names: a note naming it, when images it names are among the deletions", async () => {
    const sibling = await pushImage({ host: host() }, repo, 'env-sibling-amd64');
    const siblingImage = `${host()}/${repo}:env-sibling-amd64`;
    await mkdir(join(flowDir, '.prebuilt', 'SiblingFlow'), { recursive: true });
    await writeFile(join(flowDir, '.prebuilt', 'SiblingFlow', 'images.json'), JSON.stringify({ flow: 'SiblingFlow', images: {}, steps: { start: { envId: 's', image: siblingImage, pinnedImage: `${siblingImage}@${sibling.digest}`, python: 'p' } } }));
    const dry = await runCli(['gc', 'small_flow.py', '--dry-run', '--json'], { cwd: flowDir, env });
    expect(dry.code, dry.output).toBe(0);
    const out = JSON.parse(dry.stdout) as GcJson;
    expect(out.deleted.map((item) => item.digest)).toContain(sibling.digest);
    expect(out.notes).toContain(
      "the image map .prebuilt/SiblingFlow/images.json (SiblingFlow) is no keep source, and 1 image it names is among the deletions: pass that flow's file too, or --keep-map .prebuilt/SiblingFlow/images.json, to keep them.",
    );
    const kept = await runCli(['gc', 'small_flow.py', '--dry-run', '--json', '--keep-map', '.prebuilt/SiblingFlow/images.json'], { cwd: flowDir, env });
    expect(kept.code, kept.output).toBe(0);
    const keptOut = JSON.parse(kept.stdout) as GcJson;
    expect(keptOut.kept.map((item) => item.digest)).toContain(sibling.digest);
    expect(keptOut.notes.filter((note) => note.includes('SiblingFlow'))).toEqual([]);
  });

  it('a flow that is not locked is exit 2: gc never resolves', async () => {
    const other = await world.flow('other_flow.py', SMALL_FLOW.replaceAll('SmallFlow', 'OtherFlow'));
    const result = await runCli(['gc', 'other_flow.py', '--json'], { cwd: other, env });
    expect(result.code, result.output).toBe(2);
    expect((JSON.parse(result.stdout) as GcJson).ok).toBe(false);
  });
});
