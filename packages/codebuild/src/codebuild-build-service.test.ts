import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CodeBuildClient } from '@aws-sdk/client-codebuild';
import { CloudWatchLogsClient } from '@aws-sdk/client-cloudwatch-logs';
import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CancelledError, ConfigError, InputError, Secret, type BuildRequest, type BuildResult } from '@prebuilt/core/backend';
import codebuildDefinition, { buildspec, createCodeBuildBuildService, type CodeBuildBuildServiceOptions } from './index.js';
import { fakeCodeBuild } from './__testing__/fake-codebuild.js';
import { startFakeS3, type FakeS3, usePrivateTmpdir } from '@prebuilt/fixtures';

// A private temp directory for this file (its own process): see usePrivateTmpdir.
afterAll(usePrivateTmpdir('prebuilt-codebuild-tests-').remove);


const ECR = '123456789012.dkr.ecr.eu-west-1.amazonaws.com';
const TAG = `${ECR}/metaflow-prebuilt:env-abc`;
const OTHER_TAG = 'registry.example.com/team/metaflow-prebuilt:env-abc';
const OTHER_CREDENTIALS = { registry: 'registry.example.com', username: 'pusher', password: new Secret('c0debuild-pa55word'), source: 'the test' };
const ECR_CREDENTIALS = { registry: ECR, username: 'AWS', password: new Secret('ecr-token-value-123'), source: 'ECR GetAuthorizationToken' };
const fakeAws = { region: 'eu-west-1', credentials: { accessKeyId: 'AKIAFAKE', secretAccessKey: 'fake' } };

let s3: FakeS3;
let s3Client: S3Client;
let codebuildClient: CodeBuildClient;
let logsClient: CloudWatchLogsClient;
let fake: ReturnType<typeof fakeCodeBuild>;
let contextDir: string;

beforeAll(async () => {
  s3 = await startFakeS3('build-contexts');
  s3Client = new S3Client(s3.clientConfig);
  codebuildClient = new CodeBuildClient(fakeAws);
  logsClient = new CloudWatchLogsClient(fakeAws);
  fake = fakeCodeBuild(
    { codebuild: codebuildClient, logs: logsClient, s3: s3Client },
    { storedSecrets: { '/prebuilt/registry-password': 'c0debuild-pa55word', 'prebuilt/registry:password': 'c0debuild-pa55word' } },
  );
  contextDir = await mkdtemp(join(tmpdir(), 'prebuilt-codebuild-test-'));
  await writeFile(join(contextDir, 'env.txt'), 'an env\n');
});

afterAll(async () => {
  fake?.restore();
  await s3?.stop();
  s3Client?.destroy();
  await rm(contextDir, { recursive: true, force: true });
});

function service(extra: CodeBuildBuildServiceOptions = {}) {
  return createCodeBuildBuildService({
    env: {},
    project: 'prebuilt-builds',
    bucket: 's3://build-contexts/prebuilt',
    clients: { codebuild: codebuildClient, logs: logsClient, s3: s3Client },
    pollInitialMs: 40,
    pollMaxMs: 150,
    ...extra,
  });
}

function request(dockerfile: string, extra: Partial<BuildRequest> = {}): BuildRequest {
  return { dockerfile, contextDir, imageTag: TAG, platform: 'linux/amd64', ...extra };
}

async function s3Keys(): Promise<string[]> {
  return ((await s3Client.send(new ListObjectsV2Command({ Bucket: 'build-contexts' }))).Contents ?? []).map((o) => o.Key!);
}

afterEach(async () => {
  expect(await s3Keys(), 'uploaded contexts are removed').toEqual([]);
  expect((await readdir(tmpdir())).filter((n) => n.startsWith('prebuilt-codebuild-context-')), 'temp archives are removed').toEqual([]);
  const running = [...fake.builds.values()].filter((b) => b.status === 'IN_PROGRESS');
  expect(running.map((b) => b.id), 'no build is left running').toEqual([]);
});

