/**
 * `prebuilt sbom` through the real CLI (node bin/prebuilt.js, after `pnpm build`) on the real local
 * registry: a flow's image map pointing at small pushed images, some with an SBOM referring to them.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSbom, pushImageSbom, type LockedEnv, type Sbom } from '@prebuilt/core';
import { RegistryClient } from '@prebuilt/core/backend';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeOrFailInCi, flowWithImages, prebuilt, registryMissing, services, type FlowWithImages } from '../lifecycle/__fixtures__/flow-with-images.js';
import { main } from '../main.js';

const env = (platform: LockedEnv['platform']): LockedEnv => ({
  specHash: 'd'.repeat(64),
  request: { python: '3.11', conda: {}, pypi: {}, channels: [], indexUrl: null, platform },
  platform,
  pythonVersion: '3.11.9',
  packages: [
    { kind: 'conda', name: 'tinynum', version: '1.4.0', build: 'h_0', url: 'http://127.0.0.1:9/c/noarch/tinynum-1.4.0-h_0.conda', sha256: '6'.repeat(64), size: 1, filename: 'tinynum-1.4.0-h_0.conda', subdir: 'noarch' },
    { kind: 'pypi', name: 'tinyhttp', version: '0.3.0', build: '', url: 'http://127.0.0.1:9/tinyhttp-0.3.0-py3-none-any.whl', sha256: '7'.repeat(64), size: 1, filename: 'tinyhttp-0.3.0-py3-none-any.whl' },
  ],
});

describeOrFailInCi('prebuilt sbom (real CLI, real local registry)', registryMissing, () => {
  let flow: FlowWithImages;
  let startSbom: Sbom;
  let startRef: { manifest: string; document: string };
  beforeAll(async () => {
    flow = await flowWithImages('cli-sbom');
    const client = new RegistryClient({ dockerConfig: false });
    const licenses = new Map([['6'.repeat(64), 'BSD-3-Clause'], ['7'.repeat(64), 'Apache Software License']]);
    startSbom = createSbom({ name: 'env-start', envs: [env('linux-64')], licenses });
    startRef = await pushImageSbom(client, flow.imageMap.steps['start']!.pinnedImage!, startSbom);
    await pushImageSbom(client, flow.imageMap.steps['end']!.pinnedImage!, createSbom({ name: 'env-end', envs: [env('linux-64'), env('linux-aarch64')] }));
  });
  afterAll(async () => {
    await rm(flow.dir, { recursive: true, force: true });
  });

  it('--json gives each selected image with its SBOM digests and SPDX document, read back from the registry', async () => {
    const result = await prebuilt(['sbom', 'flow.py', '--step', 'start', '--step', 'end', '--json'], flow.dir);
    expect(result.code, result.stderr).toBe(0);
    const out = JSON.parse(result.stdout) as { ok: boolean; flow: string; images: { steps: string[]; image: string; sbom: { digest: string; documentDigest: string }; spdx: { spdxVersion: string; name: string; packages: unknown[] } }[] };
    expect(out.ok).toBe(true);
    expect(out.flow).toBe('LifecycleFlow');
    expect(out.images.map((i) => i.steps)).toEqual([['start'], ['end']]);
    expect(out.images[0]!.sbom).toEqual({ digest: startRef.manifest, documentDigest: startSbom.digest });
    expect(out.images[0]!.spdx).toEqual(JSON.parse(Buffer.from(startSbom.bytes).toString('utf8')));
    expect(out.images[1]!.spdx.name).toBe('env-end');
    expect(out.images[1]!.spdx.packages).toHaveLength(6);
  });

  it('--spdx prints the stored document byte for byte; the table names each package and licence', async () => {
    const spdx = await prebuilt(['sbom', 'flow.py', '--step', 'start', '--spdx'], flow.dir);
    expect(spdx.code, spdx.stderr).toBe(0);
    expect(spdx.stdout).toBe(Buffer.from(startSbom.bytes).toString('utf8'));
    const text = await prebuilt(['sbom', 'flow.py', '--step', 'start'], flow.dir);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toContain(`SBOM ${startRef.manifest}`);
    expect(text.stdout).toMatch(/tinynum\s+1\.4\.0-h_0\s+BSD-3-Clause/);
    expect(text.stdout).toMatch(/tinyhttp\s+0\.3\.0\s+LicenseRef-Apache-Software-License-[0-9a-f]{8}/);
  });

  it('an image without an SBOM, an unknown step, --spdx over several images and a flow never built: exit 2 with the fix', async () => {
    const none = await prebuilt(['sbom', 'flow.py', '--step', 'train'], flow.dir);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('has no SBOM');
    expect(none.stderr).toContain('prebuilt build');
    const unknown = await prebuilt(['sbom', 'flow.py', '--step', 'nope'], flow.dir);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('has no step nope');
    const several = await prebuilt(['sbom', 'flow.py', '--spdx'], flow.dir);
    expect(several.code).toBe(2);
    expect(several.stderr).toContain('--step');
    const elsewhere = await mkdtemp(join(tmpdir(), 'prebuilt-cli-sbom-unbuilt-'));
    try {
      await writeFile(join(elsewhere, 'flow.py'), await (await import('node:fs/promises')).readFile(join(flow.dir, 'flow.py')));
      const unbuilt = await prebuilt(['sbom', 'flow.py', '--json'], elsewhere);
      expect(unbuilt.code).toBe(2);
      expect(unbuilt.stderr + unbuilt.stdout).toContain("prebuilt build flow.py");
      expect(unbuilt.stderr).not.toMatch(/\n\s+at /);
    } finally {
      await rm(elsewhere, { recursive: true, force: true });
    }
  });

  it('--help says what it reads and how', async () => {
    const help = await prebuilt(['sbom', '--help'], flow.dir);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('referrers API');
    expect(help.stdout).toContain('--spdx');
    expect(help.stdout).toContain('--step <name>');
  });
});

describeOrFailInCi('prebuilt sbom of a hostile SBOM (real CLI, real local registry)', registryMissing, () => {
  let flow: FlowWithImages;
  beforeAll(async () => {
    flow = await flowWithImages('cli-sbom-hostile');
    // What a registry (or a package's metadata) can put in an SBOM's packages: terminal escape
    // sequences (OSC 8 link, screen clear, OSC 52 clipboard write), a carriage return, a newline.
    const hostile = env('linux-64');
    hostile.packages[0] = { ...hostile.packages[0]!, name: 'tinynum\x1b]8;;https://attacker.example/\x07x\x1b]8;;\x07', version: '1.4.0\r\x1b[2J\x1b]52;c;cHduZWQ=\x07\nfake 9.9' };
    // What JSON.stringify leaves raw: DEL, a C1 control (U+009B, CSI), a bidi override.
    hostile.packages[1] = { ...hostile.packages[1]!, name: 'tinyhttp\x7f\x9b2J\u202elmth.exe' };
    await pushImageSbom(new RegistryClient({ dockerConfig: false }), flow.imageMap.steps['start']!.pinnedImage!, createSbom({ name: 'env-start', envs: [hostile] }));
  });
  afterAll(async () => {
    await rm(flow.dir, { recursive: true, force: true });
  });

  it('prints the packages\' control characters as escapes, one row per package', async () => {
    const text = await prebuilt(['sbom', 'flow.py', '--step', 'start'], flow.dir);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).not.toMatch(/[\x00-\x09\x0b-\x1f\x7f-\x9f]/);
    expect(text.stdout).toContain('tinynum\\x1b]8;;https://attacker.example/\\x07x\\x1b]8;;\\x07');
    expect(text.stdout).toContain('1.4.0\\x0d\\x1b[2J\\x1b]52;c;cHduZWQ=\\x07\\nfake 9.9');
    expect(text.stdout.split('\n').filter((line) => line.startsWith('fake'))).toEqual([]);
    expect(text.stdout).toContain('tinyhttp\\x7f\\x9b2J\\u202elmth.exe');
  });

  it('--json writes DEL, C1 controls and bidi overrides as \\u escapes (the same JSON value); --spdx does so on a terminal only, byte for byte elsewhere', async () => {
    const json = await prebuilt(['sbom', 'flow.py', '--step', 'start', '--json'], flow.dir);
    expect(json.code, json.stderr).toBe(0);
    expect(json.stdout).not.toMatch(/[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e]/);
    expect(json.stdout).toContain('tinyhttp\\u007f\\u009b2J\\u202elmth.exe');
    const document = (JSON.parse(json.stdout) as { images: { spdx: { packages: { name: string }[] } }[] }).images[0]!.spdx;
    expect(document.packages.map((p) => p.name)).toContain('tinyhttp\x7f\x9b2J\u202elmth.exe');

    const piped = await prebuilt(['sbom', 'flow.py', '--step', 'start', '--spdx'], flow.dir);
    expect(piped.stdout).toContain('tinyhttp\x7f\x9b2J\u202elmth.exe');
    let shown = '';
    const host = services.registries!.plain.host;
    const code = await main(['sbom', 'flow.py', '--step', 'start', '--spdx'], {
      cwd: flow.dir,
      env: { ...process.env, METAFLOW_PREBUILT_IMAGE_REGISTRY: 'local', METAFLOW_PREBUILT_LOCAL_REGISTRY: host, DOCKER_CONFIG: join(flow.dir, 'no-docker-config') },
      stdout: { isTTY: true, write: (t: string) => void (shown += t) },
      stderr: { write: () => undefined },
    });
    expect(code).toBe(0);
    expect(shown).not.toMatch(/[\x7f-\x9f\u202a-\u202e]/);
    expect(shown).toContain('tinyhttp\\u007f\\u009b2J\\u202elmth.exe');
    expect(JSON.parse(shown)).toEqual(JSON.parse(piped.stdout));
  });
});
