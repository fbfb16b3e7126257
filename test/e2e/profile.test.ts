// End to end: `prebuilt profile` through the real CLI, the test Docker daemon and the plain test
// registry. A 4-step flow with 2 envs (tinyframe from the example channel; tinyhttp from the
// example index) is built by the oci service with eStargz layers (static prefetch order); the
// command records the profile (pulling the images: the oci service builds without the daemon);
// a forced rebuild with that profile puts the profile's files, and only them, before each layer's
// landmark. Then --code, the failures (an import the image lacks, no network, the time limit, the
// path limit), an unbuilt flow and an absent daemon. The tests of this file run in order.
import { execFile } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
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
    expect(help.stdout).toContain('METAFLOW_PREBUILT_OCI_PREFETCH=flow.prebuilt.prefetch prebuilt build --force flow.py');
    expect(help.stdout).toMatch(/has no\s+network, no mounts/);
  });

  itWith(NEEDS, 'a flow not built yet: exit 2, "run prebuilt build first"', async () => {
    const result = await cli('profile', 'profile_flow.py');
    expect(result.code, result.stderr).toBe(2);
    expect(result.stderr).toContain('has no image map');
    expect(result.stderr).toContain("Run 'prebuilt build profile_flow.py' first");
  });

  itWith(NEEDS, 'records every step with an env: one run per image and code (start and train share one), one file beside the flow with the union in first-read order', async () => {
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
    expect(lines).toEqual([...new Set([...frameEnv.paths, ...httpEnv.paths])]);
    expect(lines.length).toBe(recorded.paths);
    expect(lines.every((l) => l.startsWith('/') && !l.startsWith('/proc/'))).toBe(true);
    expect(text).toMatch(/^# start, train, end: /m);
  }, 600_000);

  itWith(NEEDS, 'the same images and code give the same file; the text form says where it went and how to use it', async () => {
    const before = await readFile(recorded.file, 'utf8');
    const again = await cli('profile', 'profile_flow.py', '--step', 'start', '--step', 'end', '-o', 'again.prefetch');
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toContain('ProfileFlow: wrote ');
    expect(again.stdout).toContain('METAFLOW_PREBUILT_OCI_PREFETCH=again.prefetch prebuilt build --force profile_flow.py');
    expect(again.stderr).not.toContain('pulling'); // the daemon has the images now
    const frameOnly = (await readFile(join(flowDir, 'again.prefetch'), 'utf8')).split('\n').filter((l) => l !== '' && !l.startsWith('#'));
    expect(frameOnly).toEqual(recorded.envs[0]!.paths);
    expect(await readFile(recorded.file, 'utf8')).toBe(before);
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
    expect(added.stderr).toContain('has no step extra');
  }, 300_000);

  itWith(NEEDS, 'fed back into a forced oci build with eStargz layers, it changes the layer order: the files before each landmark are the profile\'s, in its order', async () => {
    const staticOrder = prefetched(await layerEntries(recorded.envs[1]!.image)).flat();
    const rebuild = await runCli(['build', 'profile_flow.py', '--force', '--json'], { env: { ...env, METAFLOW_PREBUILT_OCI_PREFETCH: recorded.file }, cwd: flowDir });
    const rebuilt = parseJson<BuildJson>(rebuild);
    expect(rebuild.code, JSON.stringify(rebuilt.failures ?? rebuild.stderr)).toBe(0);
    const fetchImage = Object.values(rebuilt.images).find((i) => i.steps.includes('fetch'))!;
    const layers = prefetched(await layerEntries(`${fetchImage.image}@${fetchImage.digest}`));
    const profile = recorded.envs[1]!.paths.map((p) => p.slice(1));
    const profiled = layers.flat();
    expect(profiled.length).toBeGreaterThan(1);
    expect(profiled.filter((p) => !profile.includes(p)), 'every prefetched file is one the profile names').toEqual([]);
    for (const files of layers) {
      const positions = files.map((p) => profile.indexOf(p));
      expect(positions, 'in the profile\'s order within the layer').toEqual([...positions].sort((a, b) => a - b));
    }
    expect(profiled).toContain(`${SITE.slice(1)}/tinyhttp/__pycache__/cli.cpython-311.pyc`);
    expect(staticOrder.filter((p) => !profile.includes(p)).length, 'the static order prefetches files the task does not read').toBeGreaterThan(0);
    expect(fetchImage.digest).not.toBe(recorded.envs[1]!.image.split('@')[1]);
  }, 600_000);
});
