// End to end: `prebuilt plan` and `prebuilt build` through the real CLI, the test Docker daemon and
// the plain test registry, on a 4-step flow with 2 distinct envs built from the example channel
// and index. The tests of this file run in order and share one flow directory and one image
// namespace: plan (nothing built) → build (2 images) → build again (both present) → plan (both
// present) → human output → one step's package changes (exactly that image is rebuilt).
import { mkdir, readFile, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, expect } from 'vitest';
import { describeWith, getServices, itWith } from '../services.js';
import {
  cliEnv,
  headManifest,
  importsInImage,
  parseJson,
  ROOT,
  runCli,
  startFixtures,
  stopFixtures,
  uniqueNamespace,
  writeFlow,
  type BuildJson,
  type Fixtures,
} from './harness.js';

const services = getServices();
const NEEDS = ['docker', 'registries', 'baseImage'] as const;

const flowSource = (fetchPackages: string): string => `from metaflow import FlowSpec, conda, conda_base, pypi, step


@conda_base(python="3.11")
class TwoEnvFlow(FlowSpec):
    @conda(packages={"tinyframe": ""})
    @step
    def start(self):
        self.next(self.fetch)

    @pypi(packages=${fetchPackages})
    @step
    def fetch(self):
        self.next(self.report)

    @conda(packages={"tinyframe": ""})
    @step
    def report(self):
        self.next(self.end)

    @pypi(packages=${fetchPackages})
    @step
    def end(self):
        pass


if __name__ == "__main__":
    TwoEnvFlow()
`;

