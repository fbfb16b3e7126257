/**
 * A FAKE AWS CodeBuild and CloudWatch Logs (not AWS), built on aws-sdk-client-mock: StartBuild,
 * BatchGetBuilds, StopBuild and GetLogEvents answer like the services do, for one build at a time
 * per id. A started build really fetches its source zip from S3 (s3rver in the tests), unpacks the
 * context tarball, checks the buildspec's inputs and "builds" the Dockerfile: `COPY <src>` fails
 * when `<src>` is missing, `RUN sleep <n>` runs until StopBuild or the time is up, `RUN exit <n>`
 * fails. Log lines appear in CloudWatch as they are produced, three per page.
 */
import { randomBytes } from 'node:crypto';
import {
  BatchGetBuildsCommand,
  StartBuildCommand,
  StopBuildCommand,
  type CodeBuildClient,
  type StartBuildCommandInput,
} from '@aws-sdk/client-codebuild';
import { GetLogEventsCommand, ResourceNotFoundException, type CloudWatchLogsClient } from '@aws-sdk/client-cloudwatch-logs';
import type { S3Client } from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { runFakeBuild } from './fake-codebuild-run.js';

export interface FakeBuild {
  id: string;
  input: StartBuildCommandInput;
  status: 'IN_PROGRESS' | 'SUCCEEDED' | 'FAILED' | 'STOPPED';
  lines: string[];
  phases: { phaseType: string; phaseStatus: string; contexts?: { statusCode: string; message: string }[] }[];
  exported: { name: string; value: string }[];
  stopped: boolean;
  abort: AbortController;
  /** When the log stream exists (CloudWatch creates it a little after the start). */
  streamCreated: boolean;
}

export interface FakeCodeBuildOptions {
  /** Export PREBUILT_DIGEST as a variable (default true); false leaves only the log line. */
  exportDigest?: boolean;
  /** A fake Parameter Store / Secrets Manager: what PARAMETER_STORE and SECRETS_MANAGER variables resolve to. */
  storedSecrets?: Record<string, string>;
  /**
   * Pushes for real: gets the image tag and the login the build has (user and password resolved
   * from the stored secrets, or undefined), returns the pushed digest. Default: nothing is pushed
   * and the digest is a hash of the inputs.
   */
  push?: (imageTag: string, login: { username: string; password: string } | undefined) => Promise<string>;
}

export function fakeCodeBuild(clients: { codebuild: CodeBuildClient; logs: CloudWatchLogsClient; s3: S3Client }, options: FakeCodeBuildOptions = {}) {
  const builds = new Map<string, FakeBuild>();
  const codebuildMock = mockClient(clients.codebuild);
  const logsMock = mockClient(clients.logs);
  const view = (b: FakeBuild) => ({
    id: b.id,
    buildStatus: b.status,
    logs: { groupName: '/aws/codebuild/fake', streamName: b.id.split(':')[1] },
    phases: b.phases,
    ...(b.status === 'SUCCEEDED' ? { exportedEnvironmentVariables: b.exported } : {}),
  });

  codebuildMock.on(StartBuildCommand).callsFake(async (input: StartBuildCommandInput) => {
    const id = `${input.projectName}:${randomBytes(8).toString('hex')}`;
    const build: FakeBuild = { id, input, status: 'IN_PROGRESS', lines: [], phases: [], exported: [], stopped: false, abort: new AbortController(), streamCreated: false };
    builds.set(id, build);
    void runFakeBuild(build, clients.s3, options).catch((error: unknown) => {
      build.lines.push(`fake CodeBuild crashed: ${String(error)}`);
      build.status = 'FAILED';
    });
    return { build: { id, buildStatus: 'IN_PROGRESS' } };
  });
  codebuildMock.on(BatchGetBuildsCommand).callsFake(async (input: { ids?: string[] }) => ({
    builds: (input.ids ?? []).flatMap((id) => (builds.has(id) ? [view(builds.get(id)!)] : [])),
    buildsNotFound: (input.ids ?? []).filter((id) => !builds.has(id)),
  }));
  codebuildMock.on(StopBuildCommand).callsFake(async (input: { id?: string }) => {
    const build = builds.get(input.id ?? '');
    if (!build) throw Object.assign(new Error(`Build ${input.id} not found`), { name: 'ResourceNotFoundException' });
    if (build.status === 'IN_PROGRESS') {
      build.stopped = true;
      build.status = 'STOPPED';
      build.abort.abort();
    }
    return { build: view(build) };
  });
  logsMock.on(GetLogEventsCommand).callsFake(async (input: { logStreamName?: string; nextToken?: string }) => {
    const build = [...builds.values()].find((b) => b.id.endsWith(`:${input.logStreamName}`));
    if (!build || !build.streamCreated) throw new ResourceNotFoundException({ message: 'The specified log stream does not exist.', $metadata: {} });
    const start = input.nextToken ? Number(input.nextToken.slice(2)) : 0;
    const page = build.lines.slice(start, start + 3);
    return {
      events: page.map((message, i) => ({ message: `${message}\n`, timestamp: Date.now(), ingestionTime: Date.now() + i })),
      nextForwardToken: `f/${start + page.length}`,
      nextBackwardToken: `b/${start}`,
    };
  });

  return {
    builds,
    calls: {
      start: () => codebuildMock.commandCalls(StartBuildCommand),
      stop: () => codebuildMock.commandCalls(StopBuildCommand),
      batchGet: () => codebuildMock.commandCalls(BatchGetBuildsCommand),
      logs: () => logsMock.commandCalls(GetLogEventsCommand),
    },
    restore() {
      codebuildMock.restore();
      logsMock.restore();
    },
  };
}
