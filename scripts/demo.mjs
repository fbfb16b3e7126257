#!/usr/bin/env node
// The README demo on the embedded default: the example conda channel and PyPI index (generated
// from packages/fixtures and served on 127.0.0.1), the local Docker daemon and the local registry
// started by scripts/test-services.sh, the flow in examples/. It builds the flow's images with
// `prebuilt build`, prints the image map, then runs each step's interpreter in its image and
// shows the packages import, with the time to first output.
//
// Run it through `bash scripts/demo.sh`, which installs and starts everything first.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const flow = process.argv[2] ?? 'examples/hello_flow.py';
const servicesFile = process.env.PREBUILT_TEST_SERVICES_JSON ?? '/var/tmp/prebuilt-test-services/services.json';
const port = Number(process.env.PREBUILT_DEMO_FIXTURES_PORT ?? 5180);

const services = JSON.parse(readFileSync(servicesFile, 'utf8'));
if (!services.dockerHost || !services.registries || !services.baseImage) {
  console.error(`The demo needs the Docker daemon, the local registry and the base image; missing:\n  ${services.missing.join('\n  ')}`);
  process.exit(2);
}

const { generateExampleFixtures, startFixtureServer } = await import(join(root, 'packages/fixtures/dist/index.js'));
const fixturesDir = await mkdtemp(join(tmpdir(), 'prebuilt-demo-fixtures-'));
const generated = await generateExampleFixtures(fixturesDir, { python: {} });
const server = await startFixtureServer({ channels: { example: generated.channelDir }, indexes: { example: generated.indexDir }, port });

const env = {
  ...process.env,
  METAFLOW_PREBUILT_CONDA_CHANNELS: server.channelUrl,
  METAFLOW_PREBUILT_PYPI_INDEX_URL: server.indexUrl,
  METAFLOW_PREBUILT_PIP_ISOLATED: '1',
  METAFLOW_PREBUILT_DEFAULT_PYTHON: generated.python[0].record.version,
  METAFLOW_PREBUILT_IMAGE_REGISTRY: 'local',
  METAFLOW_PREBUILT_LOCAL_REGISTRY: services.registries.plain.host,
  METAFLOW_PREBUILT_BASE_IMAGE: services.baseImage.ref,
  METAFLOW_PREBUILT_BUILD_SERVICE: 'docker',
};
const prebuilt = join(root, 'packages/cli/bin/prebuilt.js');

/** Runs the CLI without blocking this process (it serves the channel and index the CLI reads). */
async function run(args, options = {}) {
  const child = spawn(process.execPath, [prebuilt, ...args], { env, cwd: root, stdio: ['ignore', options.capture ? 'pipe' : 'inherit', 'inherit'] });
  let stdout = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk) => (stdout += chunk));
  const status = await new Promise((done) => child.on('close', done));
  if (status !== 0) {
    await server.close();
    process.exit(status ?? 1);
  }
  return stdout;
}

try {
  console.log(`\n== the example channel ${server.channelUrl} and index ${server.indexUrl}`);
  console.log(`== registry ${services.registries.plain.host}, base image ${services.baseImage.ref}\n`);
  console.log(`$ prebuilt envs ${flow}`);
  await run(['envs', flow]);
  console.log(`\n$ prebuilt build ${flow}`);
  let started = Date.now();
  await run(['build', flow]);
  console.log(`(build took ${((Date.now() - started) / 1000).toFixed(1)}s)`);
  console.log(`\n$ prebuilt build ${flow}   # again: every image is present, nothing is built`);
  started = Date.now();
  await run(['build', flow]);
  console.log(`(no-op build took ${((Date.now() - started) / 1000).toFixed(1)}s)`);
  const envs = JSON.parse(await run(['envs', flow, '--json'], { capture: true }));
  // The image map the build wrote (the default state file: .prebuilt/<Flow>/images.json beside the flow).
  const stateFile = join(dirname(resolve(root, flow)), '.prebuilt', envs.flow, 'images.json');
  const map = JSON.parse(readFileSync(stateFile, 'utf8'));
  console.log(`\nimage map (${stateFile.slice(root.length + 1)}):`);
  console.log(JSON.stringify(map.steps, null, 2));

  console.log("\nEach step's interpreter in its image (time from `docker run` to the first line of output):");
  for (const [name, step] of Object.entries(map.steps)) {
    const packages = Object.keys({ ...envs.steps[name].conda, ...envs.steps[name].pypi, requests: '' });
    const code = `import importlib; mods = [importlib.import_module(m) for m in ${JSON.stringify(packages)}]; print(${JSON.stringify(name)} + ': ' + ', '.join(m.__name__ + ' ' + getattr(m, '__version__', '?') for m in mods))`;
    await new Promise((done) => spawn('docker', ['pull', '-q', step.image], { stdio: 'ignore' }).on('close', done));
    const t0 = process.hrtime.bigint();
    const child = spawn('docker', ['run', '--rm', '--network=host', step.image, step.python, '-c', code], { stdio: ['ignore', 'pipe', 'inherit'] });
    let first;
    let output = '';
    child.stdout.on('data', (chunk) => {
      first ??= process.hrtime.bigint();
      output += chunk;
    });
    const code_ = await new Promise((done) => child.on('close', done));
    const ms = first ? Number(first - t0) / 1e6 : NaN;
    console.log(`  ${output.trim()}   [${step.python}, first output after ${ms.toFixed(0)} ms]`);
    if (code_ !== 0) throw new Error(`step ${name}: the interpreter exited with ${code_}`);
  }
} finally {
  await server.close();
}
