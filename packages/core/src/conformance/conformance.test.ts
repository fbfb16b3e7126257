/**
 * Proves the conformance suites on FAKE backends (in-memory registry, Dockerfile-interpreting
 * builder). conformance-broken.test.ts proves that they also catch broken backends.
 */
import { FAKE_HOST, FakeImageStore, fakeBuildServiceDefinition, fakeImageRegistry, fakePush, fakeRegistryDefinition } from './__fixtures__/fake-backends.js';
import { runBuildServiceConformance, runImageRegistryConformance } from './index.js';

const store = new FakeImageStore({ username: 'conformance', password: 'fake-registry-password-123' });
const baseImage = `${FAKE_HOST}/base/minimal:1`;
store.put(baseImage, 'fake base image');
const registry = fakeImageRegistry(store);

runBuildServiceConformance({
  name: 'FAKE Dockerfile interpreter writing to an in-memory registry',
  definition: fakeBuildServiceDefinition(store),
  baseImage,
  imageTag: (label) => `${FAKE_HOST}/conformance/build:${label}`,
  pushCredentials: () => registry.pushCredentials(),
  pushedDigest: async (tag) => store.digestOf(tag),
  slowInstruction: 'RUN sleep 60',
  cancelAfterMs: 200,
});

runImageRegistryConformance({
  name: 'FAKE in-memory registry',
  definition: fakeRegistryDefinition(store),
  push: (tag) => fakePush(store, tag),
  secrets: ['fake-registry-password-123'],
});
