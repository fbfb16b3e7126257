import { createLogger, errorMessage } from '@prebuilt/core/backend';
import { firstLine, runDocker } from './buildx-cli.js';

const debug = createLogger('buildx');

/** How long asking buildx about the builder and removing the tag may take together. */
const CLEANUP_MS = 60_000;

export interface DaemonTagRemoval {
  docker: string;
  /** The builder the build ran on (`--builder`); undefined for the current one. */
  builder: string | undefined;
  tag: string;
  env: Record<string, string | undefined>;
}

/**
 * With the `docker` driver, `docker buildx build --push` also stores the image in the Docker
 * daemon under its tag; this removes that tag (`docker image rm`, so an image with other tags keeps
 * them). Other drivers leave nothing in the daemon: nothing is done. Resolves to why the tag could
 * not be removed (for a note), or undefined; never rejects, so the pushed build stays a success.
 */
export async function removeDaemonTag(removal: DaemonTagRemoval): Promise<string | undefined> {
  const signal = AbortSignal.timeout(CLEANUP_MS);
  try {
    const inspected = await runDocker(removal.docker, ['buildx', 'inspect', ...(removal.builder ? [removal.builder] : [])], removal.env, signal);
    if (inspected.exit.code !== 0) return `'docker buildx inspect' failed: ${firstLine(inspected.output)}`;
    const driver = /^Driver:\s*(\S+)/m.exec(inspected.output)?.[1];
    if (driver !== 'docker') {
      debug('builder driver %s: no image left in the Docker daemon', driver ?? '(unknown)');
      return undefined;
    }
    // A docker-driver builder's node endpoint is the docker context whose daemon built the image.
    const context = /^Endpoint:\s*(\S+)/m.exec(inspected.output)?.[1];
    const removed = await runDocker(removal.docker, [...(context ? ['--context', context] : []), 'image', 'rm', removal.tag], removal.env, signal);
    if (removed.exit.code === 0 || /no such image/i.test(removed.output)) {
      debug('removed the tag %s from the Docker daemon', removal.tag);
      return undefined;
    }
    return firstLine(removed.output);
  } catch (error) {
    return errorMessage(error);
  }
}
