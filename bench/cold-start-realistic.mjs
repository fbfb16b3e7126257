/**
 * B2 on the realistic env (`node bench/cold-start.mjs --env realistic`): time from `docker pull` +
 * `docker run` to the first line after `import pandas, sklearn`, with the Docker daemon, in three
 * node states, for:
 *
 *   prebuilt oci     — the env's image built by `prebuilt build` with the `oci` service (its default layering);
 *   prebuilt docker  — the same with the `docker` service (one COPY layer of the prefix);
 *   … before         — with --before <checkout>: the same two built by another checkout's CLI (e.g.
 *                      main's, whose materializer leaves the shipped pycs stale), side by side;
 *   bootstrap        — the env created at container start from the locked files on the base image
 *                      (bench/cold-start-bootstrap.py: download, unpack, link);
 *   floor            — `python3 -c pass` on the base image.
 *
 * States, prepared before each timed run (untimed):
 *   (a) base cached  — the base image is present, no env image is;
 *   (b) empty node   — no image at all: the base is pulled too (checked: the pull prints no "Already exists");
 *   (c) local        — every image present: `docker run` only.
 * Variants are interleaved (rotating order each round). Figures: pull, run and total (pull + run).
 *
 * Then, per prebuilt image: the first and the second `import pandas, sklearn` in one container
 * (two processes), and how many `.pyc` files the first task wrote (`docker diff`).
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { alternate, firstLine, fmtMs, machine, median, output, readProjectLock, ROOT, stats, timed, writeFlowProject } from './lib.mjs';
import { REALISTIC_PACKAGES, realisticCliEnv, startRealisticCorpus } from './realistic.mjs';

const CODE = 'import pandas, sklearn; print("step: pandas " + pandas.__version__ + ", sklearn " + sklearn.__version__, flush=True)';
const IMPORT_TIMER = 'import time; t = time.perf_counter(); import pandas, sklearn; print("%.3f" % (time.perf_counter() - t), flush=True)';

const rmi = (refs) => (refs.length ? timed('docker', ['rmi', '-f', ...refs], { allowFailure: true }) : Promise.resolve());
const present = async (ref) => (await timed('docker', ['image', 'inspect', ref], { allowFailure: true })).code === 0;

async function pull(ref, { emptyNode }) {
  const r = await timed('docker', ['pull', ref]);
  if (emptyNode && /Already exists/.test(r.stdout)) throw new Error(`empty node: pulling ${ref} found layers already present:\n${r.stdout}`);
  return r.ms;
}

/**
 * The env created at container start (bench/cold-start-bootstrap.py, run by the base image's
 * python3): the command to run in the base image for an env at `prefix` of the locked `packages`
 * (kind, url, filename, sha256), then `code` with the env's python. Shared with B9 (containerd).
 */
export async function bootstrapCommand({ prefix, pythonVersion, packages, code }) {
  const manifest = {
    prefix,
    pythonVersion: pythonVersion.split('.').slice(0, 2).join('.'),
    packages: packages.map((p) => ({ kind: p.kind, url: p.url, filename: p.filename, sha256: p.sha256 })),
    code,
  };
  const bootstrap = await readFile(join(ROOT, 'bench/cold-start-bootstrap.py'), 'utf8');
  return ['python3', '-c', bootstrap, JSON.stringify(manifest)];
}

