/**
 * Hostile archives: the malicious-package corpus of @prebuilt/fixtures (symlink chains and
 * replaced links that climb out of the env prefix, a hardlink that would copy a host file into the
 * image, links into conda-meta, decompression bombs, over-long member names; as `.tar.bz2`,
 * `.conda` and wheels; and wheels whose member or dist-info names pip reads otherwise than a naive
 * reader would) is served as a conda channel and a PyPI index on 127.0.0.1, and the real
 * CLI runs `prebuilt build` of a one-step flow that asks for one hostile package, with the docker
 * and the oci build services. Every run must end with exit 1, a message naming the package and
 * the member, no stack trace, no image under the genuine tag, nothing changed outside the work
 * directories (canaries beside and above the staging prefix, in the cache directory and in a fake
 * $HOME, checked byte for byte, and no new file there), and, for the bombs, a bounded peak RSS.
 * The wheels pip refuses to resolve meet the build the way a cloned repository can ship them: a
 * lock file made for a harmless wheel, then edited to name the hostile one (URL, sha256, size), and
 * `prebuilt build --frozen` must refuse them in the same way.
 */
import { createHash } from 'node:crypto';
import { lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FixtureServer, HostileCase, HostileCorpus } from '../../packages/fixtures/dist/index.js';
import { cleanEnv, stackLines, startCli } from '../support/cli.js';
import { describeWith, getServices } from '../services.js';

const services = getServices();
/** What the CLI may reach at its peak while a bomb goes off (it idles at about 150 MiB). */
const BOMB_RSS_LIMIT_KB = 400 * 1024;
const SERVICES = ['docker', 'oci'] as const;
/** What host tools keep in $HOME (pip's cache, rustup's settings, the Docker config): not the packages' doing. */
const HOME_TOOL_STATE = ['.cache', '.rustup', '.docker'];

/** Every entry under `dir` (content of files, target of links), leaving out `skip` names at the top. */
async function snapshot(dir: string, skip: readonly string[] = []): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (rel: string): Promise<void> => {
    for (const name of await readdir(rel === '' ? dir : join(dir, rel))) {
      const path = rel === '' ? name : `${rel}/${name}`;
      if (rel === '' && skip.includes(name)) continue;
      const info = await lstat(join(dir, path));
      if (info.isDirectory()) {
        out.set(path, 'dir');
        await walk(path);
      } else out.set(path, info.isFile() ? (await readFile(join(dir, path))).toString('base64') : `-> ${await readlink(join(dir, path))}`);
    }
  };
  await walk('');
  return out;
}

/** Peak RSS (VmHWM, KiB) of a running process, read until it ends. */
function watchPeakRss(pid: number): { stop(): number } {
  let peak = 0;
  const read = async (): Promise<void> => {
    const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
    const match = /VmHWM:\s+(\d+) kB/.exec(status);
    if (match) peak = Math.max(peak, Number(match[1]));
  };
  const timer = setInterval(() => void read(), 10);
  return {
    stop() {
      clearInterval(timer);
      return peak;
    },
  };
}

/** A flow whose two steps share one env: the hostile package (so exactly one image is at stake). */
const flowFor = (c: HostileCase): string => {
  const decorator = `@${c.kind === 'conda' ? 'conda' : 'pypi'}(python="3.11", packages={"${c.name}": ""})`;
  return `from metaflow import FlowSpec, ${c.kind === 'conda' ? 'conda' : 'pypi'}, step\n\n\nclass HostileFlow(FlowSpec):\n    ${decorator}\n    @step\n    def start(self):\n        self.next(self.end)\n\n    ${decorator}\n    @step\n    def end(self):\n        pass\n`;
};

