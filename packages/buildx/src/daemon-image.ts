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
   * it now names an image it did not name before the build (so never the user's own), and then
   * the tag names again the image it named before, if any. Resolves to a note saying what could
   * not be done and how to do it by hand, or undefined; never rejects.
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
    if (inspected.exit.code !== 0) return unknownDriver(target.tag, `'docker buildx inspect' failed: ${firstLine(inspected.output)}`);
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
    return unknownDriver(target.tag, errorMessage(error));
  }
}

/** The builder's driver is unknown: a pushed build says so in a note, a failed one removes nothing. */
function unknownDriver(tag: string, why: string): DaemonTagCleanup {
  debug('the builder driver is unknown: %s', why);
  return { afterBuild: (pushed) => Promise.resolve(pushed ? removeFailedNote(tag, true, why, null) : undefined) };
}

/** The note for a tag that could not be removed; `restore`: the image ID the tag should name again. */
function removeFailedNote(tag: string, pushed: boolean, why: string, restore: string | null): string {
  const what = pushed ? `The image ${tag} was pushed but stays` : `The build of ${tag} did not push, but left its image`;
  const then = restore === null ? '' : `, then give the tag back to the image it named before with \`docker image tag ${restore} ${tag}\``;
  return `${what} in the Docker daemon: removing its tag failed: ${why}. Remove it with \`docker image rm ${tag}\`${then}.`;
}

/** The docker CLI against the daemon that builds the image (its context, when buildx names one). */
function docker(target: DaemonTagTarget, context: string[], args: string[], signal: AbortSignal) {
  return runDocker(target.docker, [...context, ...args], target.env, signal);
}

/** An image ID as Docker prints it (`docker image tag <ID> <tag>` takes it back). */
const IMAGE_ID = /^sha256:[0-9a-f]{64}$/;

/**
 * The image ID the tag names in the daemon (the last line of the output: a warning of the CLI may
 * come first); null when there is no such image. Anything else the daemon answers is an error, never
 * an argument of a later docker command (an "ID" such as `--help` would be read as an option).
 */
async function imageId(target: DaemonTagTarget, context: string[], signal: AbortSignal): Promise<string | null> {
  const { exit, output } = await docker(target, context, ['image', 'inspect', '--format', '{{.Id}}', target.tag], signal);
  if (exit.code === 0) {
    const id = output.trim().split('\n').at(-1)!.trim();
    if (IMAGE_ID.test(id)) return id;
    throw new Error(`'docker image inspect' printed no image ID: ${firstLine(id)}`);
  }
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
    // After a failed build the tag goes back to the image it named before; a pushed image is in the registry.
    const restore = !pushed && typeof this.imageBefore === 'string' ? this.imageBefore : null;
    try {
      if (!pushed && !(await this.movedByFailedBuild(signal))) return undefined;
      const why = await this.remove(signal);
      if (why !== undefined) return removeFailedNote(this.target.tag, pushed, why, restore);
    } catch (error) {
      return removeFailedNote(this.target.tag, pushed, errorMessage(error), restore);
    }
    return restore === null ? undefined : this.retag(restore, signal);
  }

  /** Whether the tag now names an image it did not name before the failed build (unknown before: no). */
  private async movedByFailedBuild(signal: AbortSignal): Promise<boolean> {
    // Unknown before: the tag may name the user's own image, which is never removed.
    if (this.imageBefore === undefined) return false;
    const imageAfter = await imageId(this.target, this.context, signal);
    if (imageAfter === null || imageAfter === this.imageBefore) {
      debug('the failed build left no new image under %s', this.target.tag);
      return false;
    }
    return true;
  }

  /** Removes the tag (and the image, when it has no other); resolves to why it could not, or undefined. */
  private async remove(signal: AbortSignal): Promise<string | undefined> {
    const { exit, output } = await docker(this.target, this.context, ['image', 'rm', this.target.tag], signal);
    if (exit.code === 0 || /no such image/i.test(output)) {
      debug('removed the tag %s from the Docker daemon', this.target.tag);
      return undefined;
    }
    return firstLine(output);
  }

  /** Tags the image the tag named before the build again (by ID); resolves to a note when that fails. */
  private async retag(id: string, signal: AbortSignal): Promise<string | undefined> {
    const { tag } = this.target;
    const why = await docker(this.target, this.context, ['image', 'tag', id, tag], signal).then(
      ({ exit, output }) => (exit.code === 0 ? undefined : firstLine(output)),
      (error: unknown) => errorMessage(error),
    );
    if (why === undefined) {
      debug('the tag %s names %s again, as before the build', tag, id);
      return undefined;
    }
    const removed = `The build of ${tag} did not push; its tag was removed from the image it left in the Docker daemon, but`;
    if (/no such image/i.test(why)) {
      // The containerd image store drops the image whose only tag a build takes (Docker Engine 26.1, 28.5).
      return `${removed} the image it named before (${id}) is no longer in the daemon: a build that takes an image's only tag drops it with the containerd image store. Pull or build that image again if you need it.`;
    }
    return `${removed} naming the image it named before (${id}) with it again failed: ${why}. Tag it with \`docker image tag ${id} ${tag}\`.`;
  }
}
