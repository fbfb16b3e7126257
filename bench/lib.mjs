/**
 * Shared helpers of the benchmarks: statistics, alternating A/B runs, the machine description,
 * the test services, the fixture channel and index, running the CLI without blocking the
 * event loop (the fixture server runs in the benchmark's own process and must keep answering
 * while the CLI runs), and a TCP proxy that counts the bytes pushed to a registry.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os, { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const BIN = join(ROOT, 'packages/cli/bin/prebuilt.js');
export const SERVICES_FILE = process.env.PREBUILT_TEST_SERVICES_JSON ?? '/var/tmp/prebuilt-test-services/services.json';

/** Parses the common options (--runs, --json) plus the script's own. */
export function benchArgs(defaults = {}, extra = {}) {
  const { values } = parseArgs({
    options: {
      runs: { type: 'string', default: String(defaults.runs ?? 3) },
      json: { type: 'boolean', default: false },
      ...extra,
    },
  });
  const runs = Number(values.runs);
  if (!Number.isInteger(runs) || runs < 1) fail(`--runs must be a positive integer (got ${values.runs})`);
  return { ...values, runs };
}

/** Prints a one-line reason and exits 2 (bad input or missing setup): benchmarks print no stack traces. */
export function fail(message) {
  process.stderr.write(`bench: ${message}\n`);
  process.exit(2);
}

export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Median, min, max and the samples (ms, rounded). */
export function stats(xs) {
  return { median: Math.round(median(xs)), min: Math.round(Math.min(...xs)), max: Math.round(Math.max(...xs)), samples: xs.map(Math.round) };
}

/** a / b as a number with two decimals. */
export const ratio = (a, b) => Math.round((a / b) * 100) / 100;

/**
 * Runs each of `fns` `runs` times, interleaved, rotating which goes first every round (AB, BA, AB,
 * … for two) so a drift of the machine's load weighs on all alike. Returns one sample array per fn.
 */
export async function alternate(runs, ...fns) {
  const samples = fns.map(() => []);
  for (let i = 0; i < runs; i++) {
    for (let j = 0; j < fns.length; j++) {
      const k = (i + j) % fns.length;
      samples[k].push(await fns[k](i));
    }
  }
  return samples;
}

/** What the figures came from. */
export function machine() {
  const [one, five, fifteen] = os.loadavg();
  return {
    date: new Date().toISOString(),
    nproc: os.availableParallelism?.() ?? os.cpus().length,
    cpu: os.cpus()[0]?.model ?? 'unknown',
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    loadAverage: [one, five, fifteen].map((x) => Math.round(x * 100) / 100),
    node: process.version,
  };
}

export const fmtMs = (ms) => (ms >= 10000 ? `${(ms / 1000).toFixed(1)} s` : ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${Math.round(ms)} ms`);
export const fmtStats = (s) => `median ${fmtMs(s.median)}  (min ${fmtMs(s.min)}, max ${fmtMs(s.max)}; ${s.samples.length} runs)`;
export const fmtMachine = (m) =>
  `${m.date}, ${m.nproc} cpus (${m.cpu}), ${m.memoryGiB} GiB, load average ${m.loadAverage.join(' ')}, node ${m.node}`;

export const fmtBytes = (n) => (n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(2)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n} B`);

