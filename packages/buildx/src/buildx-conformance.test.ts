import { afterAll } from 'vitest';
import { usePrivateTmpdir } from '@prebuilt/fixtures';
import { runBuildServiceConformance } from '@prebuilt/core/conformance';
import { Secret } from '@prebuilt/core/backend';
import buildxDefinition from './index.js';
import { createFakeDocker } from './__testing__/fake-docker.js';

// A private temp directory for this file (its own process): see usePrivateTmpdir.
afterAll(usePrivateTmpdir('prebuilt-buildx-tests-').remove);


// The stand-in "builds" by checking COPY sources against the context and sleeping for `RUN sleep`;
// it pushes nothing, so the suite cannot compare the digest with a registry (no pushedDigest).
const fake = await createFakeDocker();
afterAll(() => fake.remove());

runBuildServiceConformance({
  name: 'buildx (FAKE scripted docker on PATH)',
  definition: buildxDefinition,
  create: () => buildxDefinition.create({}, { env: fake.env(), cwd: process.cwd() }),
  baseImage: '127.0.0.1:5999/prebuilt-conformance/base@sha256:' + '0'.repeat(64),
  imageTag: (label) => `127.0.0.1:5999/prebuilt-conformance/buildx:${label}`,
  pushCredentials: () => ({ registry: '127.0.0.1:5999', username: 'conformance', password: new Secret('conformance-secret'), source: 'the test' }),
  timeoutMs: 30_000,
});
