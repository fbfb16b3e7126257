import { createLogger, errorMessage } from '@prebuilt/core/backend';
import { firstLine, runDocker } from './buildx-cli.js';

const debug = createLogger('buildx');

/** How long the docker commands before the build, and those after it, may take. */
const CLEANUP_MS = 60_000;

export interface DaemonTagTarget {
  docker: string;
  /** The builder the build runs on (`--builder`); undefined for the current one. */
  builder: string | undefined;
  tag: string;
  env: Record<string, string | undefined>;
}

/** What is done with the build's tag in the Docker daemon once the build has ended. */
export interface DaemonTagCleanup {
  /**
   * Removes the tag when it should go: after a pushed build always; after a failed one only when
   * it now names an image it did not name before the build (so never the user's own). Resolves to
   * why that could not be done (for a note), or undefined; never rejects.
   */
  afterBuild(pushed: boolean): Promise<string | undefined>;
}

/**
 * With the `docker` driver, `docker buildx build --push` also stores the image in the Docker
 * daemon under its tag, and keeps it there when the push fails. Before the build this asks buildx
 * for the builder's driver and, with the `docker` driver, records the image ID the tag names in
 * that daemon, so that afterwards the tag can be removed (`docker image rm`, so an image with other
 * tags keeps them). Other drivers leave nothing in the daemon: nothing is done. Never rejects.
 */
export async function prepareDaemonTagCleanup(target: DaemonTagTarget, signal: AbortSignal | undefined): Promise<DaemonTagCleanup> {
  const timeout = AbortSignal.timeout(CLEANUP_MS);
  const before = signal ? AbortSignal.any([signal, timeout]) : timeout;
  try {
    const inspected = await runDocker(target.docker, ['buildx', 'inspect', ...(target.builder ? [target.builder] : [])], target.env, before);
    if (inspected.exit.code !== 0) return unknownDriver(`'docker buildx inspect' failed: ${firstLine(inspected.output)}`);
    const driver = /^Driver:\s*(\S+)/m.exec(inspected.output)?.[1];
    if (driver !== 'docker') {
      debug('builder driver %s: no image left in the Docker daemon', driver ?? '(unknown)');
      return { afterBuild: () => Promise.resolve(undefined) };
    }
    // A docker-driver builder's node endpoint is the docker context whose daemon builds the image.
    const endpoint = /^Endpoint:\s*(\S+)/m.exec(inspected.output)?.[1];
    const context = endpoint ? ['--context', endpoint] : [];
    const imageBefore = await imageId(target, context, before).catch((error: unknown) => {
      debug('the image ID of %s before the build is unknown: %s', target.tag, errorMessage(error));
      return undefined;
    });
    return new DaemonTag(target, context, imageBefore);
  } catch (error) {
    return unknownDriver(errorMessage(error));
  }
}

/** The builder's driver is unknown: a pushed build says so in a note, a failed one removes nothing. */
function unknownDriver(why: string): DaemonTagCleanup {
  debug('the builder driver is unknown: %s', why);
  return { afterBuild: (pushed) => Promise.resolve(pushed ? why : undefined) };
}

/** The docker CLI against the daemon that builds the image (its context, when buildx names one). */
function docker(target: DaemonTagTarget, context: string[], args: string[], signal: AbortSignal) {
  return runDocker(target.docker, [...context, ...args], target.env, signal);
}

/** The image ID the tag names in the daemon; null when there is no such image. */
async function imageId(target: DaemonTagTarget, context: string[], signal: AbortSignal): Promise<string | null> {
  const { exit, output } = await docker(target, context, ['image', 'inspect', '--format', '{{.Id}}', target.tag], signal);
  if (exit.code === 0) return output.trim();
  if (/no such image/i.test(output)) return null;
  throw new Error(`'docker image inspect' failed: ${firstLine(output)}`);
}

class DaemonTag implements DaemonTagCleanup {
  /** `imageBefore`: the image ID the tag named before the build; null for none, undefined when unknown. */
  constructor(
    private readonly target: DaemonTagTarget,
    private readonly context: string[],
    private readonly imageBefore: string | null | undefined,
  ) {}

  async afterBuild(pushed: boolean): Promise<string | undefined> {
    const signal = AbortSignal.timeout(CLEANUP_MS);
    try {
      if (!pushed) {
        // Unknown before: the tag may name the user's own image, which is never removed.
        if (this.imageBefore === undefined) return undefined;
        const imageAfter = await imageId(this.target, this.context, signal);
        if (imageAfter === null || imageAfter === this.imageBefore) {
          debug('the failed build left no new image under %s', this.target.tag);
          return undefined;
        }
      }
      return await this.remove(signal);
    } catch (error) {
      return errorMessage(error);
    }
  }

  private async remove(signal: AbortSignal): Promise<string | undefined> {
    const { exit, output } = await docker(this.target, this.context, ['image', 'rm', this.target.tag], signal);
    if (exit.code === 0 || /no such image/i.test(output)) {
      debug('removed the tag %s from the Docker daemon', this.target.tag);
      return undefined;
    }
    return firstLine(output);
  }
}
