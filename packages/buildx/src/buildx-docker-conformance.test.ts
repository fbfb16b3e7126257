import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { runBuildServiceConformance } from '@prebuilt/core/conformance';
import { headDigest, pinnedImage, testRegistryCredentials } from '@prebuilt/fixtures';
import buildxDefinition from './index.js';
import { describeOrFailInCi, getServices, missingFor, registerOrFailInCi } from '../../../test/services.js';

// The real thing: docker buildx against the test services' daemons (Docker 20.10, the modern
// Docker 26, and Docker 26 with the containerd image store) and registries. scripts/test-services.sh installs the buildx plugin (Debian trixie's
// docker-buildx; bookworm has none); where it is missing, this skips saying so (in CI: fails saying so).
const services = getServices();
const buildxInstalled = spawnSync('docker', ['buildx', 'version'], { encoding: 'utf8' }).status === 0;
const baseImage = services.baseImage ? pinnedImage(services.baseImage) : 'unused';
const daemons = [
  { need: 'docker' as const, name: '', host: services.dockerHost, repo: '', containerdStore: false },
  { need: 'modernDocker' as const, name: `, Docker ${services.modernDocker?.version ?? '26'}`, host: services.modernDocker?.host ?? null, repo: '-modern', containerdStore: false },
  {
    need: 'containerdStoreDocker' as const,
    name: `, Docker ${services.containerdStoreDocker?.version ?? '26'} with the containerd image store`,
    host: services.containerdStoreDocker?.host ?? null,
    repo: '-c8d-store',
    containerdStore: true,
  },
];

