import { readFile } from 'node:fs/promises';
import {
  cancelledError,
  createLogger,
  errorMessage,
  isImageDigest,
  type BuildLog,
  type BuildRequest,
  type BuildResult,
} from '@prebuilt/core/backend';
import type { BuildxOutcome } from './buildx-process.js';
import { BUILDX_ENV, type BuildxSettings } from './buildx-settings.js';

const debug = createLogger('buildx');

/** The arguments of `docker buildx build --push` for a request (the Dockerfile comes on stdin). */
export function buildxArgs(request: BuildRequest, platforms: string[], settings: BuildxSettings, metadataFile: string): string[] {
  return [
    'buildx',
    'build',
    '--push',
    '--tag',
    request.imageTag,
    '--platform',
    platforms.join(','),
    // No attestation manifests: with them buildx pushes an index even for one platform, which an
    // image index over the platforms (METAFLOW_PREBUILT_PLATFORM with two) cannot name.
    '--provenance=false',
    ...(settings.builder ? ['--builder', settings.builder] : []),
    '--metadata-file',
    metadataFile,
    ...(settings.network === 'default' ? [] : ['--network', settings.network]),
    '--progress',
    'plain',
    ...settings.extraArgs,
    '-f',
    '-',
    request.contextDir,
  ];
}

/** The build's result from how the command ended and the digest in its metadata file. */
export async function buildxResult(
  outcome: BuildxOutcome,
  request: BuildRequest,
  log: BuildLog,
  settings: BuildxSettings,
  metadataFile: string,
): Promise<BuildResult> {
  log.flush();
  if (outcome.kind === 'cancelled') throw cancelledError(request.signal!, `The buildx build of ${request.imageTag}`);
  if (outcome.kind === 'timeout') {
    return log.failure(`The buildx build of ${request.imageTag} was stopped after the timeout of ${settings.timeoutSeconds} s (${BUILDX_ENV.timeout}).`);
  }
  if (outcome.kind === 'spawn-error') {
    return log.failure(`docker buildx build could not be run: ${errorMessage(outcome.error)}`);
  }
  if (outcome.exit.code !== 0) {
    const error = lastErrorLine(log.tail);
    const how = outcome.exit.signal ? `was killed by ${outcome.exit.signal}` : `exited with code ${outcome.exit.code}`;
    return log.failure(`The buildx build of ${request.imageTag} failed${error ? `: ${error}` : ` (docker buildx build ${how})`}`);
  }
  const digest = await readDigest(metadataFile);
  if (digest === undefined) {
    return log.failure(`docker buildx build finished but its metadata file has no containerimage.digest for ${request.imageTag}.`);
  }
  debug('pushed %s@%s', request.imageTag, digest);
  return { ok: true, digest };
}

/** The last line that states an error, as buildx prints it (`ERROR: …`, `error: …`). */
function lastErrorLine(lines: string[]): string | undefined {
  for (let i = lines.length - 1; i >= 0; i--) {
    const line = lines[i]!;
    const match = /^(?:#\d+\s+)?(?:ERROR|error)(?:\s*\[[^\]]*\])?:\s*(.+)$/.exec(line);
    if (match) return match[1]!.trim();
  }
  return undefined;
}

async function readDigest(metadataFile: string): Promise<string | undefined> {
  try {
    const metadata: unknown = JSON.parse(await readFile(metadataFile, 'utf8'));
    const digest = (metadata as Record<string, unknown>)['containerimage.digest'];
    return typeof digest === 'string' && isImageDigest(digest) ? digest : undefined;
  } catch (error) {
    debug('metadata file %s: %s', metadataFile, errorMessage(error));
    return undefined;
  }
}
