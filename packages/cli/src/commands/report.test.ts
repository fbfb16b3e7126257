/**
 * `prebuilt report` through the real CLI (node bin/prebuilt.js, after `pnpm build`) on the real
 * local registry: a flow's image map pointing at small pushed images and a 2-platform index.
 */
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ColdStartReport, PlatformReport } from '@prebuilt/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeOrFailInCi, flowWithImages, prebuilt, registryMissing, type FlowWithImages } from '../lifecycle/__fixtures__/flow-with-images.js';
import { renderReport } from './report.js';



describeOrFailInCi('prebuilt report (real CLI, real local registry)', registryMissing, () => {
  let flow: FlowWithImages;
  beforeAll(async () => {
    flow = await flowWithImages('cli-report');
  });
  afterAll(async () => {
    await rm(flow.dir, { recursive: true, force: true });
  });

  it('--json: per step and platform, sizes from the manifests, gzip sizes from the trailers, pull time at the bandwidth', async () => {
    const result = await prebuilt(['report', 'flow.py', '--json', '--bandwidth', '1kB/s'], flow.dir);
    expect(result.code, result.stderr).toBe(0);
    const out = JSON.parse(result.stdout) as { ok: boolean; flow: string; bandwidth: { text: string; bytesPerSecond: number }; steps: { step: string; image: string; digest: string; index: boolean; platforms: PlatformReport[] }[]; stepsWithoutImage: string[] };
    expect(out.ok).toBe(true);
    expect(out.bandwidth).toEqual({ text: '1kB/s', bytesPerSecond: 1000 });
    expect(out.steps.map((s) => [s.step, s.index, s.platforms.map((p) => p.platform)])).toEqual([
      ['start', false, ['linux/amd64']],
      ['train', false, ['linux/amd64']],
      ['end', true, ['linux/amd64', 'linux/arm64/v8']],
    ]);
    const start = out.steps[0]!;
    expect(start.digest).toBe(flow.start.digest);
    expect(start.platforms[0]).toMatchObject({ digest: flow.start.digest, compressedBytes: flow.start.layerSize, layerCount: 1, sharedLayers: 0, formats: ['gzip'] });
    // The fixture layer is a gzip of a short text line and 1024 zero bytes.
    expect(start.platforms[0]!.installedBytes).toBeGreaterThan(1024);
    expect(start.platforms[0]!.layers[0]!.installedFrom).toBe('gzip-trailer');
    expect(start.platforms[0]!.pullSeconds).toBeCloseTo(flow.start.layerSize / 1000, 6);
    expect(out.steps[2]!.digest).toBe(flow.index.digest);
    expect(out.stepsWithoutImage).toEqual([]);
  });

  it('prints a table with the pull time at the default bandwidth', async () => {
    const result = await prebuilt(['report', 'flow.py', '--step', 'end'], flow.dir);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain('LifecycleFlow: cold start of 2 images (1 step)');
    expect(result.stdout).toMatch(/STEP\s+PLATFORM\s+DIGEST\s+COMPRESSED\s+INSTALLED\s+LAYERS\s+FORMAT\s+PULL @100MB\/s/);
    expect(result.stdout, result.stdout).toMatch(/end\s+linux\/arm64\/v8\s+sha256:[0-9a-f]{12}\s+\d+ bytes\s+[\d.]+ (bytes|KiB)\s+1 \(0 shared\)\s+gzip\s+0\.0s/);
    expect(result.stdout).toContain(`end: ${flow.imageMap.steps['end']!.pinnedImage} (image index)`);
    expect(result.stdout).not.toContain('note:');
  });

  it('a bad --bandwidth or an unknown step is exit 2 with what to give', async () => {
    const bad = await prebuilt(['report', 'flow.py', '--bandwidth', 'fast'], flow.dir);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("--bandwidth 'fast' is not a bandwidth");
    expect(bad.stderr).toContain('1Gbit/s');
    const unknown = await prebuilt(['report', 'flow.py', '--step', 'nope', '--json'], flow.dir);
    expect(unknown.code).toBe(2);
  });

  it("names the flow's steps the image map has no image for (a map prebuilt run wrote), in the text and in --json", async () => {
    const mapFile = join(flow.dir, '.prebuilt', 'LifecycleFlow', 'images.json');
    const remoteSteps = Object.fromEntries(Object.entries(flow.imageMap.steps).filter(([step]) => step !== 'train'));
    await writeFile(mapFile, JSON.stringify({ ...flow.imageMap, steps: remoteSteps }));
    try {
      const text = await prebuilt(['report', 'flow.py'], flow.dir);
      expect(text.code, text.stderr).toBe(0);
      expect(text.stdout).toContain('(2 steps)');
      expect(text.stdout).toContain('note: the image map has no image for step train of the flow, so the report leaves it out: `prebuilt run` wrote the map');
      expect(text.stdout).toContain('`prebuilt build flow.py` builds every step');
      const json = await prebuilt(['report', 'flow.py', '--json'], flow.dir);
      expect(json.code, json.stderr).toBe(0);
      const out = JSON.parse(json.stdout) as { steps: { step: string }[]; stepsWithoutImage: string[] };
      expect(out.steps.map((s) => s.step)).toEqual(['start', 'end']);
      expect(out.stepsWithoutImage).toEqual(['train']);
      // --step reports the steps it names: no note on the others.
      const one = await prebuilt(['report', 'flow.py', '--step', 'end'], flow.dir);
      expect(one.code, one.stderr).toBe(0);
      expect(one.stdout).not.toContain('note:');
    } finally {
      await writeFile(mapFile, JSON.stringify(flow.imageMap));
    }
  });

  it('--help names the figures and where they come from', async () => {
    const help = await prebuilt(['report', '--help'], flow.dir);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('--bandwidth <rate>');
    expect(help.stdout).toContain("registry's manifests");
  });
});