describe('codebuild build service settings', () => {
  it('is a build-service definition named codebuild', async () => {
    expect(codebuildDefinition).toMatchObject({ apiVersion: 1, kind: 'build-service', name: 'codebuild' });
    const created = await codebuildDefinition.create(
      {},
      { env: { METAFLOW_PREBUILT_CODEBUILD_PROJECT: 'p', METAFLOW_PREBUILT_CODEBUILD_BUCKET: 'bkt' }, cwd: process.cwd() },
    );
    expect(created.name).toBe('codebuild');
  });

  it('needs the project and the bucket: ConfigErrors naming env var and option', () => {
    const errorOf = (fn: () => unknown) => {
      try {
        fn();
      } catch (error) {
        return error as ConfigError;
      }
      throw new Error('no error');
    };
    const project = errorOf(() => createCodeBuildBuildService({ env: { METAFLOW_PREBUILT_CODEBUILD_BUCKET: 'bkt' } }));
    expect(project).toBeInstanceOf(ConfigError);
    expect(project.hint).toMatch(/METAFLOW_PREBUILT_CODEBUILD_PROJECT.*'project'/);
    const bucket = errorOf(() => createCodeBuildBuildService({ env: { METAFLOW_PREBUILT_CODEBUILD_PROJECT: 'p' } }));
    expect(bucket.hint).toMatch(/METAFLOW_PREBUILT_CODEBUILD_BUCKET.*'bucket'/);
    expect(errorOf(() => createCodeBuildBuildService({ project: 'p', bucket: 'gs://x' })).message).toMatch(/not an S3 bucket/);
    expect(
      errorOf(() => createCodeBuildBuildService({ project: 'p', bucket: 'b-1', registryPasswordParameter: 'a', registryPasswordSecret: 'b' })).message,
    ).toMatch(/one place only/);
  });

  it('never sends a registry password as a plaintext variable: without a stored reference that is a ConfigError', async () => {
    const error = await service()
      .buildAndPush(request('FROM base\n', { imageTag: OTHER_TAG, pushCredentials: OTHER_CREDENTIALS }))
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).hint).toMatch(/METAFLOW_PREBUILT_CODEBUILD_REGISTRY_PARAMETER/);
    expect((error as Error).message).not.toContain('c0debuild');
    expect(fake.calls.start().length).toBe(0);
  });

  it('refuses several platforms at once', async () => {
    await expect(service().buildAndPush(request('FROM base\n', { platform: 'linux/amd64,linux/arm64' }))).rejects.toBeInstanceOf(InputError);
  });

  it('the buildspec logs in to ECR with the project role, or with a stored password — never with a literal secret', () => {
    const ecr = JSON.parse(buildspec({ kind: 'ecr', registry: ECR, region: 'eu-west-1' })) as { phases: Record<string, { commands: string[] }> };
    expect(ecr.phases['pre_build']!.commands).toContain(
      'aws ecr get-login-password --region "eu-west-1" | docker login --username AWS --password-stdin "$PREBUILT_REGISTRY"',
    );
    const stored = JSON.parse(buildspec({ kind: 'stored-password', registry: 'r.example.com' })) as typeof ecr & { env: Record<string, unknown> };
    expect(stored.phases['pre_build']!.commands).toContain(
      'printf "%s" "$PREBUILT_REGISTRY_PASSWORD" | docker login --username "$PREBUILT_REGISTRY_USERNAME" --password-stdin "$PREBUILT_REGISTRY"',
    );
    expect(stored.env['exported-variables']).toEqual(['PREBUILT_DIGEST']);
    const none = JSON.parse(buildspec({ kind: 'none' })) as typeof ecr;
    expect(none.phases['pre_build']!.commands.join('\n')).not.toContain('docker login');
  });
});

