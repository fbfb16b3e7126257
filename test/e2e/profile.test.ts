// End to end: `prebuilt profile` through the real CLI, the test Docker daemon and the plain test
// registry. A 4-step flow with 2 envs (tinyframe from the example channel; tinyhttp from the
// example index) is built by the oci service with eStargz layers (static prefetch order); the
// command records the profile (pulling the images: the oci service builds without the daemon);
// --code, the failures (an import the image lacks, no network, the time limit, the path limit), an
// unbuilt flow and an absent daemon; on Docker with the containerd image store it records the
// same profile. Then the loop `prebuilt profile && prebuilt build`: the build
// picks the profile up by itself (no env variable, no --force) and puts the profile's files, and
// only them, before each layer's landmark; an unchanged profile builds nothing; a changed env
// section rebuilds only that env (`plan` says why); an explicit setting wins; a malformed profile
// is exit 2. The tests of this file run in order.
import { execFile, execFileSync } from 'node:child_process';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, expect } from 'vitest';
import { describeWith, getServices, itWith } from '../services.js';
import { cliEnv, parseJson, run, runCli, startFixtures, stopFixtures, uniqueNamespace, writeFlow, type BuildJson, type Fixtures } from './harness.js';

const services = getServices();
const NEEDS = ['docker', 'registries', 'baseImage'] as const;
const SITE = '/opt/prebuilt/env/lib/python3.11/site-packages';

const flowSource = (endBody: string): string => `from metaflow import FlowSpec, conda, conda_base, pypi, step
import json


@conda_base(python="3.11")
class ProfileFlow(FlowSpec):
    @conda(packages={"tinyframe": ""})
    @step
    def start(self):
        import tinyframe
        self.next(self.train)

    @conda(packages={"tinyframe": ""})
    @step
    def train(self):
        import tinyframe
        self.next(self.fetch)

    @pypi(packages={"tinyhttp": ""})
    @step
    def fetch(self):
        from tinyhttp import cli
        self.next(self.end)

    @conda(packages={"tinyframe": ""})
    @step
    def end(self):
        ${endBody}


if __name__ == "__main__":
    ProfileFlow()
`;

interface ProfileJson {
  ok: boolean;
  error?: { code: string; message: string; hint: string | null };
  flow: string;
  file: string;
  paths: number;
  steps: { step: string; envId: string; image: string; imports: string[] | null }[];
  envs: { envId: string; image: string; steps: string[]; paths: string[] }[];
}