describe('renderReport', () => {
  const platform = (digest: string): PlatformReport => ({
    platform: 'linux/amd64', digest, compressedBytes: 1000, installedBytes: null, layerCount: 1, sharedLayers: 0, formats: ['zstd'], pullSeconds: 0, layers: [],
  });
  const step = (name: string, digest: string) => ({ step: name, image: 'r/x:env-a', digest, index: false, platforms: [platform(digest)] });

  it('counts an image that several steps share once, and says how many steps', () => {
    const report: ColdStartReport = {
      flow: 'HelloFlow',
      bandwidth: { text: '100MB/s', bytesPerSecond: 1e8 },
      steps: [step('start', 'sha256:aa'), step('fetch', 'sha256:bb'), step('report', 'sha256:aa'), step('end', 'sha256:cc')],
    };
    const text = renderReport(report);
    expect(text.split('\n')[0]).toBe('HelloFlow: cold start of 3 images (4 steps)');
    expect(text.match(/^(start|fetch|report|end) /gm)).toHaveLength(4);
    expect(renderReport({ ...report, steps: [step('end', 'sha256:cc')] }).split('\n')[0]).toBe('HelloFlow: cold start of 1 image (1 step)');
  });

  it("shows the image map's step names as text under the table too: a cloned repository's map naming a step with escape sequences (OSC 52 writes the clipboard) or a line break reaches the terminal as their escapes", () => {
    const hostile = 'start\u001b]52;c;Y3VybCBldmlsLmV4YW1wbGUgfCBzaA==\u0007\r\nfake: line';
    const text = renderReport({ flow: 'HelloFlow', bandwidth: { text: '100MB/s', bytesPerSecond: 1e8 }, steps: [step(hostile, 'sha256:aa')] });
    expect(text).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f]/);
    expect(text).toContain('  start\\x1b]52;c;Y3VybCBldmlsLmV4YW1wbGUgfCBzaA==\\x07\\x0d\\nfake: line: r/x:env-a@sha256:aa\n');
    expect(text.split('\n').filter((line) => line.startsWith('fake:'))).toEqual([]);
  });
});
