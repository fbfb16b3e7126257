#!/usr/bin/env node
/**
 * `prebuilt profile` on the realistic env: the flow of B1 `--env realistic` (10 steps over 2
 * `@conda` envs of the realistic corpus, images built by the `oci` service in the namespace
 * `prebuilt-bench/noop-realistic`; a no-op when bench/noop-redeploy.mjs built them before, else
 * built here, which takes minutes), then `prebuilt profile flow.py --step start --code CODE` with
 * B9's task code (`import pandas, sklearn, sklearn.linear_model`): the recording run in the image
 * on the local Docker daemon, isolated (no network, no mounts, no host env). Measured: the wall
 * and CPU time of the command (the container's CPU is the daemon's, not counted); the first run
 * pulls the image when the daemon lacks it (reported apart; the image is removed at the end
 * unless it was on the daemon before); the paths recorded.
 *
 *   pnpm build && bash scripts/test-services.sh up
 *   node bench/profile-realistic.mjs [--runs 3] [--port 5183] [--json]
 */
import { execFile } from 'node:child_process';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { benchArgs, benchDir, fmtBytes, fmtMs, fmtStats, loadServices, machine, main, output, prebuilt, stats, writeFlowProject } from './lib.mjs';
import { REALISTIC_PACKAGES, realisticCliEnv, startRealisticCorpus } from './realistic.mjs';

const exec = promisify(execFile);
const args = benchArgs({ runs: 3 }, { port: { type: 'string', default: '5183' } });
const NAMESPACE = 'prebuilt-bench/noop-realistic';
const CODE = 'import pandas, sklearn, sklearn.linear_model; assert pandas.__file__ and sklearn.__file__; print("ok")';
const ENVS = [
  { decorator: 'conda', packages: REALISTIC_PACKAGES },
  { decorator: 'conda', packages: { pandas: '', requests: '', boto3: '' } },
];
const STEPS = Array.from({ length: 10 }, (_, i) => ENVS[i % ENVS.length]);

const onDaemon = (image) => exec('docker', ['image', 'inspect', image]).then(() => true, () => false);

await main(async (defer) => {
  const services = loadServices();
  const dir = await benchDir(defer, 'profile');
  const corpus = await startRealisticCorpus({ port: Number(args.port), services });
  defer(() => corpus.close());
  const env = realisticCliEnv(corpus, { services, cacheDir: join(dir, 'cache'), extra: { METAFLOW_PREBUILT_IMAGE_NAMESPACE: NAMESPACE, METAFLOW_PREBUILT_BUILD_SERVICE: 'oci' } });
  const project = await writeFlowProject(dir, 'NoopRealisticFlow', STEPS);
  const built = JSON.parse((await prebuilt(['build', 'flow.py', '--json'], { cwd: project, env })).stdout);
  const image = `${built.images[built.steps.start.envId].image}@${built.images[built.steps.start.envId].digest}`;
  const wasThere = await onDaemon(image);
  if (!wasThere) defer(() => exec('docker', ['image', 'rm', '-f', image]).catch(() => undefined));
  const runs = [];
  let pulled;
  let last;
  for (let i = 0; i < args.runs; i += 1) {
    const r = await prebuilt(['profile', 'flow.py', '--step', 'start', '--code', CODE, '-o', 'start.prefetch', '--json'], { cwd: project, env });
    last = JSON.parse(r.stdout);
    if (r.stderr.includes('pulling ')) pulled = r;
    else runs.push(r);
  }
  const prefix = '/opt/prebuilt/env/';
  const paths = last.envs[0].paths;
  const inEnv = paths.filter((p) => p.startsWith(prefix));
  const size = (await stat(join(project, 'start.prefetch'))).size;
  const result = {
    machine: machine(),
    image,
    pulledFirst: pulled ? { ms: pulled.ms, cpuMs: pulled.cpuMs } : null,
    local: runs.length > 0 ? { wall: stats(runs.map((r) => r.ms)), cpu: stats(runs.map((r) => r.cpuMs ?? 0)) } : null,
    paths: paths.length,
    envPaths: inEnv.length,
    profileBytes: size,
  };
  output(args, result, [
    `prebuilt profile, realistic env (${image}), B9's task code:`,
    ...(pulled ? [`  with the pull first: ${fmtMs(pulled.ms)} (CPU ${fmtMs(pulled.cpuMs ?? 0)})`] : []),
    ...(result.local ? [`  image on the daemon: wall ${fmtStats(result.local.wall)}; CPU ${fmtStats(result.local.cpu)}`] : []),
    `  recorded ${paths.length} paths (${inEnv.length} in the env, the rest the base's), profile file ${fmtBytes(size)}`,
  ]);
});
