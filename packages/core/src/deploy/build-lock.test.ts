// The orchestrator's buildLock hook with the real inter-process lock file: two deploys of the same
// env at once build it once; the one that waited re-checks the registry and reuses the image.
import { createHash } from 'node:crypto';
import { mkdtemp, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { BuildRequest, DeployEvent, DeployOptions, ImageRegistry } from '../contracts.js';
import type { LockedEnv } from '../env-model.js';
import { acquireFileLock } from '../file-lock.js';
import { deploy } from './orchestrator.js';

const sha = (text: string): string => createHash('sha256').update(text).digest('hex');

const LOCK: LockedEnv = {
  specHash: sha('spec'),
  request: { python: '3.11', conda: { tinynum: '' }, pypi: {}, channels: ['http://127.0.0.1:1/fake'], indexUrl: null, platform: 'linux-64' },
  platform: 'linux-64',
  pythonVersion: '3.11.2',
  packages: [{ kind: 'conda', name: 'python', version: '3.11.2', build: '0', url: 'http://127.0.0.1:1/fake/python.conda', sha256: sha('python'), size: 1, filename: 'python.conda', subdir: 'linux-64' }],
};

async function world() {
  const dir = await mkdtemp(join(tmpdir(), 'prebuilt-build-lock-'));
  const images = new Map<string, string>();
  const builds: BuildRequest[] = [];
  const flight = { now: 0, max: 0 };
  const registry: ImageRegistry = {
    name: 'fake-memory',
    imageTag: ({ envId }) => `fake.registry.test/ns:env-${envId}`,
    pushCredentials: async () => undefined,
    pullConfig: async () => ({}),
    imageExists: async (tag) => (images.has(tag) ? { exists: true, digest: images.get(tag)! } : { exists: false }),
    baseImageIdentity: async (ref) => ({ ref, digest: `sha256:${sha(ref)}`, pinned: `${ref}@sha256:${sha(ref)}` }),
  };
  const options = (events: DeployEvent[], extra: Partial<DeployOptions> = {}): DeployOptions => ({
    flow: 'LockFlow',
    steps: [{ name: 'start', gpu: false }],
    registry,
    buildService: {
      name: 'fake-slow-build',
      async buildAndPush(request) {
        builds.push(request);
        flight.max = Math.max(flight.max, ++flight.now);
        await new Promise((resolve) => setTimeout(resolve, 300));
        flight.now--;
        const digest = `sha256:${sha(request.dockerfile)}`;
        images.set(request.imageTag, digest);
        return { ok: true, digest };
      },
    },
    recipe: { name: 'fake', version: '1', prepare: async () => ({ dockerfile: 'FROM scratch\n', contextDir: dir, dispose: async () => {} }) },
    baseImage: 'base.test/python:3.11',
    lock: async () => ({ start: LOCK }),
    onEvent: (event) => events.push(event),
    buildLock: async (image, lockOptions) => {
      const lock = await acquireFileLock(join(dir, 'locks', `${sha(image.tag)}.lock`), { pollMs: 20, onWait: (_owner, holder) => lockOptions.onWait(holder), ...(lockOptions.signal ? { signal: lockOptions.signal } : {}) });
      return { waited: lock.waitedFor !== undefined, release: () => lock.release() };
    },
    ...extra,
  });
  return { dir, builds, flight, options };
}

describe('deploy with a build lock (fake registry and build service, real lock files)', () => {
  it('two deploys of one env at once build it once; the waiter reports waiting and reuses the image', async () => {
    const { dir, builds, options } = await world();
    const eventsA: DeployEvent[] = [];
    const eventsB: DeployEvent[] = [];
    const [a, b] = await Promise.all([deploy(options(eventsA)), deploy(options(eventsB))]);
    expect(builds).toHaveLength(1);
    expect([a.images[0]!.status, b.images[0]!.status].sort()).toEqual(['built', 'present']);
    expect(a.images[0]!.digest).toBe(b.images[0]!.digest);
    const waiting = [...eventsA, ...eventsB].flatMap((e) => (e.type === 'image' && e.phase === 'waiting' ? [e.detail] : []));
    expect(waiting).toHaveLength(1);
    expect(waiting[0]).toMatch(new RegExp(`^another prebuilt process is building this image: pid ${process.pid} on host .+, holding it since `));
    expect(await readdir(join(dir, 'locks'))).toEqual([]);
  });

  it('with --force both build, one after the other', async () => {
    const { builds, flight, options } = await world();
    const [a, b] = await Promise.all([deploy(options([], { force: true })), deploy(options([], { force: true }))]);
    expect(builds).toHaveLength(2);
    expect(flight.max).toBe(1);
    expect([a.images[0]!.status, b.images[0]!.status]).toEqual(['built', 'built']);
  });
});
