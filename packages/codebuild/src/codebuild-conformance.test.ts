import { CodeBuildClient } from '@aws-sdk/client-codebuild';
import { CloudWatchLogsClient } from '@aws-sdk/client-cloudwatch-logs';
import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { afterAll, expect, it } from 'vitest';
import { runBuildServiceConformance } from '@prebuilt/core/conformance';
import { Secret } from '@prebuilt/core/backend';
import codebuildDefinition from './index.js';
import { fakeCodeBuild } from './__testing__/fake-codebuild.js';
import { headDigest, startFakeS3, usePrivateTmpdir } from '@prebuilt/fixtures';
import { getServices, missingFor, registerOrFailInCi } from '../../../test/services.js';
import { pushImage } from '../../core/src/registry/__fixtures__/push-image.js';

// A private temp directory for this file (its own process): see usePrivateTmpdir.
afterAll(usePrivateTmpdir('prebuilt-codebuild-tests-').remove);


// The FAKE CodeBuild "builds" by checking COPY sources and sleeping for RUN sleep; it pushes
// nothing, so the suite cannot compare the returned digest with a registry (no pushedDigest).
const ECR = '123456789012.dkr.ecr.us-east-1.amazonaws.com';
const aws = { region: 'us-east-1', credentials: { accessKeyId: 'AKIAFAKE', secretAccessKey: 'fake' } };
const s3 = await startFakeS3('conformance');
const s3Client = new S3Client(s3.clientConfig);
const codebuild = new CodeBuildClient(aws);
const logs = new CloudWatchLogsClient(aws);
const fake = fakeCodeBuild({ codebuild, logs, s3: s3Client });

afterAll(async () => {
  fake.restore();
  await s3.stop();
  s3Client.destroy();
});

runBuildServiceConformance({
  name: 'codebuild (FAKE CodeBuild + CloudWatch Logs via aws-sdk-client-mock, s3rver FAKE S3)',
  definition: codebuildDefinition,
  create: () =>
    codebuildDefinition.create(
      { clients: { codebuild, logs, s3: s3Client }, pollInitialMs: 50, pollMaxMs: 200 },
      { env: { METAFLOW_PREBUILT_CODEBUILD_PROJECT: 'conformance', METAFLOW_PREBUILT_CODEBUILD_BUCKET: 's3://conformance/ctx' }, cwd: process.cwd() },
    ),
  baseImage: `${ECR}/prebuilt-conformance/base@sha256:${'0'.repeat(64)}`,
  imageTag: (label) => `${ECR}/prebuilt-conformance/codebuild:${label}`,
  pushCredentials: () => ({ registry: ECR, username: 'AWS', password: new Secret('conformance-ecr-token'), source: 'the test' }),
  timeoutMs: 30_000,
});

// FAKE CodeBuild again, now pushing a (tiny) image for real to the Basic-auth test registry with
// the password the build gets from a (fake) Parameter Store reference — never from prebuilt —
// so the suite checks the returned digest against the registry.
const services = getServices();
const registry = services.registries?.basic;
const registriesMissing = missingFor(['registries'], services);
const pushingCodebuild = new CodeBuildClient(aws);
const pushingLogs = new CloudWatchLogsClient(aws);
const pushingFake = fakeCodeBuild(
  { codebuild: pushingCodebuild, logs: pushingLogs, s3: s3Client },
  {
    storedSecrets: registry ? { '/prebuilt/test-registry-password': registry.password } : {},
    push: async (tag, login) => {
      const slash = tag.indexOf('/');
      const colon = tag.lastIndexOf(':');
      return (await pushImage({ host: tag.slice(0, slash), ...(login ?? {}) }, tag.slice(slash + 1, colon), tag.slice(colon + 1))).digest;
    },
  },
);
afterAll(() => pushingFake.restore());

registerOrFailInCi('build service conformance: codebuild (FAKE CodeBuild pushing to the real Basic-auth test registry with a Parameter Store reference, s3rver FAKE S3)', registriesMissing, () => runBuildServiceConformance({
  name: 'codebuild (FAKE CodeBuild pushing to the real Basic-auth test registry with a Parameter Store reference, s3rver FAKE S3)',
  definition: codebuildDefinition,
  skip: registriesMissing ?? false,
  create: () =>
    codebuildDefinition.create(
      { clients: { codebuild: pushingCodebuild, logs: pushingLogs, s3: s3Client }, pollInitialMs: 50, pollMaxMs: 200 },
      {
        env: {
          METAFLOW_PREBUILT_CODEBUILD_PROJECT: 'conformance',
          METAFLOW_PREBUILT_CODEBUILD_BUCKET: 's3://conformance/ctx',
          METAFLOW_PREBUILT_CODEBUILD_REGISTRY_PARAMETER: '/prebuilt/test-registry-password',
        },
        cwd: process.cwd(),
      },
    ),
  baseImage: `${registry?.host ?? 'unused'}/prebuilt-conformance/base@sha256:${'0'.repeat(64)}`,
  imageTag: (label) => `${registry!.host}/prebuilt-conformance/codebuild:${label}`,
  pushCredentials: () => ({ registry: registry!.host, username: registry!.username, password: new Secret(registry!.password), source: 'test services' }),
  pushedDigest: (tag) => headDigest(tag, { username: registry!.username, password: registry!.password }),
  timeoutMs: 30_000,
}));

it('after the conformance suite: no context zip is left in the bucket and no build is left running', async () => {
  const keys = ((await s3Client.send(new ListObjectsV2Command({ Bucket: 'conformance' }))).Contents ?? []).map((o) => o.Key);
  expect(keys).toEqual([]);
  for (const f of [fake, pushingFake]) expect([...f.builds.values()].filter((b) => b.status === 'IN_PROGRESS')).toEqual([]);
  const variables = [...pushingFake.builds.values()].flatMap((b) => b.input.environmentVariablesOverride ?? []);
  expect(JSON.stringify(variables), 'the registry password never went to CodeBuild').not.toContain(registry?.password ?? '\u0000');
});
