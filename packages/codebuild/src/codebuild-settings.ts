import type { CodeBuildClient } from '@aws-sdk/client-codebuild';
import type { CloudWatchLogsClient } from '@aws-sdk/client-cloudwatch-logs';
import type { S3Client } from '@aws-sdk/client-s3';
import { ConfigError, DEFAULT_LOG_TAIL_LINES, orOption, settingsReader, type BuildServiceOptions, type SettingsReader } from '@prebuilt/core/backend';

export interface CodeBuildBuildServiceOptions extends BuildServiceOptions {
  /** The CodeBuild project (it must allow privileged mode, for docker). Env `METAFLOW_PREBUILT_CODEBUILD_PROJECT`; required. */
  project?: string;
  /** Where build contexts go: `s3://bucket[/prefix]` (or `bucket[/prefix]`). Env `METAFLOW_PREBUILT_CODEBUILD_BUCKET`; required. */
  bucket?: string;
  /** AWS region of the project and bucket. Env `METAFLOW_PREBUILT_CODEBUILD_REGION`; default: the SDK's (AWS_REGION, profile). */
  region?: string;
  /** Seconds a build may take. Env `METAFLOW_PREBUILT_CODEBUILD_TIMEOUT`; default 3600. */
  timeoutSeconds?: number;
  /** A Parameter Store parameter holding the registry password (non-ECR registries). Env `METAFLOW_PREBUILT_CODEBUILD_REGISTRY_PARAMETER`. */
  registryPasswordParameter?: string;
  /** A Secrets Manager reference (`secret-id[:json-key]`) to the registry password. Env `METAFLOW_PREBUILT_CODEBUILD_REGISTRY_SECRET`. */
  registryPasswordSecret?: string;
  /** The registry user for a stored password. Env `METAFLOW_PREBUILT_CODEBUILD_REGISTRY_USERNAME`; default: the push credentials' user. */
  registryUsername?: string;
  /** First and longest wait between BatchGetBuilds polls, ms. Default 2000 and 15000. */
  pollInitialMs?: number;
  pollMaxMs?: number;
  /** Ready-made clients (tests, custom endpoints). Default: new clients with `clientConfig` and the region. */
  clients?: { codebuild?: CodeBuildClient; logs?: CloudWatchLogsClient; s3?: S3Client };
  /** Options for every client this service creates. */
  clientConfig?: Record<string, unknown>;
}

export const CODEBUILD_ENV = {
  project: 'METAFLOW_PREBUILT_CODEBUILD_PROJECT',
  bucket: 'METAFLOW_PREBUILT_CODEBUILD_BUCKET',
  region: 'METAFLOW_PREBUILT_CODEBUILD_REGION',
  timeout: 'METAFLOW_PREBUILT_CODEBUILD_TIMEOUT',
  registryParameter: 'METAFLOW_PREBUILT_CODEBUILD_REGISTRY_PARAMETER',
  registrySecret: 'METAFLOW_PREBUILT_CODEBUILD_REGISTRY_SECRET',
  registryUsername: 'METAFLOW_PREBUILT_CODEBUILD_REGISTRY_USERNAME',
} as const;

/** Where the build's registry password is stored (a reference CodeBuild resolves, never the password). */
export interface PasswordReference {
  type: 'PARAMETER_STORE' | 'SECRETS_MANAGER';
  value: string;
  /** The env var that named it. */
  setting: string;
}

export interface CodeBuildSettings {
  project: string;
  bucket: string;
  prefix: string;
  region: string | undefined;
  timeoutSeconds: number;
  passwordRef: PasswordReference | undefined;
  registryUsername: string | undefined;
  pollInitialMs: number;
  pollMaxMs: number;
  logTailLines: number;
}

export function resolveCodeBuildSettings(options: CodeBuildBuildServiceOptions, env: Record<string, string | undefined>): CodeBuildSettings {
  const read = settingsReader(env);
  const project = read.required(options.project, CODEBUILD_ENV.project, 'project', 'The CodeBuild project');
  const bucketText = read.required(options.bucket, CODEBUILD_ENV.bucket, 'bucket', 'The S3 bucket for CodeBuild build contexts');
  const bucketMatch = /^(?:s3:\/\/)?([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(\/.*)?$/.exec(bucketText.trim());
  if (!bucketMatch) {
    throw new ConfigError(`The CodeBuild context bucket '${bucketText}' is not an S3 bucket name or s3:// location.`, {
      setting: CODEBUILD_ENV.bucket,
      hint: `Set ${CODEBUILD_ENV.bucket} (or the option 'bucket') to e.g. s3://my-bucket/prebuilt.`,
    });
  }
  const timeoutSeconds = read.seconds(options.timeoutSeconds, CODEBUILD_ENV.timeout, 'timeoutSeconds', 3600);
  return {
    project,
    bucket: bucketMatch[1]!,
    prefix: (bucketMatch[2] ?? '').replace(/^\/+|\/+$/g, ''),
    region: read.optional(options.region, CODEBUILD_ENV.region, 'region', 'AWS region'),
    timeoutSeconds,
    passwordRef: passwordReference(options, read),
    registryUsername: read.optional(options.registryUsername, CODEBUILD_ENV.registryUsername, 'registryUsername', 'registry user'),
    pollInitialMs: options.pollInitialMs ?? 2000,
    pollMaxMs: options.pollMaxMs ?? 15_000,
    logTailLines: options.logTailLines ?? DEFAULT_LOG_TAIL_LINES,
  };
}

function passwordReference(options: CodeBuildBuildServiceOptions, read: SettingsReader): PasswordReference | undefined {
  const parameter = read.optional(options.registryPasswordParameter, CODEBUILD_ENV.registryParameter, 'registryPasswordParameter', 'registry password parameter');
  const secret = read.optional(options.registryPasswordSecret, CODEBUILD_ENV.registrySecret, 'registryPasswordSecret', 'registry password secret');
  if (parameter && secret) {
    throw new ConfigError(`Both ${CODEBUILD_ENV.registryParameter} and ${CODEBUILD_ENV.registrySecret} are set; the registry password can come from one place only.`, {
      setting: CODEBUILD_ENV.registrySecret,
      hint: `Unset one of them${orOption('registryPasswordParameter', 'registryPasswordSecret')}.`,
    });
  }
  if (parameter) return { type: 'PARAMETER_STORE', value: parameter, setting: CODEBUILD_ENV.registryParameter };
  if (secret) return { type: 'SECRETS_MANAGER', value: secret, setting: CODEBUILD_ENV.registrySecret };
  return undefined;
}