describeWith(NEEDS, 'prebuilt build end to end (real CLI, Docker daemon, plain registry; 4 steps, 2 envs)', () => {
  let fixtures: Fixtures;
  let flowDir: string;
  let env: NodeJS.ProcessEnv;
  let first: BuildJson;

  beforeAll(async () => {
    fixtures = await startFixtures();
    flowDir = join(fixtures.dir, 'flow');
    await writeFlow(flowDir, 'two_env_flow.py', flowSource('{"tinyhttp": ""}'));
    env = cliEnv(fixtures, services, uniqueNamespace('build'));
  });
  afterAll(async () => {
    await stopFixtures(fixtures);
  });

  const cli = (...args: string[]) => runCli(args, { env, cwd: flowDir });

  itWith(NEEDS, 'plan --json says both images are missing and builds nothing (the registry has neither tag)', async () => {
    const planned = await cli('plan', 'two_env_flow.py', '--json');
    expect(planned.code, planned.stderr).toBe(0);
    const plan = parseJson<{ images: Record<string, { image: string; status: string; steps: string[] }> }>(planned);
    const images = Object.values(plan.images);
    expect(images.map((image) => image.status)).toEqual(['missing', 'missing']);
    expect(images.map((image) => image.steps)).toEqual([
      ['start', 'report'],
      ['fetch', 'end'],
    ]);
    for (const image of images) expect((await headManifest(image.image)).status).toBe(404);
  }, 180_000);

  itWith(NEEDS, 'build --json builds exactly 2 images, pushed with the digests the registry reports, and maps every step', async () => {
    const built = await cli('build', 'two_env_flow.py', '--json');
    expect(built.code, built.stderr).toBe(0);
    first = parseJson<BuildJson>(built);
    expect(first.flow).toBe('TwoEnvFlow');
    const ids = Object.keys(first.images);
    expect(ids).toHaveLength(2);
    for (const [envId, image] of Object.entries(first.images)) {
      expect(envId).toMatch(/^[0-9a-f]{16}$/);
      expect(image.status).toBe('built');
      expect(image.image).toBe(`${env['METAFLOW_PREBUILT_LOCAL_REGISTRY']}/${env['METAFLOW_PREBUILT_IMAGE_NAMESPACE']}:env-${envId}-amd64`);
      expect(image.python).toBe('/opt/prebuilt/env/bin/python');
      expect(image.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
      expect(await headManifest(image.image)).toEqual({ status: 200, digest: image.digest });
      expect(image.pullConfig).toEqual({});
    }
    expect(Object.values(first.images).map((image) => image.steps)).toEqual([
      ['start', 'report'],
      ['fetch', 'end'],
    ]);
    for (const [step, mapped] of Object.entries(first.steps)) {
      const image = first.images[mapped.envId ?? ''];
      expect(image, step).toBeDefined();
      expect(image!.steps).toContain(step);
      // Deployed specs name the image by digest (`repo:tag@sha256:…`), so a moved tag never changes what runs.
      // `packages`: what the image was built for, as Metaflow's get_environment names them (the local datastore pins requests; under PyPI for a @pypi step).
      const packages = step === 'start' || step === 'report' ? { conda: { requests: '>=2.21.0', tinyframe: '' }, pypi: {} } : { conda: {}, pypi: { requests: '>=2.21.0', tinyhttp: '' } };
      expect(mapped).toEqual({ envId: mapped.envId, image: image!.image, pinnedImage: `${image!.image}@${image!.digest}`, python: image!.python, packages });
    }
    expect(Object.keys(first.steps)).toEqual(['start', 'fetch', 'report', 'end']);
    expect(first.stateFile).toBe(join(flowDir, '.prebuilt', 'TwoEnvFlow', 'images.json'));
  }, 240_000);

  itWith(NEEDS, "each step's interpreter imports its own env's packages inside its image, and not the other env's", async () => {
    expect(first, 'the build test ran').toBeDefined();
    const conda = first.steps['start']!;
    const pypi = first.steps['fetch']!;
    const inConda = await importsInImage(services, conda.image, conda.python, ['tinyframe', 'tinynum', 'tinyhttp', 'tinyurl']);
    expect(inConda['tinyframe']).toBe('0.9.1');
    expect(inConda['tinynum']).toBe('1.4.0');
    expect(inConda['tinyhttp']).toMatch(/^ImportError: No module named 'tinyhttp'/);
    expect(inConda['tinyurl']).toMatch(/^ImportError/);
    const inPypi = await importsInImage(services, pypi.image, pypi.python, ['tinyhttp', 'tinyurl', 'tinyframe', 'tinynum']);
    expect(inPypi['tinyhttp']).toBe('0.3.0');
    expect(inPypi['tinyurl']).toBe('1.1.0');
    expect(inPypi['tinyframe']).toMatch(/^ImportError: No module named 'tinyframe'/);
    expect(inPypi['tinynum']).toMatch(/^ImportError/);
  }, 180_000);

  itWith(NEEDS, 'build again builds nothing: every image is present, same digests, and the state file equals the image map', async () => {
    expect(first, 'the build test ran').toBeDefined();
    const again = await cli('build', 'two_env_flow.py', '--json');
    expect(again.code, again.stderr).toBe(0);
    const map = parseJson<BuildJson>(again);
    expect(Object.keys(map.images)).toEqual(Object.keys(first.images));
    for (const [envId, image] of Object.entries(map.images)) {
      expect(image).toEqual({ ...first.images[envId], status: 'present' });
    }
    expect(map.steps).toEqual(first.steps);
    // The envelope's ok beside the image map and where it was written.
    expect(map.ok).toBe(true);
    const { stateFile, ok: _ok, ...imageMap } = map;
    expect(JSON.parse(await readFile(stateFile!, 'utf8'))).toEqual(imageMap);
    // Nothing was built: no phase past the registry check.
    expect(again.stderr).toBe('');
  }, 180_000);

  itWith(NEEDS, 'an image map that cannot be written once every image is there: exit 2, and --json still names the images with the error (a CI script can use them)', async () => {
    expect(first, 'the build test ran').toBeDefined();
    // A file system that takes no new file (checked only when the map is written): its write fails after the registry has every image.
    const unwritable = { ...env, METAFLOW_PREBUILT_STATE_FILE: '/proc/prebuilt-e2e-maps/images.json' };
    const json = await runCli(['build', 'two_env_flow.py', '--json'], { env: unwritable, cwd: flowDir });
    expect(json.code, json.stderr).toBe(2);
    const map = parseJson<BuildJson>(json);
    expect(map.ok).toBe(false);
    expect(map.error?.code).toBe('environment');
    expect(map.error?.message).toContain('/proc');
    expect(map.stateFile).toBeNull();
    expect(Object.keys(map.images)).toEqual(Object.keys(first.images));
    for (const [envId, image] of Object.entries(map.images)) expect(image.digest).toBe(first.images[envId]!.digest);
    expect(map.steps).toEqual(first.steps);
    // For people: the table of images, then what was not written and why; no stack trace.
    const human = await runCli(['build', 'two_env_flow.py'], { env: unwritable, cwd: flowDir });
    expect(human.code).toBe(2);
    for (const envId of Object.keys(first.images)) expect(human.stdout).toContain(envId);
    expect(human.stderr).toContain('every image is in the registry (above), but the image map could not be written:\nerror: ');
    expect(human.stderr).toContain('METAFLOW_PREBUILT_STATE_FILE');
    expect(human.stderr).not.toMatch(/\n\s+at /);
  }, 180_000);

  itWith(NEEDS, 'plan --json after the build says both images are present, with their digests', async () => {
    expect(first, 'the build test ran').toBeDefined();
    const planned = await cli('plan', 'two_env_flow.py', '--json');
    expect(planned.code, planned.stderr).toBe(0);
    const plan = parseJson<{ images: Record<string, { status: string; digest?: string }> }>(planned);
    expect(Object.keys(plan.images)).toEqual(Object.keys(first.images));
    for (const [envId, image] of Object.entries(plan.images)) {
      expect(image.status).toBe('present');
      expect(image.digest).toBe(first.images[envId]!.digest);
    }
    // A plan never creates a build service that records no layout: kaniko (installed in the project,
    // as `npm i -D @prebuilt/kaniko` would; a plan finds the selected service) without its bucket setting still plans.
    await mkdir(join(flowDir, 'node_modules', '@prebuilt'), { recursive: true });
    await symlink(join(ROOT, 'packages', 'kaniko'), join(flowDir, 'node_modules', '@prebuilt', 'kaniko'));
    const kaniko = await runCli(['plan', 'two_env_flow.py', '--json'], { env: { ...env, METAFLOW_PREBUILT_BUILD_SERVICE: 'kaniko', METAFLOW_PREBUILT_KANIKO_CONTEXT_BUCKET: '' }, cwd: flowDir });
    expect(kaniko.code, kaniko.stderr).toBe(0);
    expect(Object.values(parseJson<{ images: Record<string, { status: string }> }>(kaniko).images).map((image) => image.status)).toEqual(['present', 'present']);
  }, 180_000);

  itWith(NEEDS, "plan of a flow whose base flow is in a package of its directory: the same two envs (present, the same envIds), the base's steps inherited; a relative import in the flow file is exit 2 naming file and line", async () => {
    expect(first, 'the build test ran').toBeDefined();
    const teamDir = join(flowDir, 'team');
    await writeFlow(join(teamDir, 'teamlib'), '__init__.py', 'from .base import TeamBase\n');
    await writeFlow(
      join(teamDir, 'teamlib'),
      'base.py',
      [
        'from metaflow import FlowSpec, conda, conda_base, pypi, step',
        '',
        '',
        '@conda_base(python="3.11")',
        'class TeamBase(FlowSpec):',
        '    @conda(packages={"tinyframe": ""})',
        '    @step',
        '    def start(self):',
        '        self.next(self.fetch)',
        '',
        '    @pypi(packages={"tinyhttp": ""})',
        '    @step',
        '    def end(self):',
        '        pass',
        '',
      ].join('\n'),
    );
    const train = (importLine: string) =>
      [
        importLine,
        'from metaflow import conda, pypi, step',
        '',
        '',
        'class TeamTrain(TeamBase):',
        '    @pypi(packages={"tinyhttp": ""})',
        '    @step',
        '    def fetch(self):',
        '        self.next(self.report)',
        '',
        '    @conda(packages={"tinyframe": ""})',
        '    @step',
        '    def report(self):',
        '        self.next(self.end)',
        '',
        '',
        'if __name__ == "__main__":',
        '    TeamTrain()',
        '',
      ].join('\n');
    await writeFlow(teamDir, 'train_flow.py', train('from teamlib import TeamBase'));
    const planned = await cli('plan', join('team', 'train_flow.py'), '--json');
    expect(planned.code, planned.stderr).toBe(0);
    const plan = parseJson<{ flow: string; images: Record<string, { status: string; steps: string[] }> }>(planned);
    expect(plan.flow).toBe('TeamTrain');
    expect(Object.keys(plan.images).sort()).toEqual(Object.keys(first.images).sort());
    expect(Object.values(plan.images).map((image) => [image.status, image.steps])).toEqual([
      ['present', ['start', 'report']],
      ['present', ['end', 'fetch']],
    ]);
    await writeFlow(teamDir, 'relative_flow.py', train('from .teamlib import TeamBase'));
    const refused = await cli('plan', join('team', 'relative_flow.py'));
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/^error: team\/relative_flow\.py:1: 'from \.teamlib import \.\.\.' is a relative import: Metaflow runs the flow file as a script/m);
    expect(refused.stderr).toMatch(/\nhint: .*`from base import TeamFlow`/);
  }, 180_000);

  itWith(NEEDS, "plan of a flow whose decorator values are constants of its own modules (from-import, `import m as n` + n.X, a package's re-export): the same two envs (present, the same envIds); a value from the standard library is exit 2 naming file and line", async () => {
    expect(first, 'the build test ran').toBeDefined();
    const constDir = join(flowDir, 'constants');
    await writeFlow(constDir, 'team_settings.py', 'PYTHON = "3.11"\nFRAME = {"tinyframe": ""}\n');
    await writeFlow(join(constDir, 'pins'), '__init__.py', 'from .http import HTTP\n');
    await writeFlow(join(constDir, 'pins'), 'http.py', 'HTTP = {"tinyhttp": ""}\n');
    const source = (importLine: string, fetchPackages: string) =>
      flowSource(fetchPackages)
        .replace('from metaflow import', `${importLine}\nimport team_settings as cfg\nfrom team_settings import PYTHON\nfrom metaflow import`)
        .replace('@conda_base(python="3.11")', '@conda_base(python=PYTHON)')
        .replaceAll('@conda(packages={"tinyframe": ""})', '@conda(packages=cfg.FRAME)');
    await writeFlow(constDir, 'const_flow.py', source('from pins import HTTP', 'HTTP'));
    const planned = await cli('plan', join('constants', 'const_flow.py'), '--json');
    expect(planned.code, planned.stderr).toBe(0);
    const plan = parseJson<{ images: Record<string, { status: string; steps: string[] }> }>(planned);
    expect(Object.keys(plan.images).sort()).toEqual(Object.keys(first.images).sort());
    expect(Object.values(plan.images).map((image) => [image.status, image.steps])).toEqual([
      ['present', ['start', 'report']],
      ['present', ['fetch', 'end']],
    ]);
    await writeFlow(constDir, 'stdlib_flow.py', source('from os import sep', '{"tinyhttp": sep}'));
    const refused = await cli('plan', join('constants', 'stdlib_flow.py'));
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/^error: constants\/stdlib_flow\.py:14: the 'packages' argument of @pypi on step 'fetch' cannot be read without running the flow: 'sep' is imported from os \(line 1\), which is not one of the flow's own modules/m);
  }, 180_000);

  itWith(NEEDS, 'plan --prune tests names other images (the presets are part of the envId), which the registry does not have; the unpruned ones stay', async () => {
    expect(first, 'the build test ran').toBeDefined();
    const planned = await cli('plan', 'two_env_flow.py', '--prune', 'tests', '--json');
    expect(planned.code, planned.stderr).toBe(0);
    const plan = parseJson<{ prune?: string[]; images: Record<string, { status: string }> }>(planned);
    expect(plan.prune).toEqual(['tests']);
    expect(Object.keys(plan.images)).toHaveLength(2);
    for (const envId of Object.keys(plan.images)) expect(Object.keys(first.images)).not.toContain(envId);
    expect(Object.values(plan.images).map((image) => image.status)).toEqual(['missing', 'missing']);
    const text = await cli('plan', 'two_env_flow.py', '--prune', 'tests');
    expect(text.stdout).toMatch(/\(registry local, base [^)]*, prune tests\)/);
  }, 180_000);

  itWith(NEEDS, 'every image has an SBOM referring to it, named by build --json; prebuilt sbom reads it back and prebuilt report sizes the images', async () => {
    expect(first, 'the build test ran').toBeDefined();
    for (const image of Object.values(first.images)) expect(image.sbom).toEqual({ digest: expect.stringMatching(/^sha256:[0-9a-f]{64}$/), documentDigest: expect.stringMatching(/^sha256:[0-9a-f]{64}$/) });
    const sbom = await cli('sbom', 'two_env_flow.py', '--json');
    expect(sbom.code, sbom.stderr).toBe(0);
    const read = parseJson<{ images: { steps: string[]; sbom: { digest: string; documentDigest: string }; spdx: { packages: { name: string; licenseDeclared: string; checksums: unknown[] }[] } }[] }>(sbom);
    expect(read.images.map((image) => image.steps)).toEqual([['start', 'report'], ['fetch', 'end']]);
    for (const image of read.images) {
      const envId = first.steps[image.steps[0]!]!.envId!;
      expect(image.sbom).toEqual(first.images[envId]!.sbom);
    }
    // The fixture packages declare Apache-2.0 (info/index.json of the conda packages, METADATA of the wheels).
    const tinyframe = read.images[0]!.spdx.packages.find((p) => p.name === 'tinyframe');
    expect(tinyframe).toMatchObject({ licenseDeclared: 'Apache-2.0' });
    expect(read.images[1]!.spdx.packages.find((p) => p.name === 'tinyhttp')).toMatchObject({ licenseDeclared: 'Apache-2.0' });
    const report = await cli('report', 'two_env_flow.py', '--json');
    expect(report.code, report.stderr).toBe(0);
    const steps = parseJson<{ steps: { step: string; digest: string; platforms: { compressedBytes: number; installedBytes: number | null; layerCount: number; sharedLayers: number; formats: string[] }[] }[] }>(report).steps;
    expect(steps.map((s) => s.step)).toEqual(['start', 'fetch', 'report', 'end']);
    for (const step of steps) {
      expect(step.digest).toBe(first.images[first.steps[step.step]!.envId!]!.digest);
      const [platform] = step.platforms;
      expect(platform!.compressedBytes).toBeGreaterThan(0);
      expect(platform!.installedBytes).toBeGreaterThan(platform!.compressedBytes);
      // The base image's layers are in both images.
      expect(platform!.sharedLayers).toBeGreaterThan(0);
      expect(platform!.sharedLayers).toBeLessThan(platform!.layerCount);
    }
  }, 180_000);

  itWith(NEEDS, 'human output (not a TTY): a plain line per image phase and a summary table with each envId and status', async () => {
    expect(first, 'the build test ran').toBeDefined();
    const human = await cli('build', 'two_env_flow.py');
    expect(human.code, human.stderr).toBe(0);
    expect(human.stderr).not.toMatch(/\x1b\[/); // no cursor movement when not a TTY
    expect(human.stderr).toContain('2 images (locked in ');
    for (const [envId, image] of Object.entries(first.images)) {
      expect(human.stderr).toContain(`env ${envId}  checking registry`);
      expect(human.stderr).toMatch(new RegExp(`env ${envId}  present  \\d+\\.\\ds  \\(${image.steps.join(', ')}\\)`));
      expect(human.stdout).toMatch(new RegExp(`^${envId}\\s+present\\s+\\d+\\.\\ds\\s+${image.digest.slice(0, 19)}\\s+${image.image.replace(/[.]/g, '\\.')}\\s+${image.steps.join(', ')}$`, 'm'));
    }
    expect(human.stdout).toMatch(/^ENV\s+STATUS\s+TIME\s+DIGEST\s+IMAGE\s+STEPS$/m);
    expect(human.stdout).toContain('TwoEnvFlow: 2 images (build service docker, registry local)');
    expect(human.stdout).toContain('SBOMs (SPDX, referring to each image): 2 already in the registry');
    expect(human.stdout).toContain(`image map written to ${join('.prebuilt', 'TwoEnvFlow', 'images.json')}`);
  }, 180_000);

  itWith(NEEDS, "changing one step's package rebuilds exactly that env's image (one built, one present)", async () => {
    expect(first, 'the build test ran').toBeDefined();
    await writeFlow(flowDir, 'two_env_flow.py', flowSource('{"tinyhttp": "", "tinyurl": "1.0.0"}'));
    const changed = await cli('build', 'two_env_flow.py', '--json');
    expect(changed.code, changed.stderr).toBe(0);
    const map = parseJson<BuildJson>(changed);
    const condaId = first.steps['start']!.envId!;
    const oldPypiId = first.steps['fetch']!.envId!;
    const newPypiId = map.steps['fetch']!.envId!;
    expect(Object.keys(map.images).sort()).toEqual([condaId, newPypiId].sort());
    expect(newPypiId).not.toBe(oldPypiId);
    expect(map.images[condaId]).toEqual({ ...first.images[condaId], status: 'present' });
    expect(map.images[newPypiId]).toMatchObject({ status: 'built', steps: ['fetch', 'end'] });
    expect(await headManifest(map.images[newPypiId]!.image)).toEqual({ status: 200, digest: map.images[newPypiId]!.digest });
    expect(map.steps['end']!.envId).toBe(newPypiId);
    expect(map.steps['report']!.envId).toBe(condaId);
    const inImage = await importsInImage(services, map.images[newPypiId]!.image, map.images[newPypiId]!.python, ['tinyurl', 'tinyhttp']);
    expect(inImage).toEqual({ tinyurl: '1.0.0', tinyhttp: '0.3.0' });
  }, 240_000);
});