/** Prints the result: JSON with --json, else the given lines plus the machine line. */
export function output(args, result, lines) {
  if (args.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  else process.stdout.write(`${lines.join('\n')}\n  machine: ${fmtMachine(result.machine)}\n`);
}

/** The test services written by `bash scripts/test-services.sh up`, with the parts the benchmarks need. */
export function loadServices({ needDocker = true } = {}) {
  let services;
  try {
    services = JSON.parse(readFileSync(SERVICES_FILE, 'utf8'));
  } catch (error) {
    fail(`cannot read the test services file ${SERVICES_FILE} (${error.code ?? error.message}); run \`bash scripts/test-services.sh up\` first.`);
  }
  if (needDocker && (!services.dockerHost || !services.registries?.plain || !services.baseImage)) {
    fail(`the Docker daemon, the local registry and the base image are needed; missing:\n  ${(services.missing ?? []).join('\n  ')}\nRun \`bash scripts/test-services.sh up\`.`);
  }
  return services;
}

export async function loadFixtures() {
  return import(new URL('../packages/fixtures/dist/index.js', import.meta.url).href).catch((error) =>
    fail(`@prebuilt/fixtures is not built (${error.message}); run \`pnpm build\` first.`),
  );
}

/**
 * Generates the example set (+ the conda python built from Debian's python3.11, + extra sets)
 * into `dir` and serves it on 127.0.0.1:`port`. A fixed port keeps the locked URLs, hence the
 * envIds and image tags, equal from one benchmark run to the next.
 */
export async function startFixtures(dir, { port, extra = [] }) {
  const fixtures = await loadFixtures();
  const generated = await fixtures.generateFixtures(dir, fixtures.exampleFixtureSet(), { python: {}, extra });
  const server = await fixtures.startFixtureServer({ channels: { bench: generated.channelDir }, indexes: { bench: generated.indexDir }, port });
  return { generated, server, fixtures };
}

/** A new temporary directory `prebuilt-bench-<name>-…`, removed by the cleanup given to `defer` (see {@link main}). */
export async function benchDir(defer, name) {
  const dir = await mkdtemp(join(tmpdir(), `prebuilt-bench-${name}-`));
  defer(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** {@link startFixtures} into `dir`/fixtures; the server is closed by the cleanup given to `defer`. */
export async function serveFixtures(defer, dir, options) {
  const started = await startFixtures(join(dir, 'fixtures'), options);
  defer(() => started.server.close());
  return started;
}

/** `dir`/project holding a flow.py written by {@link flowSource}; returns the project's path. */
export async function writeFlowProject(dir, className, steps) {
  const project = join(dir, 'project');
  await mkdir(project, { recursive: true });
  await writeFile(join(project, 'flow.py'), flowSource(className, steps));
  return project;
}

/**
 * The CLI's environment: the fixture channel and index, pip isolated from this machine's pip
 * configuration (no PIP_* variables), the local registry and base image, the Docker build service.
 */
export function cliEnv({ server, generated, services, cacheDir, extra = {} }) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('PIP_') && !k.startsWith('METAFLOW_PREBUILT_') && v !== undefined) env[k] = v;
  Object.assign(env, {
    METAFLOW_PREBUILT_CONDA_CHANNELS: server.channelUrl,
    METAFLOW_PREBUILT_PYPI_INDEX_URL: server.indexUrl,
    METAFLOW_PREBUILT_PIP_ISOLATED: '1',
    METAFLOW_PREBUILT_DEFAULT_PYTHON: generated.python[0].record.version,
    METAFLOW_PREBUILT_IMAGE_REGISTRY: 'local',
    METAFLOW_PREBUILT_BUILD_SERVICE: 'docker',
  });
  if (services?.registries?.plain) env.METAFLOW_PREBUILT_LOCAL_REGISTRY = services.registries.plain.host;
  if (services?.baseImage) env.METAFLOW_PREBUILT_BASE_IMAGE = services.baseImage.ref;
  if (cacheDir) env.METAFLOW_PREBUILT_CACHE_DIR = cacheDir;
  return Object.assign(env, extra);
}

/**
 * CPU time (ms, user + system) of this process's children that have exited and been waited for
 * (`cutime` + `cstime` of /proc/self/stat, descendants they waited for included); null where there
 * is no /proc. The difference around one {@link timed} run is that run's CPU when nothing else
 * ran a child meanwhile.
 */
export function childCpuMs() {
  try {
    const stat = readFileSync('/proc/self/stat', 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // After the command name: state is field 3 of stat(5), cutime 16 and cstime 17.
    return ((Number(fields[13]) + Number(fields[14])) * 1000) / 100;
  } catch {
    return null;
  }
}

/**
 * Runs a program asynchronously and resolves to its wall time (ms), its CPU time (`cpuMs`, see
 * {@link childCpuMs}; at the kernel's clock-tick resolution, 10 ms), exit code and output;
 * rejects with its stderr when it exits non-zero (unless `allowFailure`).
 */
export function timed(command, args, { cwd, env, allowFailure = false } = {}) {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const cpuBefore = childCpuMs();
    const child = spawn(command, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code) => {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      const cpuAfter = childCpuMs();
      const cpuMs = cpuBefore === null || cpuAfter === null ? null : cpuAfter - cpuBefore;
      if (code !== 0 && !allowFailure) {
        reject(new Error(`${[command, ...args].join(' ')} exited with ${code}:\n${stderr.trim().split('\n').slice(-20).join('\n')}`));
      } else resolve({ ms, cpuMs, code, stdout, stderr });
    });
  });
}

/** `prebuilt <args>` (this checkout's CLI) with {@link timed}. */
export const prebuilt = (args, options) => timed(process.execPath, [BIN, ...args], options);

/** What a pruned materialize left out (its result's `pruned`): `4130 files, 71.9 MiB left out`. */
export function prunedText(pruned) {
  return `${pruned.files} files, ${(pruned.bytes / 2 ** 20).toFixed(1)} MiB left out`;
}

/**
 * Prune presets from a `--prune` value (comma-separated), checked and sorted by core's
 * `selectPrunePresets` as prebuilt checks METAFLOW_PREBUILT_PRUNE; an unknown one fails naming it.
 */
export async function benchPrunePresets(value) {
  const { selectPrunePresets } = await import(join(ROOT, 'packages/core/dist/index.js'));
  try {
    return selectPrunePresets({ value: value ?? '' });
  } catch (error) {
    return fail(`${error.message} ${error.hint ?? ''}`.trim());
  }
}