/** The entries of every eStargz layer of an image the oci service pushed, in layer order: the names in tar order. */
async function layerEntries(image: string): Promise<string[][]> {
  const [name, digest] = image.split('@') as [string, string];
  const slash = name.indexOf('/');
  const host = name.slice(0, slash);
  const repository = name.slice(slash + 1).replace(/:[^:/]+$/, '');
  const get = async (path: string, accept = '*/*'): Promise<Buffer> => Buffer.from(await (await fetch(`http://${host}/v2/${repository}/${path}`, { headers: { accept } })).arrayBuffer());
  const manifest = JSON.parse((await get(`manifests/${digest}`, 'application/vnd.oci.image.manifest.v1+json')).toString()) as { layers: { digest: string; annotations?: Record<string, string> }[] };
  const lazy = manifest.layers.filter((l) => l.annotations?.['containerd.io/snapshot/stargz/toc.digest']);
  return Promise.all(
    lazy.map(async (layer) => {
      const tar = gunzipSync(await get(`blobs/${layer.digest}`));
      const listed = await new Promise<string>((resolve, reject) => {
        const child = execFile('tar', ['-t'], { encoding: 'utf8', maxBuffer: 1 << 26 }, (error, stdout) => (error ? reject(error) : resolve(stdout)));
        child.stdin!.end(tar);
      });
      return listed.trim().split('\n').map((entry) => entry.replace(/^\.\//, ''));
    }),
  );
}

/** The files of each layer before its `.prefetch.landmark` (directories left out), in order; one list per layer. */
function prefetched(layers: string[][]): string[][] {
  return layers.map((entries) => {
    const landmark = entries.indexOf('.prefetch.landmark');
    return landmark < 0 ? [] : entries.slice(0, landmark).filter((e) => !e.endsWith('/'));
  });
}

describeWith(NEEDS, 'prebuilt profile end to end (real CLI, Docker daemon, plain registry; 4 steps, 2 envs, eStargz)', () => {
  let fixtures: Fixtures;
  let flowDir: string;
  let env: NodeJS.ProcessEnv;
  let built: BuildJson;
  let recorded: ProfileJson;
  const pulled = new Set<string>();

  beforeAll(async () => {
    fixtures = await startFixtures();
    flowDir = join(fixtures.dir, 'flow');
    await writeFlow(flowDir, 'profile_flow.py', flowSource('import json.decoder'));
    env = cliEnv(fixtures, services, uniqueNamespace('profile'), { METAFLOW_PREBUILT_BUILD_SERVICE: 'oci', METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION: 'estargz' });
  });
  afterAll(async () => {
    const docker = { ...process.env, DOCKER_HOST: services.dockerHost ?? '' };
    for (const image of pulled) await run('docker', ['image', 'rm', '-f', image], docker); // the images this file pulled, nothing else
    await stopFixtures(fixtures);
  });

  const cli = (...args: string[]) => runCli(args, { env, cwd: flowDir });

  itWith(NEEDS, '--help shows the whole loop: build, profile, build again with the profile', async () => {
    const help = await cli('profile', '--help');
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('--code <python>');
    expect(help.stdout).toContain('$ prebuilt profile flow.py && prebuilt build flow.py');
    expect(help.stdout).toMatch(/picks it up by itself/);
    expect(help.stdout).not.toContain('--force');
    expect(help.stdout).toMatch(/has no\s+network, no mounts/);
  });

  itWith(NEEDS, 'a flow not built yet: exit 2, "run prebuilt build first"', async () => {
    const result = await cli('profile', 'profile_flow.py');
    expect(result.code, result.stderr).toBe(2);
    expect(result.stderr).toContain('has no image map');
    expect(result.stderr).toContain("Run `prebuilt build profile_flow.py` first");
  });

  itWith(NEEDS, 'records every step with an env: one run per image and code (start and train share one), one file beside the flow, one section per env in first-read order', async () => {
    const build = await cli('build', 'profile_flow.py', '--json');
    expect(build.code, build.stderr).toBe(0);
    built = parseJson<BuildJson>(build);
    const result = await cli('profile', 'profile_flow.py', '--json');
    expect(result.code, result.stderr).toBe(0);
    recorded = parseJson<ProfileJson>(result);
    for (const e of recorded.envs) pulled.add(e.image);
    expect(recorded.ok).toBe(true);
    expect(recorded.file).toBe(join(flowDir, 'profile_flow.prebuilt.prefetch'));
    expect(recorded.steps.map((s) => [s.step, s.imports])).toEqual([
      ['start', ['import json', 'import tinyframe']],
      ['train', ['import json', 'import tinyframe']],
      ['fetch', ['import json', 'from tinyhttp import cli']],
      ['end', ['import json', 'import json.decoder']],
    ]);
    expect(recorded.envs.map((e) => e.steps)).toEqual([['start', 'train', 'end'], ['fetch']]);
    const pinned = (step: string): string => {
      const image = Object.values(built.images).find((i) => i.steps.includes(step))!;
      return `${image.image}@${image.digest}`;
    };
    expect(recorded.envs.map((e) => e.image)).toEqual([pinned('start'), pinned('fetch')]);
    expect(result.stderr).toMatch(/^start, train: recording 2 imports in /m);
    expect(result.stderr).toMatch(/^end: recording 2 imports in /m);
    expect(result.stderr).toMatch(/^pulling /m);
    const [frameEnv, httpEnv] = recorded.envs as [ProfileJson['envs'][0], ProfileJson['envs'][0]];
    expect(frameEnv.paths.some((p) => p.startsWith(`${SITE}/tinyframe/`))).toBe(true);
    expect(frameEnv.paths.some((p) => p.startsWith(`${SITE}/tinynum/`))).toBe(true); // tinyframe imports it
    expect(frameEnv.paths).toContain('/opt/prebuilt/env/bin/python3.11');
    expect(frameEnv.paths.some((p) => /\/json\/(__pycache__\/)?decoder/.test(p))).toBe(true); // end's own import
    expect(httpEnv.paths.some((p) => p.startsWith(`${SITE}/tinyhttp/`) && p.includes('cli'))).toBe(true);
    expect(httpEnv.paths.some((p) => p.startsWith(`${SITE}/tinyframe/`))).toBe(false);
    const text = await readFile(recorded.file, 'utf8');
    const lines = text.split('\n').filter((l) => l !== '' && !l.startsWith('#'));
    // One section per env: the envs share the image prefix, so a path alone does not say whose it is.
    expect(lines).toEqual([`[env ${frameEnv.envId}]`, ...frameEnv.paths, `[env ${httpEnv.envId}]`, ...httpEnv.paths]);
    expect(new Set([...frameEnv.paths, ...httpEnv.paths]).size).toBe(recorded.paths);
    expect(lines.filter((l) => !l.startsWith('[')).every((l) => l.startsWith('/') && !l.startsWith('/proc/'))).toBe(true);
    expect(text).toMatch(/^# start, train, end: /m);
  }, 600_000);

  itWith([...NEEDS, 'containerdStoreDocker'], 'on Docker with the containerd image store (the default of Docker Engine 29): the same images and code record the same profile', async () => {
    const c8d = { ...env, DOCKER_HOST: services.containerdStoreDocker!.host };
    try {
      const result = await runCli(['profile', 'profile_flow.py', '-o', 'c8d.prefetch', '--json'], { env: c8d, cwd: flowDir });
      expect(result.code, result.stderr).toBe(0);
      const out = parseJson<ProfileJson>(result);
      expect(result.stderr).toMatch(/^pulling /m); // into that daemon's own store
      expect(out.steps).toEqual(recorded.steps);
      expect(out.envs).toEqual(recorded.envs);
      const body = (text: string): string => text.split('\n').filter((l) => !l.startsWith('#')).join('\n');
      expect(body(await readFile(join(flowDir, 'c8d.prefetch'), 'utf8'))).toBe(body(await readFile(recorded.file, 'utf8')));
    } finally {
      for (const e of recorded.envs) await run('docker', ['image', 'rm', '-f', e.image], { ...process.env, DOCKER_HOST: services.containerdStoreDocker!.host });
    }
  }, 300_000);

  itWith(NEEDS, 'the same images and code give the same file; the text form says where it went and how to use it', async () => {
    const before = await readFile(recorded.file, 'utf8');
    const again = await cli('profile', 'profile_flow.py', '--step', 'start', '--step', 'end', '-o', 'again.prefetch');
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toContain('ProfileFlow: wrote ');
    expect(again.stdout).toContain('build with it: METAFLOW_PREBUILT_OCI_PREFETCH=again.prefetch prebuilt build profile_flow.py\n');
    expect(again.stderr).not.toContain('pulling'); // the daemon has the images now
    const frameOnly = (await readFile(join(flowDir, 'again.prefetch'), 'utf8')).split('\n').filter((l) => l !== '' && !l.startsWith('#'));
    expect(frameOnly).toEqual([`[env ${recorded.envs[0]!.envId}]`, ...recorded.envs[0]!.paths]);
    expect(await readFile(recorded.file, 'utf8')).toBe(before);
    const beside = await cli('profile', 'profile_flow.py');
    expect(beside.code, beside.stderr).toBe(0);
    expect(beside.stdout).toContain('build with it: prebuilt build profile_flow.py (it picks up profile_flow.prebuilt.prefetch and rebuilds the images laid out otherwise)');
    expect(await readFile(recorded.file, 'utf8')).toBe(before);
    // The default build service would ignore it: the line says how to build with it instead.
    const docker = await runCli(['profile', 'profile_flow.py'], { env: { ...env, METAFLOW_PREBUILT_BUILD_SERVICE: 'docker' }, cwd: flowDir });
    expect(docker.code, docker.stderr).toBe(0);
    expect(docker.stdout).toContain(
      'build with it: METAFLOW_PREBUILT_BUILD_SERVICE=oci METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION=estargz prebuilt build profile_flow.py\n' +
        '  (as set now, a build would not use it: the docker build service lays out no prefetch; zstd:chunked layers use it too)\n',
    );
    expect(docker.stdout).not.toContain('it picks up');
  }, 300_000);

  itWith(NEEDS, '--code replaces the imports (a warm-up of the user\'s own)', async () => {
    const result = await cli('profile', 'profile_flow.py', '--step', 'fetch', '--code', 'import tinyurl', '-o', 'code.prefetch', '--json');
    expect(result.code, result.stderr).toBe(0);
    const out = parseJson<ProfileJson>(result);
    expect(out.steps).toEqual([{ step: 'fetch', envId: recorded.steps[2]!.envId, image: recorded.envs[1]!.image, imports: null }]);
    expect(result.stderr).toContain('fetch: recording --code in');
    const paths = out.envs[0]!.paths;
    expect(paths.some((p) => p.startsWith(`${SITE}/tinyurl/`))).toBe(true);
    expect(paths.some((p) => p.startsWith(`${SITE}/tinyhttp/`))).toBe(false);
  }, 300_000);

  itWith(NEEDS, 'an import the image lacks: exit 1 naming the step, the image and the error from the stderr tail; nothing written', async () => {
    await writeFlow(flowDir, 'profile_flow.py', flowSource('import not_in_this_env'));
    try {
      const result = await cli('profile', 'profile_flow.py', '--step', 'end', '-o', 'failed.prefetch');
      expect(result.code, result.stderr).toBe(1);
      expect(result.stderr).toContain('The recording of step end failed in');
      expect(result.stderr).toContain("ModuleNotFoundError: No module named 'not_in_this_env'");
      expect(result.stderr).not.toMatch(/^\s+at .*\.js:\d+/m); // no stack trace
      await expect(readFile(join(flowDir, 'failed.prefetch'))).rejects.toMatchObject({ code: 'ENOENT' });
      const json = await cli('profile', 'profile_flow.py', '--step', 'end', '--json');
      expect(json.code).toBe(1);
      expect(parseJson<ProfileJson>(json)).toMatchObject({ ok: false, error: { code: 'profile-failed' } });
    } finally {
      await writeFlow(flowDir, 'profile_flow.py', flowSource('import json.decoder'));
    }
  }, 300_000);

  itWith(NEEDS, 'the container has no network: the recorded code cannot reach the registry on this machine\'s loopback', async () => {
    const [host, port] = services.registries!.plain.host.split(':') as [string, string];
    const code = `import socket\nsocket.create_connection((${JSON.stringify(host)}, ${port}), timeout=5)`;
    const result = await cli('profile', 'profile_flow.py', '--step', 'start', '--code', code, '-o', 'net.prefetch');
    expect(result.code, result.stderr).toBe(1);
    expect(result.stderr).toMatch(/ConnectionRefusedError|Network is unreachable|OSError/);
  }, 300_000);

  itWith(NEEDS, 'bounded: a run past --timeout and a run reading more than --max-paths files fail with exit 1 and say which bound', async () => {
    const slow = await cli('profile', 'profile_flow.py', '--step', 'start', '--code', 'import time\nprint("warming up")\ntime.sleep(60)', '--timeout', '2s', '-o', 'slow.prefetch');
    expect(slow.code, slow.stderr).toBe(1);
    expect(slow.stderr).toContain('did not finish within 2s');
    expect(slow.stderr).toContain('warming up');
    const many = await cli('profile', 'profile_flow.py', '--step', 'start', '--max-paths', '3', '-o', 'many.prefetch');
    expect(many.code, many.stderr).toBe(1);
    expect(many.stderr).toContain('read more than 3 files');
    expect(many.stderr).toContain('--max-paths');
    const bad = await cli('profile', 'profile_flow.py', '--max-paths', 'lots');
    expect(bad.code).toBe(2);
  }, 300_000);

  itWith(NEEDS, 'no Docker daemon: the unreachable-daemon error of the other commands (exit 2); an unbuilt step: exit 2', async () => {
    const absent = await runCli(['profile', 'profile_flow.py'], { env: { ...env, DOCKER_HOST: 'unix:///nonexistent/docker.sock' }, cwd: flowDir });
    expect(absent.code, absent.stderr).toBe(2);
    expect(absent.stderr).toContain('The Docker daemon at unix:///nonexistent/docker.sock cannot be reached');
    const other = join(fixtures.dir, 'other');
    await mkdir(other, { recursive: true });
    const endStep = '    @conda(packages={"tinyframe": ""})\n    @step\n    def end';
    await writeFile(join(other, 'profile_flow.py'), flowSource('pass').replace(endStep, `    @step\n    def extra(self):\n        pass\n\n${endStep}`));
    const added = await runCli(['profile', 'profile_flow.py'], { env: { ...env, METAFLOW_PREBUILT_STATE_FILE: join(flowDir, '.prebuilt', 'ProfileFlow', 'images.json') }, cwd: other });
    expect(added.code, added.stderr).toBe(2);
    expect(added.stderr).toContain('has no image for step extra');
  }, 300_000);


  type PlanJson = { images: Record<string, { status: string; reason?: string; layout?: string; digest?: string; steps: string[] }> };
  type LayoutJson = BuildJson & { prefetch?: { profile: { file: string; from: string } | null; images: Record<string, string> } };
  const envOf = (json: BuildJson, step: string): string => Object.entries(json.images).find(([, i]) => i.steps.includes(step))![0];

  /** The image manifest's own annotations (the prefetch layout record among them). */
  async function manifestAnnotations(image: string, digest: string): Promise<Record<string, string>> {
    const name = image.replace(/:[^:/]+$/, '');
    const slash = name.indexOf('/');
    const response = await fetch(`http://${name.slice(0, slash)}/v2/${name.slice(slash + 1)}/manifests/${digest}`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
    return ((await response.json()) as { annotations?: Record<string, string> }).annotations ?? {};
  }

  let looped: LayoutJson;

  itWith(NEEDS, "the loop `prebuilt profile && prebuilt build`: the build picks up the profile beside the flow (no env variable, no --force), rebuilds the images laid out otherwise, and puts the profile's files, and only them, before each landmark", async () => {
    expect(env['METAFLOW_PREBUILT_OCI_PREFETCH']).toBeUndefined();
    const staticOrder = prefetched(await layerEntries(recorded.envs[1]!.image)).flat();
    expect(await manifestAnnotations(recorded.envs[1]!.image.split('@')[0]!, recorded.envs[1]!.image.split('@')[1]!)).toMatchObject({ 'dev.prebuilt.prefetch': 'static' });
    const build = await cli('build', 'profile_flow.py', '--json');
    looped = parseJson<LayoutJson>(build);
    expect(build.code, JSON.stringify(looped.failures ?? build.stderr)).toBe(0);
    expect(Object.values(looped.images).map((i) => i.status)).toEqual(['built', 'built']);
    expect(looped.prefetch?.profile).toEqual({ file: recorded.file, from: 'flow' });
    const fetchEnv = envOf(looped, 'fetch');
    const fetchImage = looped.images[fetchEnv]!;
    for (const [envId, image] of Object.entries(looped.images)) {
      expect(looped.prefetch?.images[envId]).toMatch(/^profile sha256:[0-9a-f]{64}$/);
      expect(await manifestAnnotations(image.image, image.digest), 'the record travels with the image').toEqual({ 'dev.prebuilt.prefetch': looped.prefetch?.images[envId] });
    }
    expect(looped.prefetch?.images[fetchEnv]).not.toBe(looped.prefetch?.images[envOf(looped, 'start')]);
    const layers = prefetched(await layerEntries(`${fetchImage.image}@${fetchImage.digest}`));
    const profile = recorded.envs[1]!.paths.map((p) => p.slice(1));
    const profiled = layers.flat();
    expect(profiled.length).toBeGreaterThan(1);
    expect(profiled.filter((p) => !profile.includes(p)), 'every prefetched file is one the profile names for its env').toEqual([]);
    for (const files of layers) {
      const positions = files.map((p) => profile.indexOf(p));
      expect(positions, 'in the profile\'s order within the layer').toEqual([...positions].sort((a, b) => a - b));
    }
    expect(profiled).toContain(`${SITE.slice(1)}/tinyhttp/__pycache__/cli.cpython-311.pyc`);
    expect(profiled.some((p) => p.includes('/tinyframe/')), "the other env's paths stay out").toBe(false);
    expect(staticOrder.filter((p) => !profile.includes(p)).length, 'the static order prefetches files the task does not read').toBeGreaterThan(0);
    expect(fetchImage.digest).not.toBe(recorded.envs[1]!.image.split('@')[1]);
  }, 600_000);

  itWith(NEEDS, 'an unchanged profile builds nothing, and the build says which profile it used', async () => {
    const build = await cli('build', 'profile_flow.py');
    expect(build.code, build.stderr).toBe(0);
    expect(build.stdout).toContain('prefetch profile: profile_flow.prebuilt.prefetch (beside the flow), 2 of 2 images laid out with it');
    expect(build.stdout.match(/ present /g)).toHaveLength(2);
    expect(build.stdout).not.toContain(' built ');
    const plan = parseJson<PlanJson>(await cli('plan', 'profile_flow.py', '--json'));
    expect(Object.values(plan.images).map((i) => [i.status, i.reason])).toEqual([['present', undefined], ['present', undefined]]);
  }, 300_000);

  itWith(NEEDS, "a changed env section rebuilds only that env's image; plan says why first", async () => {
    const fetchEnv = envOf(looped, 'fetch');
    const frameEnv = envOf(looped, 'start');
    const text = await readFile(recorded.file, 'utf8');
    // The fetch env's section without its last path: the other section is unchanged.
    const lines = text.trimEnd().split('\n');
    await writeFile(recorded.file, `${lines.slice(0, -1).join('\n')}\n`);
    expect(lines.at(-1)).toBe(recorded.envs[1]!.paths.at(-1));
    const planText = await cli('plan', 'profile_flow.py');
    expect(planText.code, planText.stderr).toBe(0);
    expect(planText.stdout).toContain('will rebuild: prefetch profile changed');
    const plan = parseJson<PlanJson>(await cli('plan', 'profile_flow.py', '--json'));
    expect(plan.images[fetchEnv]).toMatchObject({ status: 'missing', reason: 'prefetch profile changed' });
    expect(plan.images[frameEnv]).toMatchObject({ status: 'present' });
    const build = await cli('build', 'profile_flow.py', '--json');
    const rebuilt = parseJson<LayoutJson>(build);
    expect(build.code, JSON.stringify(rebuilt.failures ?? build.stderr)).toBe(0);
    expect(rebuilt.images[fetchEnv]!.status).toBe('built');
    expect(rebuilt.images[fetchEnv]!.digest).not.toBe(looped.images[fetchEnv]!.digest);
    expect(rebuilt.images[frameEnv]).toMatchObject({ status: 'present', digest: looped.images[frameEnv]!.digest });
    expect(rebuilt.prefetch?.images[frameEnv]).toBe(looped.prefetch?.images[frameEnv]);
    expect(rebuilt.prefetch?.images[fetchEnv]).not.toBe(looped.prefetch?.images[fetchEnv]);
  }, 600_000);

  itWith(NEEDS, 'an explicit METAFLOW_PREBUILT_OCI_PREFETCH wins over the profile beside the flow', async () => {
    const explicit = { ...env, METAFLOW_PREBUILT_OCI_PREFETCH: 'static' };
    const plan = parseJson<PlanJson>(await runCli(['plan', 'profile_flow.py', '--json'], { env: explicit, cwd: flowDir }));
    expect(Object.values(plan.images).map((i) => [i.status, i.reason])).toEqual([['missing', 'prefetch profile changed'], ['missing', 'prefetch profile changed']]);
    const build = await runCli(['build', 'profile_flow.py', '--json'], { env: explicit, cwd: flowDir });
    const json = parseJson<LayoutJson>(build);
    expect(build.code, JSON.stringify(json.failures ?? build.stderr)).toBe(0);
    expect(Object.values(json.images).map((i) => i.status)).toEqual(['built', 'built']);
    expect(json.prefetch).toEqual({ profile: null, images: Object.fromEntries(Object.keys(json.images).map((envId) => [envId, 'static'])) });
    const text = await runCli(['build', 'profile_flow.py'], { env: explicit, cwd: flowDir });
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toContain('prefetch order: static (no recorded profile');
    expect(text.stdout.match(/ present /g)).toHaveLength(2);
  }, 600_000);

  itWith(NEEDS, 'the layer format the runners need: an erofs build rebuilds tar images and those of the other EROFS media type, a tar build rebuilds EROFS images, tar images stay whatever their codec', async () => {
    const withLayers = (compression: string, runners?: string) => ({ ...env, METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION: compression, ...(runners ? { METAFLOW_PREBUILT_OCI_RUNNERS: runners } : {}) });
    const build = async (layers: NodeJS.ProcessEnv) => {
      const result = await runCli(['build', 'profile_flow.py', '--json'], { env: layers, cwd: flowDir });
      const json = parseJson<LayoutJson>(result);
      expect(result.code, JSON.stringify(json.failures ?? result.stderr)).toBe(0);
      return json;
    };
    const statuses = (json: BuildJson) => Object.values(json.images).map((i) => i.status);
    const erofs21 = withLayers('erofs', 'containerd@2.1');
    const planText = await runCli(['plan', 'profile_flow.py'], { env: erofs21, cwd: flowDir });
    expect(planText.code, planText.stderr).toBe(0);
    expect(planText.stdout).toContain('will rebuild: built with tar layers; this build writes EROFS layers of type application/vnd.oci.image.layer.v1.erofs');
    const first = await build(erofs21);
    expect(statuses(first), 'the eStargz images are rebuilt as EROFS').toEqual(['built', 'built']);
    expect(first.prefetch, 'an EROFS record is not a prefetch order').toBeUndefined();
    for (const image of Object.values(first.images)) {
      expect(await manifestAnnotations(image.image, image.digest)).toEqual({ 'dev.prebuilt.erofs': 'application/vnd.oci.image.layer.v1.erofs' });
    }
    expect(statuses(await build(erofs21)), 'unchanged: kept').toEqual(['present', 'present']);
    expect(statuses(await build(withLayers('erofs', 'containerd@2.3'))), 'the runners moved past containerd 2.3: the other media type').toEqual(['built', 'built']);
    const plan = parseJson<PlanJson>(await runCli(['plan', 'profile_flow.py', '--json'], { env: withLayers('zstd'), cwd: flowDir }));
    expect(Object.values(plan.images).map((i) => [i.status, i.reason])).toEqual([
      ['missing', 'built with EROFS layers; this build makes tar layers'],
      ['missing', 'built with EROFS layers; this build makes tar layers'],
    ]);
    const zstd = await build(withLayers('zstd'));
    expect(statuses(zstd)).toEqual(['built', 'built']);
    for (const image of Object.values(zstd.images)) expect(await manifestAnnotations(image.image, image.digest)).toEqual({});
    expect(statuses(await build(withLayers('gzip'))), 'a zstd image is kept by a gzip build, as documented').toEqual(['present', 'present']);
  }, 600_000);

  itWith(NEEDS, 'a malformed or unreadable profile beside the flow is exit 2 with what is wrong and what to do; nothing is built', async () => {
    const good = await readFile(recorded.file, 'utf8');
    try {
      await writeFile(recorded.file, `${good}[env not an id]\n`);
      for (const command of ['build', 'plan']) {
        const result = await cli(command, 'profile_flow.py');
        expect(result.code, result.stderr).toBe(2);
        expect(result.stderr).toMatch(/The eStargz prefetch profile '.*profile_flow\.prebuilt\.prefetch': line \d+ is not a section line/);
        expect(result.stderr).toContain("prebuilt profile <flow.py>");
        expect(result.stderr).not.toMatch(/\n\s+at /); // no stack trace
      }
      const json = await cli('build', 'profile_flow.py', '--json');
      expect(json.code).toBe(2);
      expect(parseJson<BuildJson>(json)).toMatchObject({ ok: false, error: { code: 'config' } });
      await rm(recorded.file);
      await mkdir(recorded.file); // there, but not a file
      const unreadable = await cli('build', 'profile_flow.py');
      expect(unreadable.code, unreadable.stderr).toBe(2);
      expect(unreadable.stderr).toMatch(/The eStargz prefetch profile '.*profile_flow\.prebuilt\.prefetch' is not a regular file \(a directory\)/);
      await rm(recorded.file, { recursive: true });
      // A named pipe (the flow's repository may hold anything there): refused at once, not read until someone writes.
      execFileSync('mkfifo', [recorded.file]);
      const fifo = await cli('build', 'profile_flow.py');
      expect(fifo.code, fifo.stderr).toBe(2);
      expect(fifo.stderr).toMatch(/The eStargz prefetch profile '.*profile_flow\.prebuilt\.prefetch' is not a regular file \(a FIFO\)/);
      await rm(recorded.file);
    } finally {
      await writeFile(recorded.file, good);
    }
  }, 300_000);
});