/** The same flow with every @conda/@pypi/@conda_base/@pypi_base removed: it asks for no package. */
const noEnvFlowSource = (): string => flowSource('{}').replace(/^\s*@(conda|pypi|conda_base|pypi_base)\(.*\)\n/gm, '');

describeWith(NEEDS, 'a flow that asks for no package (no @conda/@pypi): plan says its image holds python alone', () => {
  let fixtures: Fixtures;
  let flowDir: string;
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    fixtures = await startFixtures();
    flowDir = join(fixtures.dir, 'flow');
    await writeFlow(flowDir, 'two_env_flow.py', flowSource('{"tinyhttp": ""}'));
    await writeFlow(flowDir, 'no_env_flow.py', noEnvFlowSource());
    env = cliEnv(fixtures, services, uniqueNamespace('no-env'));
  });
  afterAll(async () => {
    await stopFixtures(fixtures);
  });

  itWith(NEEDS, 'a note on stderr (stdout stays one JSON object); a flow with packages gets none', async () => {
    const planned = await runCli(['plan', 'no_env_flow.py', '--json'], { env, cwd: flowDir });
    expect(planned.code, planned.stderr).toBe(0);
    expect(Object.values(parseJson<{ images: Record<string, { steps: string[] }> }>(planned).images).map((image) => image.steps)).toEqual([['start', 'fetch', 'report', 'end']]);
    expect(planned.stderr).toContain('note: no step of TwoEnvFlow asks for a conda or PyPI package');
    const withPackages = await runCli(['plan', 'two_env_flow.py', '--json'], { env, cwd: flowDir });
    expect(withPackages.code, withPackages.stderr).toBe(0);
    expect(withPackages.stderr).not.toContain('asks for a conda or PyPI package');
  }, 180_000);

  itWith(NEEDS, "another build service's own settings are noted as ignored; the selected service's and shared settings are not", async () => {
    const zstd = { ...env, METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION: 'zstd', METAFLOW_PREBUILT_DOCKER_KEEP_IMAGES: '1' };
    const planned = await runCli(['plan', 'no_env_flow.py', '--json'], { env: zstd, cwd: flowDir });
    expect(planned.code, planned.stderr).toBe(0);
    parseJson(planned);
    expect(planned.stderr).toContain(
      'note: METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION is a setting of the oci build service, ignored: the build service is docker (METAFLOW_PREBUILT_BUILD_SERVICE=docker). Set METAFLOW_PREBUILT_BUILD_SERVICE=oci to use it, or unset it.\n',
    );
    expect(planned.stderr.match(/ignored: the build service/g)).toHaveLength(1);
    const oci = await runCli(['plan', 'no_env_flow.py', '--json'], { env: { ...zstd, METAFLOW_PREBUILT_DOCKER_KEEP_IMAGES: '', METAFLOW_PREBUILT_BUILD_SERVICE: 'oci' }, cwd: flowDir });
    expect(oci.code, oci.stderr).toBe(0);
    expect(oci.stderr).not.toContain('ignored: the build service');
  }, 180_000);

  itWith(NEEDS, 'a misspelt METAFLOW_PREBUILT_* setting is noted with the setting it most likely means (plan, lock); a known one is not', async () => {
    const typo = { ...env, METAFLOW_PREBUILT_OCI_LAYER_COMPRESSON: 'zstd' };
    const planned = await runCli(['plan', 'no_env_flow.py', '--json'], { env: typo, cwd: flowDir });
    expect(planned.code, planned.stderr).toBe(0);
    parseJson(planned);
    expect(planned.stderr).toContain(
      'note: METAFLOW_PREBUILT_OCI_LAYER_COMPRESSON is not a setting prebuilt knows, ignored: did you mean METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION?\n',
    );
    // The known settings the harness sets (channels, registry, base image, namespace…) get no note.
    expect(planned.stderr.match(/is not a setting prebuilt knows/g)).toHaveLength(1);
    const locked = await runCli(['lock', 'no_env_flow.py'], { env: { ...env, METAFLOW_PREBUILT_CONDA_CHANELS: 'conda-forge' }, cwd: flowDir });
    expect(locked.code, locked.stderr).toBe(0);
    expect(locked.stderr).toContain('note: METAFLOW_PREBUILT_CONDA_CHANELS is not a setting prebuilt knows, ignored: did you mean METAFLOW_PREBUILT_CONDA_CHANNELS?\n');
  }, 180_000);
});
