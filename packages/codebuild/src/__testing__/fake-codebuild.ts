/**
 * A FAKE AWS CodeBuild and CloudWatch Logs (not AWS), built on aws-sdk-client-mock: StartBuild,
 * BatchGetBuilds, StopBuild and GetLogEvents answer like the services do, for one build at a time
 * per id. A started build really fetches its source zip from S3 (s3rver in the tests), unpacks the
 * context tarball, checks the buildspec's inputs and "builds" the Dockerfile: `COPY <src>` fails
 * when `<src>` is missing, `RUN sleep <n>` runs until StopBuild or the time is up, `RUN exit <n>`
 * fails. Log lines appear in CloudWatch as they are produced, three per page.
 */
import { createHash, randomBytes } from 'node:crypto';
import {
  BatchGetBuildsCommand,
  StartBuildCommand,
  StopBuildCommand,
  type CodeBuildClient,
  type StartBuildCommandInput,
} from '@aws-sdk/client-codebuild';
import { GetLogEventsCommand, ResourceNotFoundException, type CloudWatchLogsClient } from '@aws-sdk/client-cloudwatch-logs';
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { unzipSync } from 'fflate';
import { untarGz } from '@prebuilt/fixtures';

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

  async function run(build: FakeBuild): Promise<void> {
    const say = (line: string) => build.lines.push(line);
    const fail = (phase: string, message: string) => {
      build.phases.push({ phaseType: phase, phaseStatus: 'FAILED', contexts: [{ statusCode: 'COMMAND_EXECUTION_ERROR', message }] });
      say(`[Container] ${message}`);
      build.status = 'FAILED';
    };
    await new Promise((r) => setTimeout(r, 30));
    build.streamCreated = true;
    say(`[Container] Entering phase DOWNLOAD_SOURCE`);
    const location = build.input.sourceLocationOverride ?? '';
    const slash = location.indexOf('/');
    let files: Map<string, Buffer>;
    try {
      const object = await clients.s3.send(new GetObjectCommand({ Bucket: location.slice(0, slash), Key: location.slice(slash + 1) }));
      const zip = unzipSync(await object.Body!.transformToByteArray());
      files = await untarGz(zip['prebuilt-context.tar.gz']!);
    } catch (error) {
      return fail('DOWNLOAD_SOURCE', `CLIENT_ERROR: no matching artifact paths found for ${location}: ${String(error)}`);
    }
    const env: Record<string, string | undefined> = {};
    for (const variable of build.input.environmentVariablesOverride ?? []) {
      if (variable.type === 'PARAMETER_STORE' || variable.type === 'SECRETS_MANAGER') {
        const value = options.storedSecrets?.[variable.value ?? ''];
        if (value === undefined) return fail('DOWNLOAD_SOURCE', `CLIENT_ERROR: ${variable.type} reference ${variable.value} not found`);
        env[variable.name!] = value;
      } else env[variable.name!] = variable.value;
    }
    say('[Container] Entering phase BUILD');
    const dockerfile = files.get(env['PREBUILT_DOCKERFILE'] ?? '');
    if (!dockerfile) return fail('BUILD', 'Error while executing command: docker build. Reason: exit status 1 (Dockerfile not found)');
    say(`[Container] Running command docker build --platform "$PREBUILT_PLATFORM" --file "prebuilt-context/$PREBUILT_DOCKERFILE" --tag "$PREBUILT_IMAGE_TAG" prebuilt-context`);
    const hash = createHash('sha256').update(dockerfile).update(env['PREBUILT_IMAGE_TAG'] ?? '');
    let step = 0;
    const instructions = dockerfile.toString('utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
    for (const line of instructions) {
      step++;
      const [instruction, ...rest] = line.split(/\s+/);
      say(`Step ${step}/${instructions.length} : ${line}`);
      if (/^COPY$/i.test(instruction!)) {
        const content = files.get(rest[0]!);
        if (!content) {
          say(`COPY failed: file not found in build context or excluded by .dockerignore: stat ${rest[0]}: file does not exist`);
          return fail('BUILD', 'Error while executing command: docker build --platform "$PREBUILT_PLATFORM" --file "prebuilt-context/$PREBUILT_DOCKERFILE" --tag "$PREBUILT_IMAGE_TAG" prebuilt-context. Reason: exit status 1');
        }
        hash.update(content);
      }
      if (/^RUN$/i.test(instruction!) && rest[0] === 'sleep') {
        say(` ---> Running in ${randomBytes(6).toString('hex')}`);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, Number(rest[1]) * 1000);
          build.abort.signal.addEventListener('abort', () => (clearTimeout(timer), resolve()), { once: true });
        });
        if (build.stopped) return;
      }
      if (/^RUN$/i.test(instruction!) && rest[0] === 'exit') {
        say(`The command '/bin/sh -c exit ${rest[1]}' returned a non-zero code: ${rest[1]}`);
        return fail('BUILD', `Error while executing command: docker build .... Reason: exit status ${rest[1]}`);
      }
    }
    let digest = `sha256:${hash.digest('hex')}`;
    const tag = env['PREBUILT_IMAGE_TAG'] ?? '';
    if (options.push) {
      const password = env['PREBUILT_REGISTRY_PASSWORD'];
      const login = password === undefined ? undefined : { username: env['PREBUILT_REGISTRY_USERNAME'] ?? '', password };
      try {
        digest = await options.push(tag, login);
      } catch (error) {
        say(`denied: ${String(error)}`);
        return fail('BUILD', 'Error while executing command: set -o pipefail && docker push "$PREBUILT_IMAGE_TAG" | tee prebuilt-push.log. Reason: exit status 1');
      }
    }
    say('[Container] Running command set -o pipefail && docker push "$PREBUILT_IMAGE_TAG" | tee prebuilt-push.log');
    say(`${tag.slice(tag.lastIndexOf(':') + 1)}: digest: ${digest} size: 1234`);
    say(`[Container] Running command PREBUILT_DIGEST=$(grep -oE 'digest: sha256:[a-f0-9]{64}' prebuilt-push.log | tail -n 1 | cut -d ' ' -f 2) && test -n "$PREBUILT_DIGEST" && echo "PREBUILT_DIGEST=$PREBUILT_DIGEST"`);
    say(`PREBUILT_DIGEST=${digest}`);
    say('[Container] Phase complete: BUILD State: SUCCEEDED');
    if (options.exportDigest !== false) build.exported.push({ name: 'PREBUILT_DIGEST', value: digest });
    build.phases.push({ phaseType: 'BUILD', phaseStatus: 'SUCCEEDED' });
    build.status = 'SUCCEEDED';
  }

  codebuildMock.on(StartBuildCommand).callsFake(async (input: StartBuildCommandInput) => {
    const id = `${input.projectName}:${randomBytes(8).toString('hex')}`;
    const build: FakeBuild = { id, input, status: 'IN_PROGRESS', lines: [], phases: [], exported: [], stopped: false, abort: new AbortController(), streamCreated: false };
    builds.set(id, build);
    void run(build).catch((error: unknown) => {
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
