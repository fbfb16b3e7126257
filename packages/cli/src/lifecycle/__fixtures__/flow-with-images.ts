// Test helper for `prebuilt sbom` / `prebuilt report`: a flow file whose image map (the state file
// `prebuilt build` writes) points at small images pushed to the real test registry.
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ImageMap } from '@prebuilt/core';
import { pushImage, pushIndex, uniqueRepo, type PushedImage } from '../../../../core/src/registry/__fixtures__/push-image.js';
import { describeOrFailInCi, getServices, missingFor } from '../../../../../test/services.js';

export { describeOrFailInCi };

export const services = getServices();
export const registryMissing = missingFor(['registries'], services);
const BIN = fileURLToPath(new URL('../../../bin/prebuilt.js', import.meta.url));

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function prebuilt(args: string[], cwd: string, env: Record<string, string> = {}): Promise<CliResult> {
  const base: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env)) if (value !== undefined && !key.startsWith('METAFLOW_')) base[key] = value;
  const host = services.registries?.plain.host ?? '';
  const all = { ...base, METAFLOW_PREBUILT_IMAGE_REGISTRY: 'local', METAFLOW_PREBUILT_LOCAL_REGISTRY: host, DOCKER_CONFIG: join(cwd, 'no-docker-config'), ...env };
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { cwd, env: all }, (error, stdout, stderr) => {
      const code = error ? (typeof (error as { code?: unknown }).code === 'number' ? (error as { code: number }).code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** LifecycleFlow: start → train → end, each step a plain `@step` (the images come from the map, not the flow). */
const STEPS = ['start', 'train', 'end'];
const FLOW = [
  'from metaflow import FlowSpec, step',
  '',
  '',
  'class LifecycleFlow(FlowSpec):',
  ...STEPS.flatMap((name, i) => ['    @step', `    def ${name}(self):`, i + 1 < STEPS.length ? `        self.next(self.${STEPS[i + 1]})` : '        pass', '']),
].join('\n');

export interface FlowWithImages {
  dir: string;
  repo: string;
  start: PushedImage;
  train: PushedImage;
  index: { digest: string };
  imageMap: ImageMap;
}

/** `flow.py` (LifecycleFlow: start, train, end) and its image map: start and train one image each, end a 2-platform index. */
export async function flowWithImages(prefix: string): Promise<FlowWithImages> {
  const dir = await mkdtemp(join(tmpdir(), `prebuilt-${prefix}-`));
  const host = services.registries!.plain.host;
  const repo = uniqueRepo(prefix);
  const start = await pushImage({ host }, repo, 'env-start');
  const train = await pushImage({ host }, repo, 'env-train');
  const index = await pushIndex({ host }, repo, 'env-end');
  const step = (envId: string, tag: string, digest: string) => ({ envId, image: `${host}/${repo}:${tag}`, pinnedImage: `${host}/${repo}:${tag}@${digest}`, python: '/opt/prebuilt/env/bin/python' });
  const imageMap: ImageMap = {
    flow: 'LifecycleFlow',
    images: {},
    steps: { start: step('start', 'env-start', start.digest), train: step('train', 'env-train', train.digest), end: step('end', 'env-end', index.digest) },
  };
  await writeFile(join(dir, 'flow.py'), FLOW);
  await mkdir(join(dir, '.prebuilt', 'LifecycleFlow'), { recursive: true });
  await writeFile(join(dir, '.prebuilt', 'LifecycleFlow', 'images.json'), JSON.stringify(imageMap));
  return { dir, repo, start, train, index, imageMap };
}

