/**
 * The realistic env of B2 and B3 (`--env realistic`): Debian bookworm's scientific stack
 * (numpy, scipy, pandas, scikit-learn, matplotlib, requests, boto3, OpenBLAS and the libraries they
 * link) repackaged as a conda channel by @prebuilt/fixtures (`generateDebianScientificChannel`),
 * computed against the dpkg status of the test services' base image (debootstrap minbase +
 * python3-minimal). Generating it downloads ~80 .debs with apt and takes a few minutes the first
 * time; it is cached in $PREBUILT_BENCH_DIR/corpus (default /var/tmp/prebuilt-bench/corpus), keyed
 * by its inputs. Host tools: apt-get, dpkg-deb, patchelf, zstd, python3.11 (`bash scripts/setup.sh`).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cliEnv, loadFixtures } from './lib.mjs';

const STATE_DIR = process.env.PREBUILT_BENCH_DIR ?? '/var/tmp/prebuilt-bench';

/** What a step asks for: the closure's roots (conda names of the corpus). */
export const REALISTIC_PACKAGES = {
  numpy: '',
  scipy: '',
  pandas: '',
  sklearn: '',
  matplotlib: '',
  requests: '',
  boto3: '',
  'libopenblas0-pthread': '',
};

/**
 * Generates (or reads from the cache) the corpus and serves it as the channel `debian` on
 * 127.0.0.1:`port`. Returns the corpus, the server and a cleanup.
 */
export async function startRealisticCorpus({ port, services, log = (m) => process.stderr.write(`[corpus] ${m}\n`) }) {
  const fixtures = await loadFixtures();
  const dir = await mkdtemp(join(tmpdir(), 'prebuilt-bench-corpus-'));
  const baseStatus = await fixtures.dpkgStatusOfImage(services.baseImage.ref, join(dir, 'base-dpkg-status'));
  const started = Date.now();
  const corpus = await fixtures.generateDebianScientificChannel(join(dir, 'channel'), { baseStatus, cacheDir: join(STATE_DIR, 'corpus'), onProgress: log });
  log(`${corpus.names.length} packages ready in ${((Date.now() - started) / 1000).toFixed(1)} s${corpus.cached ? ' (from the cache)' : ''}`);
  const server = await fixtures.startFixtureServer({ channels: { debian: corpus.channel.dir }, port });
  const bytes = corpus.channel.artifacts.reduce((sum, a) => sum + a.bytes.length, 0);
  return {
    corpus,
    server,
    channelUrl: server.channelUrls.debian,
    summary: { packages: corpus.channel.artifacts.length, archiveMiB: Math.round((bytes / 2 ** 20) * 10) / 10, python: corpus.pythonVersion },
    close: async () => {
      await server.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/**
 * The CLI's environment for a flow of the realistic corpus ({@link startRealisticCorpus}): {@link cliEnv}
 * with the corpus as the only conda channel, its python as the default, and no PyPI index.
 */
export function realisticCliEnv(corpus, { services, cacheDir, extra = {} }) {
  const env = cliEnv({ server: { channelUrl: corpus.channelUrl, indexUrl: '' }, generated: { python: [{ record: { version: corpus.summary.python } }] }, services, cacheDir, extra });
  delete env.METAFLOW_PREBUILT_PYPI_INDEX_URL;
  return env;
}
