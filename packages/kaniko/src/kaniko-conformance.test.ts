import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { KubeConfig } from '@kubernetes/client-node';
import { afterAll, expect, it } from 'vitest';
import { runBuildServiceConformance } from '@prebuilt/core/conformance';
import { Secret } from '@prebuilt/core/backend';
import kanikoDefinition from './index.js';
import { FakeKubernetes } from './__testing__/fake-kubernetes.js';
import { fakeKanikoExecutor } from './__testing__/fake-kaniko-executor.js';
import { headDigest, startFakeS3, usePrivateTmpdir } from '@prebuilt/fixtures';
import { getServices, missingFor, registerOrFailInCi } from '../../../test/services.js';
import { pushImage } from '../../core/src/registry/__fixtures__/push-image.js';

// A private temp directory for this file (its own process): see usePrivateTmpdir.
afterAll(usePrivateTmpdir('prebuilt-kaniko-tests-').remove);


// The FAKE executor "builds" by checking COPY sources and sleeping for RUN sleep; it pushes nothing,
// so the suite cannot compare the returned digest with a registry (no pushedDigest).
const s3 = await startFakeS3('conformance');
const s3Client = new S3Client(s3.clientConfig);
const kube = await FakeKubernetes.start({
  executor: fakeKanikoExecutor({
    fetchContext: async (url) => {
      const key = url.replace('s3://conformance/', '');
      const object = await s3Client.send(new GetObjectCommand({ Bucket: 'conformance', Key: key }));
      return Buffer.from(await object.Body!.transformToByteArray());
    },
  }),
});
const scratch = await mkdtemp(`${tmpdir()}/prebuilt-kaniko-conformance-`);

afterAll(async () => {
  await kube.stop();
  await s3.stop();
  s3Client.destroy();
  await rm(scratch, { recursive: true, force: true });
});

runBuildServiceConformance({
  name: 'kaniko (FAKE Kubernetes API, FAKE executor, s3rver FAKE S3)',
  definition: kanikoDefinition,
  create: () => {
    const kc = new KubeConfig();
    kc.loadFromOptions(kube.kubeConfigOptions('conformance'));
    return kanikoDefinition.create({ kubeConfig: kc, s3: s3.clientConfig }, { env: { METAFLOW_PREBUILT_KANIKO_CONTEXT_BUCKET: 's3://conformance/ctx' }, cwd: scratch });
  },
  baseImage: 'registry.example.com/prebuilt-conformance/base@sha256:' + '0'.repeat(64),
  imageTag: (label) => `registry.example.com/prebuilt-conformance/kaniko:${label}`,
  pushCredentials: () => ({ registry: 'registry.example.com', username: 'conformance', password: new Secret('conformance-secret'), source: 'the test' }),
  timeoutMs: 30_000,
});

// The same FAKE cluster, but the FAKE executor pushes a (tiny) image for real to the Basic-auth test
// registry with the credentials it finds in the mounted registry Secret, and returns the digest
// the registry reports: the suite then checks the returned digest against the registry.
const services = getServices();
const registry = services.registries?.basic;
const registriesMissing = missingFor(['registries'], services);
const pushingKube = await FakeKubernetes.start({
  executor: fakeKanikoExecutor({
    fetchContext: async (url) => {
      const object = await s3Client.send(new GetObjectCommand({ Bucket: 'conformance', Key: url.replace('s3://conformance/', '') }));
      return Buffer.from(await object.Body!.transformToByteArray());
    },
    push: async (destination, dockerConfig) => {
      const host = destination.slice(0, destination.indexOf('/'));
      const auths = (dockerConfig ? JSON.parse(dockerConfig) : { auths: {} }) as { auths: Record<string, { auth?: string }> };
      const [username, password] = Buffer.from(auths.auths[host]?.auth ?? '', 'base64').toString('utf8').split(':');
      const colon = destination.lastIndexOf(':');
      const pushed = await pushImage({ host, ...(username ? { username, password } : {}) }, destination.slice(host.length + 1, colon), destination.slice(colon + 1));
      return pushed.digest;
    },
  }),
});
afterAll(() => pushingKube.stop());

registerOrFailInCi('build service conformance: kaniko (FAKE Kubernetes API, FAKE executor pushing to the real Basic-auth test registry, s3rver FAKE S3)', registriesMissing, () => runBuildServiceConformance({
  name: 'kaniko (FAKE Kubernetes API, FAKE executor pushing to the real Basic-auth test registry, s3rver FAKE S3)',
  definition: kanikoDefinition,
  skip: registriesMissing ?? false,
  create: () => {
    const kc = new KubeConfig();
    kc.loadFromOptions(pushingKube.kubeConfigOptions('conformance'));
    return kanikoDefinition.create({ kubeConfig: kc, s3: s3.clientConfig }, { env: { METAFLOW_PREBUILT_KANIKO_CONTEXT_BUCKET: 's3://conformance/ctx' }, cwd: scratch });
  },
  baseImage: 'registry.example.com/prebuilt-conformance/base@sha256:' + '0'.repeat(64),
  imageTag: (label) => `${registry!.host}/prebuilt-conformance/kaniko:${label}`,
  pushCredentials: () => ({ registry: registry!.host, username: registry!.username, password: new Secret(registry!.password), source: 'test services' }),
  pushedDigest: (tag) => headDigest(tag, { username: registry!.username, password: registry!.password }),
  timeoutMs: 30_000,
}));

it('after the conformance suite: no job, pod or secret is left in the FAKE cluster', async () => {
  await new Promise((r) => setTimeout(r, 200));
  for (const fake of [kube, pushingKube]) {
    const { jobs, pods, secrets } = fake.objects();
    expect({ jobs: jobs.length, pods: pods.length, secrets: secrets.length }).toEqual({ jobs: 0, pods: 0, secrets: 0 });
  }
  expect((await readdir(tmpdir())).filter((n) => n.startsWith('prebuilt-kaniko-context-'))).toEqual([]);
});