for (const daemon of daemons) {
  const env = { ...process.env, ...(daemon.host ? { DOCKER_HOST: daemon.host } : {}) };
  const skip =
    missingFor(['buildx', daemon.need, 'registries', 'baseImage'], services) ??
    (buildxInstalled ? undefined : '`docker buildx version` fails here: install docker-buildx or docker-buildx-plugin (scripts/test-services.sh up unpacks Debian trixie\'s)');
  const name = `buildx (real docker buildx${daemon.name}, Basic-auth test registry)`;
  registerOrFailInCi(`build service conformance: ${name}`, skip, () => runBuildServiceConformance({
    name,
    definition: buildxDefinition,
    skip: skip ?? false,
    create: () => buildxDefinition.create({}, { env, cwd: process.cwd() }),
    baseImage,
    imageTag: (label) => `${services.registries!.basic.host}/prebuilt-conformance/buildx${daemon.repo}:${label}`,
    pushCredentials: () => testRegistryCredentials(services.registries!.basic),
    pushedDigest: (tag) => headDigest(tag, services.registries!.basic),
  }));
  describeOrFailInCi(`buildx (real docker buildx${daemon.name}): the image in the daemon`, skip, () => {
    // Read when a test runs: the registries are absent where the suite is skipped.
    const registry = () => services.registries!.basic;
    const tagFor = (name: string, label: string) => `${registry().host}/prebuilt-conformance/buildx-${name}${daemon.repo}:${label}-${Date.now()}`;
    /** The image ID the tag names in this daemon; '' for none. */
    const imageId = (tag: string) => spawnSync('docker', ['image', 'inspect', '--format', '{{.Id}}', tag], { env, encoding: 'utf8' }).stdout.trim();
    /** A one-file image built and pushed by the service; without `buildEnv`'s credentials when `credentials` is false. */
    const buildIn = async (contextDir: string, imageTag: string, o: { keepImages: boolean; buildEnv: NodeJS.ProcessEnv; credentials: boolean; note?: (note: string) => void }) =>
      (await buildxDefinition.create({ keepImages: o.keepImages }, { env: o.buildEnv, cwd: process.cwd() })).buildAndPush({
        dockerfile: `FROM ${baseImage}\nCOPY marker /marker\n`,
        contextDir,
        imageTag,
        platform: 'linux/amd64',
        ...(o.credentials ? { pushCredentials: testRegistryCredentials(registry()) } : {}),
        ...(o.note ? { note: o.note } : {}),
      });

    it('after the push the tag is gone from the daemon and the image is in the registry; keepImages keeps it', async () => {
      const contextDir = await mkdtemp(join(tmpdir(), 'prebuilt-buildx-untag-'));
      try {
        await writeFile(join(contextDir, 'marker'), randomUUID());
        const build = async (keepImages: boolean, label: string) => {
          const imageTag = tagFor('untag', label);
          const notes: string[] = [];
          const result = await buildIn(contextDir, imageTag, { keepImages, buildEnv: env, credentials: true, note: (note) => notes.push(note) });
          expect(result.ok, JSON.stringify(result)).toBe(true);
          expect(notes).toEqual([]);
          expect(await headDigest(imageTag, registry())).toBe((result as { digest: string }).digest);
          return { imageTag, inDaemon: imageId(imageTag) !== '' };
        };
        const kept = await build(true, 'kept');
        expect(kept.inDaemon, 'the docker driver stores the image in the daemon').toBe(true);
        spawnSync('docker', ['image', 'rm', kept.imageTag], { env });
        expect((await build(false, 'removed')).inDaemon, 'the tag was removed after the push').toBe(false);
      } finally {
        await rm(contextDir, { recursive: true, force: true });
      }
    }, 300_000);

    it("a build whose push the registry refuses leaves no tag behind, but keeps a tag that named the same image before", async () => {
      const contextDir = await mkdtemp(join(tmpdir(), 'prebuilt-buildx-refused-'));
      // No credentials at all: the Basic-auth registry refuses the push after the image is built.
      const noLogin = { ...env, DOCKER_CONFIG: join(contextDir, 'docker-config') };
      const build = (imageTag: string, keepImages: boolean, withCredentials: boolean) =>
        buildIn(contextDir, imageTag, { keepImages, buildEnv: withCredentials ? env : noLogin, credentials: withCredentials });
      const refused = tagFor('refused', 'refused');
      const own = tagFor('refused', 'own');
      try {
        await writeFile(join(contextDir, 'marker'), randomUUID());
        const failed = await build(refused, false, false);
        expect(failed.ok, JSON.stringify(failed)).toBe(false);
        expect(imageId(refused), 'the failed build left no tag in the daemon').toBe('');

        expect((await build(own, true, true)).ok).toBe(true);
        const ownId = imageId(own);
        expect(ownId).toMatch(/^sha256:/);
        expect((await build(own, false, false)).ok).toBe(false);
        expect(imageId(own), "the tag that named the same image before stays").toBe(ownId);
      } finally {
        spawnSync('docker', ['image', 'rm', refused, own], { env });
        await rm(contextDir, { recursive: true, force: true });
      }
    }, 300_000);

    // With the containerd image store, BuildKit drops the image whose only tag the build takes (seen on
    // Docker Engine 26.1 and 28.5): it cannot be tagged again, and the service says so in a note.
    const retagTitle = daemon.containerdStore
      ? 'a build whose push the registry refuses took the only tag of the image it named before, which the containerd image store dropped: no tag, a note'
      : 'a build whose push the registry refuses gives the tag back to the image it named before (its only tag)';
    it(retagTitle, async () => {
      const contextDir = await mkdtemp(join(tmpdir(), 'prebuilt-buildx-retag-'));
      const noLogin = { ...env, DOCKER_CONFIG: join(contextDir, 'docker-config') };
      const imageTag = tagFor('retag', 'moved');
      try {
        // The user's image under the tag: built and kept by the service, so the tag is its only name.
        await writeFile(join(contextDir, 'marker'), randomUUID());
        expect((await buildIn(contextDir, imageTag, { keepImages: true, buildEnv: env, credentials: true })).ok).toBe(true);
        const userId = imageId(imageTag);
        expect(userId).toMatch(/^sha256:/);
        // Another image under the same tag, whose push the Basic-auth registry refuses (no credentials).
        await writeFile(join(contextDir, 'marker'), randomUUID());
        const notes: string[] = [];
        const failed = await buildIn(contextDir, imageTag, { keepImages: false, buildEnv: noLogin, credentials: false, note: (note) => notes.push(note) });
        expect(failed.ok, JSON.stringify(failed)).toBe(false);
        if (daemon.containerdStore) {
          expect(imageId(userId), 'the containerd image store dropped the image').toBe('');
          expect(imageId(imageTag), 'the failed build left no tag').toBe('');
          expect(notes).toEqual([expect.stringContaining(`the image it named before (${userId}) is no longer in the daemon`)]);
        } else {
          expect(notes).toEqual([]);
          expect(imageId(imageTag), 'the tag names the image it named before the failed build').toBe(userId);
        }
      } finally {
        spawnSync('docker', ['image', 'rm', imageTag], { env });
        await rm(contextDir, { recursive: true, force: true });
      }
    }, 300_000);
  });
}