export async function coldStartRealistic(args, defer, { services, base, dir }) {
  const corpus = await startRealisticCorpus({ port: Number(args.port), services });
  defer(() => corpus.close());
  const project = await writeFlowProject(dir, 'ColdStartRealisticFlow', [{ decorator: 'conda', packages: REALISTIC_PACKAGES }, { decorator: 'conda', packages: REALISTIC_PACKAGES }]);

  const checkouts = [{ label: '', root: ROOT }];
  if (args.before) checkouts.push({ label: ' before', root: args.before });
  const builds = [];
  for (const checkout of checkouts) {
    for (const service of ['oci', 'docker']) {
      const suffix = `${service}${checkout.label ? '-before' : ''}`;
      const env = realisticCliEnv(corpus, {
        services,
        cacheDir: join(dir, 'cache'),
        extra: { METAFLOW_PREBUILT_BASE_IMAGE: base, METAFLOW_PREBUILT_IMAGE_NAMESPACE: `prebuilt-bench/coldstart-real-${suffix}`, METAFLOW_PREBUILT_BUILD_SERVICE: service },
      });
      const r = await timed(process.execPath, [join(checkout.root, 'packages/cli/bin/prebuilt.js'), 'build', 'flow.py', '--json'], { cwd: project, env });
      const step = JSON.parse(r.stdout).steps.start;
      process.stderr.write(`[b2] built ${step.image} (${service}${checkout.label}) in ${fmtMs(r.ms)}\n`);
      builds.push({ name: `prebuilt ${service}${checkout.label}`, image: step.image, python: step.python, buildMs: r.ms });
    }
  }
  const images = builds.map((b) => b.image);
  defer(() => rmi(images));

  const lockFile = await readProjectLock(project);
  const lock = lockFile.envs[lockFile.steps.start['linux-64']];
  const bootstrap = await bootstrapCommand({
    prefix: builds[0].python.replace(/\/bin\/python$/, ''),
    pythonVersion: lock.pythonVersion,
    packages: lock.packages,
    code: CODE,
  });

  const variants = [
    ...builds.map((b) => ({ name: b.name, image: b.image, args: [b.image, b.python, '-u', '-c', CODE], expect: 'step: ' })),
    { name: 'bootstrap (env created at start)', image: base, args: [base, ...bootstrap], expect: 'step: ' },
    { name: 'floor (base, python3 -c pass)', image: base, args: [base, 'python3', '-c', 'print(1)'], expect: '1' },
  ];
  const prepare = {
    'a base cached': async () => {
      await rmi(images);
      if (!(await present(base))) await timed('docker', ['pull', '-q', base]);
    },
    'b empty node': async () => rmi([...images, base]),
    'c local': async () => {
      for (const ref of [...images, base]) if (!(await present(ref))) await timed('docker', ['pull', '-q', ref]);
    },
  };
  // Untimed: every variant once on a warm node (checks the setup).
  await prepare['c local']();
  for (const v of variants) await firstLine(v.args, v.expect);

  const scenarios = {};
  for (const [scenario, reset] of Object.entries(prepare)) {
    const emptyNode = scenario.startsWith('b');
    const fns = variants.map((v) => async () => {
      await reset();
      const pullMs = (await present(v.image)) ? 0 : await pull(v.image, { emptyNode });
      const runMs = await firstLine(v.args, v.expect);
      return { pullMs, runMs, totalMs: pullMs + runMs };
    });
    const samples = await alternate(args.runs, ...fns);
    scenarios[scenario] = Object.fromEntries(
      variants.map((v, i) => [v.name, { totalMs: stats(samples[i].map((s) => s.totalMs)), pullMs: stats(samples[i].map((s) => s.pullMs)), runMs: stats(samples[i].map((s) => s.runMs)) }]),
    );
    process.stderr.write(`[b2] scenario ${scenario} done\n`);
  }

  // First vs second import, and .pyc files written by the first task, per prebuilt image.
  await prepare['c local']();
  const imports = {};
  for (const b of builds) {
    const firsts = [];
    const seconds = [];
    const written = [];
    for (let i = 0; i < args.runs; i++) {
      const name = `prebuilt-bench-b2-${process.pid}-${i}`;
      const r = await timed('docker', ['run', '--name', name, '--network=host', b.image, 'sh', '-c', `${b.python} -c '${IMPORT_TIMER}' && ${b.python} -c '${IMPORT_TIMER}'`]);
      const [first, second] = r.stdout.trim().split('\n').map(Number);
      const diff = await timed('docker', ['diff', name]);
      await timed('docker', ['rm', '-f', name], { allowFailure: true });
      firsts.push(first * 1000);
      seconds.push(second * 1000);
      written.push(diff.stdout.split('\n').filter((l) => /^A .*\.pyc$/.test(l)).length);
    }
    imports[b.name] = { firstMs: stats(firsts), secondMs: stats(seconds), firstOverSecond: Math.round((median(firsts) / median(seconds)) * 100) / 100, pycWritten: median(written) };
  }

  const result = {
    benchmark: 'B2 cold start, realistic env',
    env: { ...corpus.summary, lockedPackages: lock.packages.length },
    baseImage: base,
    builds: builds.map((b) => ({ name: b.name, image: b.image, buildMs: Math.round(b.buildMs) })),
    runs: args.runs,
    scenarios,
    imports,
    machine: machine(),
  };
  const lines = [
    `B2 cold start, realistic env (${result.env.packages} conda packages, ${result.env.archiveMiB} MiB of archives): docker pull + run → first line after \`import pandas, sklearn\`; ${args.runs} interleaved runs, medians (min–max)`,
  ];
  for (const [scenario, figures] of Object.entries(scenarios)) {
    lines.push(`  (${scenario})`);
    for (const [name, f] of Object.entries(figures)) {
      lines.push(`    ${name.padEnd(34)} total ${fmtMs(f.totalMs.median).padStart(8)} (${fmtMs(f.totalMs.min)}–${fmtMs(f.totalMs.max)})   pull ${fmtMs(f.pullMs.median).padStart(8)}   run ${fmtMs(f.runMs.median).padStart(8)}`);
    }
  }
  lines.push('  first vs second `import pandas, sklearn` in one container; .pyc files the first task wrote:');
  for (const [name, f] of Object.entries(imports)) {
    lines.push(`    ${name.padEnd(34)} first ${fmtMs(f.firstMs.median).padStart(8)}   second ${fmtMs(f.secondMs.median).padStart(8)}   first/second ${f.firstOverSecond}   pyc written ${f.pycWritten}`);
  }
  output(args, result, lines);
}
