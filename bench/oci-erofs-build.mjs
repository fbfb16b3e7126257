/**
 * What erofs layers cost the build: the oci service building the realistic env's context (B9/B10's,
 * bench/materialized-context.mjs) as zstd and as erofs layers, interleaved (the order rotating every
 * round), without a layer cache and into a new repository each time, so every layer is built and
 * uploaded. Prints each format's build time and the layers' total size, and the paired ratios.
 * Needs the test services (the plain registry and the base image) and mkfs.erofs ≥ 1.8 on PATH.
 *
 *   node bench/oci-erofs-build.mjs [--runs 5] [--json]
 */
import { randomBytes } from 'node:crypto';
import { alternate, benchArgs, fail, fmtBytes, fmtMs, fmtStats, loadServices, machine, output, ratio, stats } from './lib.mjs';
import { materializedContexts } from './materialized-context.mjs';

const PREFIX = '/opt/prebuilt/envs/bench';
const FORMATS = ['zstd', 'erofs'];

const args = benchArgs({ runs: 5 });
const services = loadServices({ needDocker: false });
if (!services.registries?.plain || !services.baseImage) fail('the local registry and the base image are needed; run `bash scripts/test-services.sh up`.');
const { ctx } = await materializedContexts({ prefix: PREFIX });
const oci = await import(new URL('../packages/oci/dist/index.js', import.meta.url).href);
const base = `${services.baseImage.ref.replace(/:[^:/]+$/, '')}@${services.baseImage.digest}`;
const bytes = {};

/** One build of the context in `format`: its time in ms. */
async function build(format) {
  const env = { ...process.env, METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION: format, METAFLOW_PREBUILT_OCI_RUNNERS: 'containerd@2.1' };
  const imageTag = `${services.registries.plain.host}/prebuilt-bench/oci-erofs-build-${randomBytes(4).toString('hex')}:${format}`;
  let summary;
  const started = performance.now();
  const service = oci.createOciBuildService({ env, layerCacheDir: false, onPushed: (s) => (summary = s) });
  // A missing or old mkfs.erofs is a ConfigError: its message and hint, no stack trace.
  const result = await service.buildAndPush({ dockerfile: `FROM ${base}\nCOPY prefix ${PREFIX}\n`, contextDir: ctx, imageTag, platform: 'linux/amd64' }).catch((error) => fail(`${error.message}${error.hint ? `\n  ${error.hint}` : ''}`));
  const ms = performance.now() - started;
  if (!result.ok) fail(`the ${format} build failed: ${result.reason}`);
  bytes[format] = { layers: summary.layers.length, size: summary.layers.reduce((sum, l) => sum + l.size, 0) };
  return ms;
}

const samples = await alternate(args.runs, ...FORMATS.map((format) => () => build(format)));
const result = {
  machine: machine(),
  context: ctx,
  formats: Object.fromEntries(FORMATS.map((format, i) => [format, { build: stats(samples[i]), ...bytes[format] }])),
  pairedRatios: samples[1].map((ms, i) => ratio(ms, samples[0][i])),
};
output(args, result, [
  `oci build of the realistic env, no layer cache, every layer uploaded (${args.runs} rounds, interleaved):`,
  ...FORMATS.map((format) => `  ${format}: ${fmtStats(result.formats[format].build)}; ${result.formats[format].layers} layers, ${fmtBytes(result.formats[format].size)}`),
  `  erofs ÷ zstd, paired: ${result.pairedRatios.join(' ')} (median build ${fmtMs(result.formats.erofs.build.median)} against ${fmtMs(result.formats.zstd.build.median)})`,
]);
