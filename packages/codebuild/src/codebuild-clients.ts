import type { CodeBuildClient } from '@aws-sdk/client-codebuild';
import type { CloudWatchLogsClient } from '@aws-sdk/client-cloudwatch-logs';
import type { S3Client } from '@aws-sdk/client-s3';
import { importLazily } from '@prebuilt/core/backend';
import type { CodeBuildBuildServiceOptions } from './codebuild-settings.js';

export type Sdk = {
  codebuild: typeof import('@aws-sdk/client-codebuild');
  logs: typeof import('@aws-sdk/client-cloudwatch-logs');
  s3: typeof import('@aws-sdk/client-s3');
};

/** The AWS SDK modules and the clients one service uses. */
export interface CodeBuildClients {
  sdk: Sdk;
  codebuild: CodeBuildClient;
  logs: CloudWatchLogsClient;
  s3: S3Client;
}

function load<T>(name: string, importer: () => Promise<T>): Promise<T> {
  return importLazily(importer, {
    message: `The CodeBuild build service cannot load ${name}`,
    hint: `Install it beside prebuilt: npm i @prebuilt/codebuild ${name}`,
  });
}

async function loadSdk(): Promise<Sdk> {
  const [codebuild, logs, s3] = await Promise.all([
    load('@aws-sdk/client-codebuild', () => import('@aws-sdk/client-codebuild')),
    load('@aws-sdk/client-cloudwatch-logs', () => import('@aws-sdk/client-cloudwatch-logs')),
    load('@aws-sdk/client-s3', () => import('@aws-sdk/client-s3')),
  ]);
  return { codebuild, logs, s3 };
}

/**
 * Loads the SDK (lazily) and makes the clients: the ones given in the options, else new ones with
 * `clientConfig` and the region. `created` collects those made here, for `close()` to destroy.
 */
export async function createClients(
  options: Pick<CodeBuildBuildServiceOptions, 'clients' | 'clientConfig'>,
  region: string | undefined,
  created: { destroy(): void }[],
): Promise<CodeBuildClients> {
  const sdk = await loadSdk();
  const config = { ...options.clientConfig, ...(region ? { region } : {}) };
  const make = <T extends { destroy(): void }>(given: T | undefined, factory: () => T): T => {
    if (given) return given;
    const client = factory();
    created.push(client);
    return client;
  };
  return {
    sdk,
    codebuild: make(options.clients?.codebuild, () => new sdk.codebuild.CodeBuildClient(config)),
    logs: make(options.clients?.logs, () => new sdk.logs.CloudWatchLogsClient(config)),
    s3: make(options.clients?.s3, () => new sdk.s3.S3Client(config)),
  };
}