describe('codebuild build service (aws-sdk-client-mock FAKE CodeBuild + CloudWatch Logs, s3rver FAKE S3)', () => {
  it('uploads the context zip, starts the build with S3 source + buildspec overrides, streams the log, returns the exported digest, removes the zip', async () => {
    const lines: string[] = [];
    const result = await service().buildAndPush(
      request('FROM base\nCOPY env.txt /opt/env.txt\n', { pushCredentials: ECR_CREDENTIALS, log: (line) => lines.push(line) }),
    );
    expect(result).toMatchObject({ ok: true, digest: expect.stringMatching(/^sha256:[a-f0-9]{64}$/) });
    const build = [...fake.builds.values()].at(-1)!;
    expect((result as { digest: string }).digest).toBe(build.exported[0]!.value);
    const input = build.input;
    expect(input.projectName).toBe('prebuilt-builds');
    expect(input.sourceTypeOverride).toBe('S3');
    expect(input.sourceLocationOverride).toMatch(/^build-contexts\/prebuilt\/prebuilt-codebuild-[a-f0-9]+\.zip$/);
    expect(input.privilegedModeOverride).toBe(true);
    expect(input.buildspecOverride).toContain('aws ecr get-login-password --region \\"eu-west-1\\"');
    const variables = Object.fromEntries((input.environmentVariablesOverride ?? []).map((v) => [v.name, v]));
    expect(variables['PREBUILT_IMAGE_TAG']).toEqual({ name: 'PREBUILT_IMAGE_TAG', value: TAG, type: 'PLAINTEXT' });
    expect(variables['PREBUILT_PLATFORM']!.value).toBe('linux/amd64');
    expect(variables['PREBUILT_DOCKERFILE']!.value).toMatch(/^\.prebuilt-[a-f0-9]+\.Dockerfile$/);
    expect(JSON.stringify(input), 'the ECR token is not sent: the project role logs in').not.toContain('ecr-token-value-123');
    expect(lines).toContain('Step 2/2 : COPY env.txt /opt/env.txt');
    expect(lines.some((l) => /^PREBUILT_DIGEST=sha256:/.test(l))).toBe(true);
    expect(fake.calls.logs().length, 'the log is read page by page with nextForwardToken').toBeGreaterThan(2);
    expect(fake.calls.logs().some((call) => (call.args[0].input as { nextToken?: string }).nextToken?.startsWith('f/'))).toBe(true);
  });

  it('reads the digest from its log line when the variable is not exported', async () => {
    const plainCodebuild = new CodeBuildClient(fakeAws);
    const plainLogs = new CloudWatchLogsClient(fakeAws);
    const other = fakeCodeBuild({ codebuild: plainCodebuild, logs: plainLogs, s3: s3Client }, { exportDigest: false });
    try {
      const phases: string[] = [];
      const result = await service({ clients: { codebuild: plainCodebuild, logs: plainLogs, s3: s3Client } }).buildAndPush(
        request('FROM base\n', { onPhase: (p) => phases.push(p) }),
      );
      expect(phases).toEqual(['building', 'pushing']);
      expect(result).toMatchObject({ ok: true });
      const digestLine = [...other.builds.values()][0]!.lines.find((l) => l.startsWith('PREBUILT_DIGEST='))!;
      expect((result as { digest: string }).digest).toBe(digestLine.slice('PREBUILT_DIGEST='.length));
    } finally {
      other.restore();
    }
  });

  it('a non-ECR registry logs in with a Parameter Store reference, not the password', async () => {
    const result = await service({ registryPasswordParameter: '/prebuilt/registry-password' }).buildAndPush(
      request('FROM base\n', { imageTag: OTHER_TAG, pushCredentials: OTHER_CREDENTIALS }),
    );
    expect(result.ok).toBe(true);
    const input = [...fake.builds.values()].at(-1)!.input;
    expect(input.environmentVariablesOverride).toContainEqual({ name: 'PREBUILT_REGISTRY_PASSWORD', value: '/prebuilt/registry-password', type: 'PARAMETER_STORE' });
    expect(input.environmentVariablesOverride).toContainEqual({ name: 'PREBUILT_REGISTRY_USERNAME', value: 'pusher', type: 'PLAINTEXT' });
    expect(JSON.stringify(input)).not.toContain('c0debuild-pa55word');
  });

  it('a Secrets Manager reference works the same way', async () => {
    const result = await service({ registryPasswordSecret: 'prebuilt/registry:password', registryUsername: 'robot' }).buildAndPush(
      request('FROM base\n', { imageTag: OTHER_TAG, pushCredentials: OTHER_CREDENTIALS }),
    );
    expect(result.ok).toBe(true);
    const variables = [...fake.builds.values()].at(-1)!.input.environmentVariablesOverride;
    expect(variables).toContainEqual({ name: 'PREBUILT_REGISTRY_PASSWORD', value: 'prebuilt/registry:password', type: 'SECRETS_MANAGER' });
    expect(variables).toContainEqual({ name: 'PREBUILT_REGISTRY_USERNAME', value: 'robot', type: 'PLAINTEXT' });
  });

  it('a reference the (FAKE) Parameter Store does not have fails the build, with the reason', async () => {
    const result = await service({ registryPasswordParameter: '/prebuilt/missing' }).buildAndPush(
      request('FROM base\n', { imageTag: OTHER_TAG, pushCredentials: OTHER_CREDENTIALS }),
    );
    expect(result).toMatchObject({ ok: false, reason: expect.stringContaining('PARAMETER_STORE reference /prebuilt/missing not found') });
  });

  it('a failing build is { ok: false } with the failed phase as reason and the log tail; the zip is removed', async () => {
    const result = await service().buildAndPush(request('FROM base\nCOPY missing.txt /m\n'));
    expect(result.ok).toBe(false);
    const failed = result as Extract<BuildResult, { ok: false }>;
    expect(failed.reason).toMatch(/status FAILED in phase BUILD: Error while executing command: docker build/);
    expect(failed.logTail.some((l) => l.includes('COPY failed: file not found in build context'))).toBe(true);
  });

  it('a build that outlives the timeout is stopped (StopBuild) and fails naming the timeout', async () => {
    const result = await service({ timeoutSeconds: 1 }).buildAndPush(request('FROM base\nRUN sleep 600\n'));
    expect(result).toMatchObject({ ok: false, reason: expect.stringContaining('timeout of 1 s') });
    const build = [...fake.builds.values()].at(-1)!;
    expect(fake.calls.stop().some((c) => c.args[0].input.id === build.id)).toBe(true);
    expect(build.status).toBe('STOPPED');
  });

  it('cancelling a running build calls StopBuild, rejects with CancelledError and removes the zip', async () => {
    const controller = new AbortController();
    const error = await service()
      .buildAndPush(request('FROM base\nRUN sleep 600\n', { signal: controller.signal, log: (l) => l.includes('Running in') && controller.abort('SIGTERM') }))
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CancelledError);
    expect((error as CancelledError).exitCode).toBe(143);
    const build = [...fake.builds.values()].at(-1)!;
    expect(build.status).toBe('STOPPED');
  });

  it('a CodeBuild API that keeps failing ends the wait with { ok: false } (StopBuild tried, zip removed)', async () => {
    const flakyCodebuild = new CodeBuildClient(fakeAws);
    const flakyLogs = new CloudWatchLogsClient(fakeAws);
    const other = fakeCodeBuild({ codebuild: flakyCodebuild, logs: flakyLogs, s3: s3Client });
    const send = flakyCodebuild.send.bind(flakyCodebuild);
    // Every BatchGetBuilds fails as with expired credentials; the other calls go to the fake.
    flakyCodebuild.send = ((command: { constructor: { name: string } }, ...rest: unknown[]) =>
      command.constructor.name === 'BatchGetBuildsCommand'
        ? Promise.reject(Object.assign(new Error('The security token included in the request is expired'), { name: 'ExpiredTokenException' }))
        : (send as (...args: unknown[]) => Promise<unknown>)(command, ...rest)) as typeof flakyCodebuild.send;
    try {
      const result = await service({ clients: { codebuild: flakyCodebuild, logs: flakyLogs, s3: s3Client } }).buildAndPush(request('FROM base\nRUN sleep 600\n'));
      expect(result).toMatchObject({ ok: false, reason: expect.stringContaining('BatchGetBuilds failed 5 times in a row: The security token included in the request is expired') });
      expect(other.calls.stop()).toHaveLength(1);
      expect([...other.builds.values()][0]!.status).toBe('STOPPED');
    } finally {
      other.restore();
    }
  });

  it('cancelling before the build starts removes the uploaded zip and starts nothing', async () => {
    const before = fake.calls.start().length;
    const controller = new AbortController();
    const promise = service().buildAndPush(request('FROM base\n', { signal: controller.signal }));
    setTimeout(() => controller.abort(), 5);
    await expect(promise).rejects.toBeInstanceOf(CancelledError);
    expect(fake.calls.start().length).toBe(before);
  });
});
