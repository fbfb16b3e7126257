/**
 * Run only by conformance-broken.test.ts, in a child vitest: the suites against FAKE backends
 * that each break rules of the contract. Every suite test named there must fail; the rest pass.
 */
import { runBuildServiceConformance, runImageRegistryConformance } from '../index.js';
import { FAKE_HOST, FakeImageStore, fakeBuildService, fakeImageRegistry, fakePush } from './fake-backends.js';

const store = new FakeImageStore({ username: 'conformance', password: 'broken-registry-password-456' });
const baseImage = `${FAKE_HOST}/base/minimal:1`;
store.put(baseImage, 'fake base image');

runBuildServiceConformance({
  name: 'FAKE broken builder',
  // apiVersion 2: the definition check must fail.
  definition: { apiVersion: 2, kind: 'build-service', name: 'broken', create: () => fakeBuildService(store) } as never,
  create: () => fakeBuildService(store, { throwOnFailure: true, ignoreSignal: true }),
  baseImage,
  imageTag: (label) => `${FAKE_HOST}/conformance/build:${label}`,
  pushCredentials: () => fakeImageRegistry(store).pushCredentials(),
  pushedDigest: async (tag) => store.digestOf(tag),
  slowInstruction: 'RUN sleep 60',
  cancelAfterMs: 100,
});

runImageRegistryConformance({
  name: 'FAKE broken registry',
  create: () => fakeImageRegistry(store, { tagIgnoresPlatform: true, plainPassword: true, alwaysExists: true, wrongAnnotations: true }),
  push: (tag) => fakePush(store, tag),
  secrets: ['broken-registry-password-456'],
});