/**
 * The lock file beside a bench project's flow.py, as core reads it (either format — version 1 for
 * one platform, 2 for several — as step → platform → entry). Core's reader is internal (not in its
 * public API), hence the module itself.
 */
export async function readProjectLock(project) {
  const { readLockFile } = await import(join(ROOT, 'packages/core/dist/lock-file.js'));
  return readLockFile(join(project, 'flow.prebuilt.lock'));
}

/** B1's flow (also B7's no-op redeploy): 4 distinct envs (two `@conda`, two `@pypi`) over 10 steps. */
export const NOOP_ENVS = [
  { decorator: 'conda', packages: { tinyframe: '' } },
  { decorator: 'conda', packages: { tinycli: '' } },
  { decorator: 'pypi', packages: { tinyhttp: '' } },
  { decorator: 'pypi', packages: { tinyplot: '' } },
];
export const NOOP_STEPS = Array.from({ length: 10 }, (_, i) => NOOP_ENVS[i % NOOP_ENVS.length]);

/**
 * A flow file: `steps` is a list of `{ decorator: 'conda' | 'pypi', packages }`; step names are
 * start, step01, …, end, chained linearly, under `@conda_base(python="3.11")`.
 */
export function flowSource(className, steps) {
  const n = steps.length;
  const names = steps.map((_, i) => (i === 0 ? 'start' : i === n - 1 ? 'end' : `step${String(i).padStart(2, '0')}`));
  const body = steps.map((s, i) => {
    const next = i === n - 1 ? 'pass' : `self.next(self.${names[i + 1]})`;
    const code = s.code ? `        ${s.code}\n` : '';
    return `    @${s.decorator}(packages=${JSON.stringify(s.packages)})\n    @step\n    def ${names[i]}(self):\n${code}        ${next}\n`;
  });
  return `from metaflow import FlowSpec, step, conda, conda_base, pypi\n\n\n@conda_base(python="3.11")\nclass ${className}(FlowSpec):\n${body.join('\n')}\n\nif __name__ == "__main__":\n    ${className}()\n`;
}

/**
 * A TCP proxy on 127.0.0.1 (an ephemeral port) that counts the bytes clients send to `target`
 * (host:port) — everything, HTTP headers included: `state.sent`, and those it sends back:
 * `state.received`; the caller may reset them.
 * Point a build service, the CLI or the Docker daemon at `host` instead of the registry.
 */
export function countingProxy(target) {
  const [host, port] = [target.slice(0, target.lastIndexOf(':')), Number(target.slice(target.lastIndexOf(':') + 1))];
  const state = { sent: 0, received: 0 };
  const sockets = new Set();
  const server = net.createServer((client) => {
    const upstream = net.connect(port, host);
    sockets.add(client);
    sockets.add(upstream);
    client.on('data', (chunk) => (state.sent += chunk.length));
    upstream.on('data', (chunk) => (state.received += chunk.length));
    client.pipe(upstream);
    upstream.pipe(client);
    const close = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', close);
    upstream.on('error', close);
    client.on('close', close);
    upstream.on('close', close);
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      resolve({
        host: `127.0.0.1:${server.address().port}`,
        state,
        close: () =>
          new Promise((done) => {
            for (const s of sockets) s.destroy();
            server.close(() => done());
          }),
      });
    });
  });
}

/** Runs `fn` and, whatever happens, the cleanups in reverse order; an error prints one line and exits 1. */
export async function main(fn) {
  const cleanups = [];
  try {
    await fn((cleanup) => cleanups.push(cleanup));
  } catch (error) {
    process.stderr.write(`bench: ${error.message}\n`);
    process.exitCode = 1;
  } finally {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
  }
}

/**
 * `docker run --rm --network=host <args>`: ms from the spawn to the first line on stdout; checks
 * that the container exits 0 and that the line is `expect`.
 */
export function firstLine(dockerArgs, expect) {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn('docker', ['run', '--rm', '--network=host', ...dockerArgs], { stdio: ['ignore', 'pipe', 'pipe'] });
    let first;
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk) => {
      stdout += chunk;
      if (first === undefined && stdout.includes('\n')) first = Number(process.hrtime.bigint() - started) / 1e6;
    });
    child.stderr.setEncoding('utf8').on('data', (chunk) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code) => {
      const line = stdout.split('\n')[0];
      if (code !== 0 || first === undefined) reject(new Error(`docker run ${dockerArgs[0]} exited with ${code}:\n${stderr.trim().split('\n').slice(-15).join('\n')}`));
      else if (!line.startsWith(expect)) reject(new Error(`docker run ${dockerArgs[0]}: first line '${line}', expected '${expect}…'`));
      else resolve(first);
    });
  });
}
