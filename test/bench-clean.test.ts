// bench/clean.mjs against a throwaway registry of its own (the reference registry, deletes enabled),
// never the shared one whose benchmark images others may be using: the images of every
// prebuilt-bench/* repository go (tags, index children), every other repository stays.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startPlainRegistry, type HtpasswdRegistry } from '../packages/fixtures/dist/index.js';
import { pushImage, pushIndex } from '../packages/core/src/registry/__fixtures__/push-image.js';
import { describeWithRegistries } from './services.js';

const run = promisify(execFile);
const CLEAN = join(import.meta.dirname, '..', 'bench', 'clean.mjs');

const clean = async (registry: string, ...args: string[]): Promise<{ stdout: string; code: number; stderr: string }> => {
  try {
    const { stdout, stderr } = await run(process.execPath, [CLEAN, '--registry', registry, ...args]);
    return { stdout, stderr, code: 0 };
  } catch (error) {
    const failed = error as { stdout: string; stderr: string; code: number };
    return { stdout: failed.stdout, stderr: failed.stderr, code: failed.code };
  }
};

describeWithRegistries('bench/clean.mjs (a registry of its own)', () => {
  let registry: HtpasswdRegistry;
  beforeAll(async () => {
    registry = await startPlainRegistry();
  });
  afterAll(async () => {
    await registry?.stop();
  });

  const manifestStatus = async (repository: string, reference: string): Promise<number> => {
    const res = await fetch(`http://${registry.host}/v2/${repository}/manifests/${reference}`, {
      method: 'HEAD',
      headers: { accept: 'application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json' },
      signal: AbortSignal.timeout(5000),
    });
    return res.status;
  };
  const tags = async (repository: string): Promise<string[]> => {
    const res = await fetch(`http://${registry.host}/v2/${repository}/tags/list`, { signal: AbortSignal.timeout(5000) });
    return res.status === 404 ? [] : (((await res.json()) as { tags: string[] | null }).tags ?? []);
  };

  it('deletes every image of the prebuilt-bench/* repositories and nothing else; --dry-run deletes nothing; a second run finds nothing', async () => {
    const target = { host: registry.host };
    const index = await pushIndex(target, 'prebuilt-bench/scratch-index', 'multi');
    const single = await pushImage(target, 'prebuilt-bench/scratch-single', 'a');
    const kept = await pushImage(target, 'prebuilt-test/not-bench', 'a');

    const dry = await clean(registry.host, '--dry-run', '--json');
    expect(dry.code, dry.stderr).toBe(0);
    expect(JSON.parse(dry.stdout)).toEqual({
      registry: registry.host,
      dryRun: true,
      repositories: [
        { repository: 'prebuilt-bench/scratch-index', images: 3, tags: 3 },
        { repository: 'prebuilt-bench/scratch-single', images: 1, tags: 1 },
      ],
      deleted: 0,
    });
    expect(await tags('prebuilt-bench/scratch-index')).toHaveLength(3);

    const done = await clean(registry.host);
    expect(done.code, done.stderr).toBe(0);
    expect(done.stdout).toBe(
      [
        'prebuilt-bench/scratch-index: deleted 3 image(s) (3 tag(s))',
        'prebuilt-bench/scratch-single: deleted 1 image(s) (1 tag(s))',
        `${registry.host}: deleted 4 image(s) in 2 prebuilt-bench/* repositories; the registry frees their blobs when its garbage collector runs (bench/README.md)`,
        '',
      ].join('\n'),
    );
    for (const [repository, digest] of [
      ['prebuilt-bench/scratch-index', index.digest],
      ['prebuilt-bench/scratch-index', index.amd64.digest],
      ['prebuilt-bench/scratch-index', index.arm64.digest],
      ['prebuilt-bench/scratch-single', single.digest],
    ] as const) {
      expect(await manifestStatus(repository, digest), `${repository}@${digest}`).toBe(404);
    }
    expect(await tags('prebuilt-bench/scratch-index')).toEqual([]);
    expect(await tags('prebuilt-bench/scratch-single')).toEqual([]);
    // Outside prebuilt-bench/: untouched.
    expect(await manifestStatus('prebuilt-test/not-bench', kept.digest)).toBe(200);
    expect(await tags('prebuilt-test/not-bench')).toEqual(['a']);

    const again = await clean(registry.host);
    expect(again.stdout).toBe(`${registry.host}: no image in prebuilt-bench/*, nothing to clean\n`);
  });

  it('a --registry that is no host is exit 2 saying so, without a stack trace', async () => {
    const bad = await clean('http://x/');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toBe("bench: --registry must be a host[:port], not 'http://x/'\n");
  });
});