describeWith(['docker', 'registries', 'baseImage'], 'hostile archives: prebuilt build refuses every malicious package (docker and oci build services)', () => {
  let corpus: HostileCorpus;
  let server: FixtureServer;
  let dir: string;
  let pythonVersion: string;
  /** TMPDIR of the CLI. */
  let tmp: string;
  /** The cache's contexts/: the build context (and the staging prefix) is made here; the escapes aim at its canary-dir. */
  let contexts: string;
  let home: string;
  let cache: string;
  let canaries: Map<string, string>;
  const peaks: { id: string; service: string; kb: number }[] = [];
  let runs = 0;

  const watched = (): Promise<Map<string, string>> =>
    Promise.all([snapshot(dir, ['tmp', 'home', 'cache', 'flows', 'fixtures', 'hostile-channel', 'hostile-index']), snapshot(tmp), snapshot(home, HOME_TOOL_STATE), snapshot(join(cache, 'canary-dir')), snapshot(contexts)]).then(
      (maps) => new Map(maps.flatMap((map, i) => [...map].map(([k, v]) => [`${i}:${k}`, v] as [string, string]))),
    );

  beforeAll(async () => {
    const fixturesModule = await import('../../packages/fixtures/dist/index.js');
    corpus = await fixturesModule.buildHostileCorpus();
    dir = await mkdtemp(join(tmpdir(), 'prebuilt-hostile-'));
    const fixtures = await fixturesModule.generateExampleFixtures(join(dir, 'fixtures'), { python: {} });
    pythonVersion = fixtures.python[0]!.record.version;
    await fixturesModule.writeCondaChannel(join(dir, 'hostile-channel'), [], { artifacts: corpus.condaArtifacts });
    // The example wheels too: a @pypi env also takes the stand-ins of what Metaflow needs (requests).
    await fixturesModule.writePypiIndex(join(dir, 'hostile-index'), fixturesModule.exampleWheels(), { wheels: corpus.wheels });
    server = await fixturesModule.startFixtureServer({
      channels: { example: fixtures.channelDir, hostile: join(dir, 'hostile-channel') },
      indexes: { hostile: join(dir, 'hostile-index') },
    });
    // Canaries: above the work dirs, beside the build contexts (where the escapes aim), in the cache and in $HOME.
    tmp = join(dir, 'tmp');
    home = join(dir, 'home');
    cache = join(dir, 'cache');
    contexts = join(cache, 'contexts');
    for (const where of [dir, tmp, home, cache, contexts]) {
      await mkdir(join(where, fixturesModule.CANARY_DIR), { recursive: true });
      await writeFile(join(where, fixturesModule.CANARY_DIR, 'canary.txt'), `canary in ${where}\n`);
      await writeFile(join(where, fixturesModule.CANARY_DIR, 'secret.txt'), `host secret in ${where}\n`);
    }
    await writeFile(join(home, '.bashrc'), 'export CANARY=1\n');
    await mkdir(join(dir, 'flows'));
    canaries = await watched();
  }, 600_000);

  afterAll(async () => {
    await server?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
    if (peaks.length > 0) console.log(`peak RSS of the CLI per hostile case (KiB): ${peaks.map((p) => `${p.id}/${p.service}=${p.kb}`).join(', ')}`);
  });

  it('covers jail escapes, bombs and over-long names for .tar.bz2, .conda and wheels', () => {
    const classes = new Set(corpus.cases.map((c) => `${c.klass} ${c.id.slice(c.id.lastIndexOf('.'))}`));
    for (const klass of ['jail', 'bomb', 'long-name']) for (const ext of ['.bz2', '.conda', '.whl']) expect(classes).toContain(`${klass} ${ext}`);
  });

  /** The CLI's environment for a run with `service` pushing under `namespace`. */
  const cliEnv = (service: string, namespace: string): Record<string, string> =>
    cleanEnv({
      METAFLOW_PREBUILT_CONDA_CHANNELS: `${server.channelUrls.example},${server.channelUrls.hostile}`,
      METAFLOW_PREBUILT_PYPI_INDEX_URL: server.indexUrls.hostile,
      METAFLOW_PREBUILT_PIP_ISOLATED: '1',
      METAFLOW_PREBUILT_DEFAULT_PYTHON: pythonVersion,
      METAFLOW_PREBUILT_CACHE_DIR: cache,
      METAFLOW_PREBUILT_IMAGE_REGISTRY: 'local',
      METAFLOW_PREBUILT_LOCAL_REGISTRY: services.registries!.plain.host,
      METAFLOW_PREBUILT_BASE_IMAGE: services.baseImage!.ref,
      METAFLOW_PREBUILT_IMAGE_NAMESPACE: namespace,
      METAFLOW_PREBUILT_BUILD_SERVICE: service,
      DOCKER_HOST: services.dockerHost!,
      DOCKER_CONFIG: join(home, '.docker'),
      TMPDIR: tmp,
      HOME: home,
    });

  /** No image under the genuine tag (nor any other) in `namespace`'s repository. */
  const expectNoImage = async (namespace: string, where: string): Promise<void> => {
    const tags = await fetch(`http://${services.registries!.plain.host}/v2/${namespace}/tags/list`);
    if (tags.status !== 404) expect(((await tags.json()) as { tags: string[] | null }).tags ?? [], where).toEqual([]);
  };

  describe('a lock file edited to name a wheel pip refuses to resolve (as a cloned repository can ship), with both build services', () => {
    for (const id of ['wheel_false_utf8.whl', 'wheel_dist_info_dots.whl']) {
      it(`${id}: build (--frozen or not) exits 1 naming package and member, nothing outside changed, no image pushed`, async () => {
        const c = corpus.cases.find((x) => x.id === id)!;
        const wheel = corpus.wheels.find((w) => w.filename === c.filename)!;
        const flowDir = join(dir, 'flows', `lock-${id}`);
        await mkdir(flowDir, { recursive: true });
        await writeFile(join(flowDir, 'hostile.py'), flowFor({ ...c, name: 'tinyurl' }));
        const locked = await startCli(['lock', 'hostile.py'], { cwd: flowDir, env: cliEnv('docker', 'reliability/unused') }).result;
        expect(locked.code, locked.output).toBe(0);
        // The attacker's edit: the harmless wheel's entry now names the hostile wheel, its URL on the same index, its sha256 and size.
        const lockFile = join(flowDir, 'hostile.prebuilt.lock');
        const lock = JSON.parse(await readFile(lockFile, 'utf8')) as { envs: Record<string, { packages: Record<string, unknown>[] }> };
        let edited = 0;
        for (const env of Object.values(lock.envs)) {
          for (const pkg of env.packages) {
            if (pkg['name'] !== 'tinyurl') continue;
            const url = String(pkg['url']);
            Object.assign(pkg, {
              name: c.name,
              version: '1.0',
              url: `${url.slice(0, url.lastIndexOf('/') + 1)}${c.filename}`,
              filename: c.filename,
              sha256: createHash('sha256').update(wheel.bytes).digest('hex'),
              size: wheel.bytes.length,
            });
            edited++;
          }
        }
        expect(edited, JSON.stringify(lock)).toBeGreaterThan(0);
        await writeFile(lockFile, `${JSON.stringify(lock, null, 2)}\n`);
        // Both read the lock as it is: it matches the flow's envs, so plain build does not resolve again.
        for (const [service, args] of SERVICES.flatMap((s) => [[s, ['build', 'hostile.py', '--frozen']], [s, ['build', 'hostile.py']]] as const)) {
          const namespace = `reliability/hostile-${process.pid}-${++runs}`;
          const result = await startCli([...args], { cwd: flowDir, env: cliEnv(service, namespace) }).result;
          const where = `${id} in the lock, ${args.join(' ')} with ${service}:\n${result.output}`;
          expect(result.code, where).toBe(1);
          expect(result.stderr, where).toContain(c.filename);
          expect(result.stderr, where).toContain(c.member);
          expect(result.stderr, where).toMatch(c.message);
          expect(stackLines(result.output), where).toEqual([]);
          await expectNoImage(namespace, where);
          expect(await watched(), where).toEqual(canaries);
        }
      }, 300_000);
    }
  });

  describe('each case, with both build services', () => {
    // The corpus is built in beforeAll; the case list is fixed here by id so tests can be named.
    const ids = [
      'jail-chain.tar.bz2', 'jail-chain.conda', 'jail-replace.tar.bz2', 'jail-replace.conda', 'jail-dir-replaced.tar.bz2', 'jail-dir-replaced.conda', 'jail-hardlink.tar.bz2', 'jail-hardlink.conda',
      'jail-late-link.tar.bz2', 'jail-late-link.conda', 'jail-conda-meta.tar.bz2', 'jail-conda-meta.conda',
      'bomb-declared.tar.bz2', 'bomb-declared.conda', 'bomb-undeclared.tar.bz2', 'bomb-undeclared.conda', 'long-name.tar.bz2', 'long-name.conda',
      'wheel_jail_chain.whl', 'wheel_jail_data.whl', 'wheel_bomb.whl', 'wheel_long_name.whl',
      'wheel_cp437.whl', 'wheel_false_utf8.whl', 'wheel_dist_info_dots.whl',
    ];
    // pip, which resolves the PyPI packages, opens these wheels to read their metadata and refuses
    // them (a name falsely marked UTF-8 its zipfile cannot read; a dist-info directory that does not
    // start with the project's name): the build stops at the lock (exit 2), before any materializer.
    // The installers' own refusal (a lock file naming them, as a cloned repository can ship) is
    // tested above, through the CLI, and in @prebuilt/conda's hostile-corpus.test.ts.
    const refusedAtLock = new Set(['wheel_false_utf8.whl', 'wheel_dist_info_dots.whl']);
    it('names every case of the corpus', () => {
      expect(corpus.cases.map((c) => c.id).sort()).toEqual([...ids].sort());
    });
    for (const id of ids) {
      it(`${id}: exit ${refusedAtLock.has(id) ? '2 at the lock naming the package' : '1 naming package and member'}, nothing outside changed, no image pushed`, async () => {
        const c = corpus.cases.find((x) => x.id === id)!;
        const flowDir = join(dir, 'flows', id);
        await mkdir(flowDir, { recursive: true });
        await writeFile(join(flowDir, 'hostile.py'), flowFor(c));
        for (const service of SERVICES) {
          const namespace = `reliability/hostile-${process.pid}-${++runs}`;
          const env = cliEnv(service, namespace);
          const run = startCli(['build', 'hostile.py'], { cwd: flowDir, env });
          const rss = watchPeakRss(run.child.pid!);
          const result = await run.result;
          const peak = rss.stop();
          peaks.push({ id, service, kb: peak });
          const where = `${id} with ${service}:\n${result.output}`;
          if (refusedAtLock.has(id)) {
            expect(result.code, where).toBe(2);
            expect(result.stderr, where).toMatch(/^error: Cannot resolve the PyPI packages of steps end, start: /m);
            expect(result.stderr, where).toContain(c.name);
            // pip's crash says what went wrong (its traceback's last line), not only `Exception:`.
            expect(result.stderr, where).not.toMatch(/: Exception:\s*$/m);
          } else {
            expect(result.code, where).toBe(1);
            expect(result.stderr, where).toContain(c.filename);
            expect(result.stderr, where).toContain(c.member);
            expect(result.stderr, where).toMatch(c.message);
          }
          expect(stackLines(result.output), where).toEqual([]);
          // No image under the genuine tag (nor any other) in the run's repository.
          const tags = await fetch(`http://${services.registries!.plain.host}/v2/${namespace}/tags/list`);
          if (tags.status !== 404) expect(((await tags.json()) as { tags: string[] | null }).tags ?? [], where).toEqual([]);
          // Nothing outside the work dirs changed: canaries byte for byte, no new file, no context left in contexts/ or TMPDIR.
          expect(await watched(), where).toEqual(canaries);
          if (c.klass === 'bomb') expect(peak, `${where}\npeak RSS ${peak} KiB`).toBeLessThan(BOMB_RSS_LIMIT_KB);
        }
      }, 300_000);
    }
  });
});
