#!/usr/bin/env node
/**
 * Removes the benchmarks' images from the local registry: every image (tags, index children,
 * referrers such as SBOMs) of every repository under `prebuilt-bench/`. The benchmarks push there
 * on every run, several of them to a new repository each time (`prebuilt-bench/b3-oci-<random>`),
 * so the registry only grows; `pnpm bench --clean` runs this at the end.
 *
 *   node bench/clean.mjs [--registry HOST] [--dry-run] [--json]
 *
 * --registry: the registry to clean (default: the test services' plain registry, where the
 * benchmarks push). --dry-run: list what would be deleted, delete nothing.
 *
 * It deletes manifests (the distribution API's DELETE by digest); the registry frees their blobs
 * when its garbage collector runs, which distribution does only by hand, with the registry stopped
 * (see bench/README.md). Nothing outside `prebuilt-bench/` is touched. The next run of a benchmark
 * pushes again what it finds missing (its first run is then slower: B1 builds its images untimed).
 */
import { parseArgs } from 'node:util';
import { fail, loadServices, main } from './lib.mjs';

const PREFIX = 'prebuilt-bench/';

let values;
try {
  ({ values } = parseArgs({ options: { registry: { type: 'string' }, 'dry-run': { type: 'boolean', default: false }, json: { type: 'boolean', default: false } } }));
} catch (error) {
  fail(`${error.message} (usage: node bench/clean.mjs [--registry HOST] [--dry-run] [--json])`);
}
const registry = values.registry ?? loadServices({ needDocker: false }).registries?.plain?.host;
if (!registry) fail('no registry to clean: pass --registry HOST, or run `bash scripts/test-services.sh up` for the plain registry.');
if (!/^[A-Za-z0-9.-]+(?::\d+)?$/.test(registry)) fail(`--registry must be a host[:port], not '${registry}'`);

const core = await import(new URL('../packages/core/dist/backend.js', import.meta.url).href).catch((error) =>
  fail(`@prebuilt/core is not built (${error.message}); run \`pnpm build\` first.`),
);
const client = new core.RegistryClient({ dockerConfig: false });

/** Every repository of the registry (`GET /v2/_catalog`, page by page), the benchmarks' only. */
async function benchRepositories() {
  const repositories = [];
  const seen = new Set();
  for (let path = '/v2/_catalog?n=100'; path !== undefined; ) {
    if (seen.has(path)) fail(`registry ${registry} listed its repositories in a loop (${path})`);
    seen.add(path);
    const res = await client.apiRequest({ registry, repository: '' }, 'GET', path);
    if (res.status !== 200) fail(`registry ${registry} answered ${res.status} to GET /v2/_catalog: it must list its repositories`);
    const page = JSON.parse(Buffer.from(res.body).toString('utf8'));
    for (const name of page.repositories ?? []) if (typeof name === 'string' && name.startsWith(PREFIX)) repositories.push(name);
    path = core.nextPagePath(res.headers.get('link'), registry);
  }
  return repositories;
}

await main(async () => {
  const report = [];
  let deleted = 0;
  for (const repository of await benchRepositories()) {
    // Tagged images, the children of indexes and the referrers (SBOMs) that name them: each by digest.
    const images = await core.listRepositoryImages(client, `${registry}/${repository}`);
    if (images.length === 0) continue; // emptied before: distribution keeps listing a repository with nothing left in it
    let gone = 0;
    if (!values['dry-run']) {
      for (const image of images) if ((await client.deleteManifest(`${registry}/${repository}`, image.digest)).deleted) gone++;
    }
    deleted += gone;
    report.push({ repository, images: images.length, tags: images.reduce((n, image) => n + image.tags.length, 0), ...(values['dry-run'] ? {} : { deleted: gone }) });
  }
  print(report, deleted);
});

function print(report, deleted) {
  if (values.json) {
    process.stdout.write(`${JSON.stringify({ registry, dryRun: values['dry-run'], repositories: report, deleted }, null, 2)}\n`);
  } else {
    const verb = values['dry-run'] ? 'would delete' : 'deleted';
    for (const r of report) process.stdout.write(`${r.repository}: ${verb} ${values['dry-run'] ? r.images : r.deleted} image(s) (${r.tags} tag(s))\n`);
    const total = values['dry-run'] ? report.reduce((n, r) => n + r.images, 0) : deleted;
    process.stdout.write(
      report.length === 0
        ? `${registry}: no image in ${PREFIX}*, nothing to clean\n`
        : `${registry}: ${verb} ${total} image(s) in ${report.length} ${PREFIX}* repositories${values['dry-run'] ? '' : "; the registry frees their blobs when its garbage collector runs (bench/README.md)"}\n`,
    );
  }
}
