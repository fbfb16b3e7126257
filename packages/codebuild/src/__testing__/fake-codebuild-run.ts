/**
 * One build of the FAKE CodeBuild (not AWS): fetches the source zip from S3, resolves the
 * variables (stored secrets from the fake Parameter Store / Secrets Manager), "builds" the
 * Dockerfile (`COPY <src>` fails when `<src>` is missing, `RUN sleep <n>` runs until StopBuild,
 * `RUN exit <n>` fails) and "pushes", writing the log lines CodeBuild would.
 */
import { createHash, randomBytes, type Hash } from 'node:crypto';
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { unzipSync } from 'fflate';
import { untarGz } from '@prebuilt/fixtures';
import type { FakeBuild, FakeCodeBuildOptions } from './fake-codebuild.js';

const BUILD_COMMAND = 'docker build --platform "$PREBUILT_PLATFORM" --file "prebuilt-context/$PREBUILT_DOCKERFILE" --tag "$PREBUILT_IMAGE_TAG" prebuilt-context';
const PUSH_COMMAND = 'set -o pipefail && docker push "$PREBUILT_IMAGE_TAG" | tee prebuilt-push.log';

function say(build: FakeBuild, line: string): void {
  build.lines.push(line);
}

function fail(build: FakeBuild, phase: string, message: string): void {
  build.phases.push({ phaseType: phase, phaseStatus: 'FAILED', contexts: [{ statusCode: 'COMMAND_EXECUTION_ERROR', message }] });
  say(build, `[Container] ${message}`);
  build.status = 'FAILED';
}

export async function runFakeBuild(build: FakeBuild, s3: S3Client, options: FakeCodeBuildOptions): Promise<void> {
  await new Promise((r) => setTimeout(r, 30));
  build.streamCreated = true;
  say(build, `[Container] Entering phase DOWNLOAD_SOURCE`);
  const files = await fetchSource(build, s3);
  if (!files) return;
  const env = resolveVariables(build, options);
  if (!env) return;
  say(build, '[Container] Entering phase BUILD');
  const dockerfile = files.get(env['PREBUILT_DOCKERFILE'] ?? '');
  if (!dockerfile) return fail(build, 'BUILD', 'Error while executing command: docker build. Reason: exit status 1 (Dockerfile not found)');
  say(build, `[Container] Running command ${BUILD_COMMAND}`);
  const hash = createHash('sha256').update(dockerfile).update(env['PREBUILT_IMAGE_TAG'] ?? '');
  if (!(await runDockerfile(build, dockerfile.toString('utf8'), files, hash))) return;
  await push(build, env, `sha256:${hash.digest('hex')}`, options);
}

/** The context files of the source zip's tarball, or undefined when the source cannot be read (the build failed). */
async function fetchSource(build: FakeBuild, s3: S3Client): Promise<Map<string, Buffer> | undefined> {
  const location = build.input.sourceLocationOverride ?? '';
  const slash = location.indexOf('/');
  try {
    const object = await s3.send(new GetObjectCommand({ Bucket: location.slice(0, slash), Key: location.slice(slash + 1) }));
    const zip = unzipSync(await object.Body!.transformToByteArray());
    return await untarGz(zip['prebuilt-context.tar.gz']!);
  } catch (error) {
    fail(build, 'DOWNLOAD_SOURCE', `CLIENT_ERROR: no matching artifact paths found for ${location}: ${String(error)}`);
    return undefined;
  }
}

/** The build's environment, stored secrets resolved; undefined when a reference is unknown (the build failed). */
function resolveVariables(build: FakeBuild, options: FakeCodeBuildOptions): Record<string, string | undefined> | undefined {
  const env: Record<string, string | undefined> = {};
  for (const variable of build.input.environmentVariablesOverride ?? []) {
    if (variable.type === 'PARAMETER_STORE' || variable.type === 'SECRETS_MANAGER') {
      const value = options.storedSecrets?.[variable.value ?? ''];
      if (value === undefined) {
        fail(build, 'DOWNLOAD_SOURCE', `CLIENT_ERROR: ${variable.type} reference ${variable.value} not found`);
        return undefined;
      }
      env[variable.name!] = value;
    } else env[variable.name!] = variable.value;
  }
  return env;
}

/** "Runs" the Dockerfile's instructions; false when the build failed or was stopped. */
async function runDockerfile(build: FakeBuild, dockerfile: string, files: Map<string, Buffer>, hash: Hash): Promise<boolean> {
  const instructions = dockerfile.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  let step = 0;
  for (const line of instructions) {
    step++;
    const [instruction, ...rest] = line.split(/\s+/);
    say(build, `Step ${step}/${instructions.length} : ${line}`);
    if (/^COPY$/i.test(instruction!)) {
      const content = files.get(rest[0]!);
      if (!content) {
        say(build, `COPY failed: file not found in build context or excluded by .dockerignore: stat ${rest[0]}: file does not exist`);
        fail(build, 'BUILD', `Error while executing command: ${BUILD_COMMAND}. Reason: exit status 1`);
        return false;
      }
      hash.update(content);
    }
    if (/^RUN$/i.test(instruction!) && rest[0] === 'sleep') {
      say(build, ` ---> Running in ${randomBytes(6).toString('hex')}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Number(rest[1]) * 1000);
        build.abort.signal.addEventListener('abort', () => (clearTimeout(timer), resolve()), { once: true });
      });
      if (build.stopped) return false;
    }
    if (/^RUN$/i.test(instruction!) && rest[0] === 'exit') {
      say(build, `The command '/bin/sh -c exit ${rest[1]}' returned a non-zero code: ${rest[1]}`);
      fail(build, 'BUILD', `Error while executing command: docker build .... Reason: exit status ${rest[1]}`);
      return false;
    }
  }
  return true;
}

/** "Pushes" (for real through `options.push` when given) and reports the digest as the buildspec does. */
async function push(build: FakeBuild, env: Record<string, string | undefined>, hashDigest: string, options: FakeCodeBuildOptions): Promise<void> {
  let digest = hashDigest;
  const tag = env['PREBUILT_IMAGE_TAG'] ?? '';
  if (options.push) {
    const password = env['PREBUILT_REGISTRY_PASSWORD'];
    const login = password === undefined ? undefined : { username: env['PREBUILT_REGISTRY_USERNAME'] ?? '', password };
    try {
      digest = await options.push(tag, login);
    } catch (error) {
      say(build, `denied: ${String(error)}`);
      return fail(build, 'BUILD', `Error while executing command: ${PUSH_COMMAND}. Reason: exit status 1`);
    }
  }
  say(build, `[Container] Running command ${PUSH_COMMAND}`);
  say(build, `${tag.slice(tag.lastIndexOf(':') + 1)}: digest: ${digest} size: 1234`);
  say(build, `[Container] Running command PREBUILT_DIGEST=$(grep -oE 'digest: sha256:[a-f0-9]{64}' prebuilt-push.log | tail -n 1 | cut -d ' ' -f 2) && test -n "$PREBUILT_DIGEST" && echo "PREBUILT_DIGEST=$PREBUILT_DIGEST"`);
  say(build, `PREBUILT_DIGEST=${digest}`);
  say(build, '[Container] Phase complete: BUILD State: SUCCEEDED');
  if (options.exportDigest !== false) build.exported.push({ name: 'PREBUILT_DIGEST', value: digest });
  build.phases.push({ phaseType: 'BUILD', phaseStatus: 'SUCCEEDED' });
  build.status = 'SUCCEEDED';
}
