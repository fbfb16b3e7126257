import type { BaseImageIdentity, DeployImage, ImagePhase } from '../contracts.js';
import type { CondaPlatform, LockedEnv } from '../env-model.js';
import type { DeployRun } from './deploy-run.js';
import { envPython } from './image-map.js';

/** What a job reports its phases as: an image, or a multi-platform image index. */
abstract class DeployJob {
  /** When the job started (its result's `elapsedMs` counts from here). */
  readonly started = Date.now();

  constructor(readonly run: DeployRun) {}

  abstract readonly envId: string;
  abstract readonly tag: string;
  abstract readonly steps: string[];
  /** The `platform` of its events. */
  protected abstract readonly platformLabel: string;

  get signal(): AbortSignal | undefined {
    return this.run.signal;
  }

  /** Reports a phase of this job as an `image` event. */
  phase(value: ImagePhase, detail?: string): void {
    this.run.emit({ type: 'image', envId: this.envId, tag: this.tag, steps: this.steps, phase: value, ...(detail ? { detail } : {}), platform: this.platformLabel });
  }
}

/** One platform image of the plan: the env it holds and the steps that pull it. */
export interface PlannedImage {
  envId: string;
  tag: string;
  pullTag: string;
  lock: LockedEnv;
  base: BaseImageIdentity;
  steps: string[];
}

/** A multi-platform image index over one env's per-platform images. */
export interface PlannedIndex {
  id: string;
  tag: string;
  pullTag: string;
  members: { platform: CondaPlatform; envId: string }[];
  steps: string[];
}

/** One image being checked, built, pushed and verified: the per-image job of the build pool. */
export class ImageJob extends DeployJob {
  protected readonly platformLabel: string;

  constructor(
    readonly image: PlannedImage,
    run: DeployRun,
  ) {
    super(run);
    this.platformLabel = image.lock.platform;
  }

  get envId(): string {
    return this.image.envId;
  }
  get tag(): string {
    return this.image.tag;
  }
  get steps(): string[] {
    return this.image.steps;
  }

  /** Its result with this status. */
  done(status: DeployImage['status'], digest?: string): DeployImage {
    const image = this.image;
    return {
      envId: image.envId,
      tag: image.tag,
      pullTag: image.pullTag,
      platform: image.lock.platform,
      base: image.base,
      steps: image.steps,
      status,
      ...(digest ? { digest } : {}),
      python: envPython(image.envId),
      packages: image.lock.packages.length,
      elapsedMs: Date.now() - this.started,
    };
  }

  /** Reports it failed and gives its failed result. */
  fail(reason: string, logTail: string[] = [], hint?: string): DeployImage {
    this.phase('failed', reason);
    return failedImage(this.image, { reason, logTail, elapsedMs: Date.now() - this.started, ...(hint ? { hint } : {}) });
  }
}

/** The result of an image that failed. */
export function failedImage(image: PlannedImage, failure: { reason: string; logTail: string[]; elapsedMs: number; hint?: string }): DeployImage {
  return {
    envId: image.envId,
    tag: image.tag,
    pullTag: image.pullTag,
    platform: image.lock.platform,
    base: image.base,
    steps: image.steps,
    status: 'failed',
    python: envPython(image.envId),
    packages: image.lock.packages.length,
    reason: failure.reason,
    ...(failure.hint ? { hint: failure.hint } : {}),
    logTail: failure.logTail,
    elapsedMs: failure.elapsedMs,
  };
}

/** One image index being checked or pushed, over its platforms' results. */
export class IndexJob extends DeployJob {
  protected readonly platformLabel: string;

  constructor(
    readonly index: PlannedIndex,
    /** Its platforms' images, in the index's platform order. */
    readonly members: DeployImage[],
    run: DeployRun,
  ) {
    super(run);
    this.platformLabel = index.members.map((m) => m.platform).join('+');
  }

  get envId(): string {
    return this.index.id;
  }
  get tag(): string {
    return this.index.tag;
  }
  get steps(): string[] {
    return this.index.steps;
  }

  /** Its result with this status. */
  done(status: DeployImage['status'], extra: { digest?: string; reason?: string; hint?: string } = {}): DeployImage {
    const first = this.members[0] as DeployImage;
    return {
      envId: this.index.id,
      tag: this.index.tag,
      pullTag: this.index.pullTag,
      platform: first.platform,
      platforms: this.members.map((m) => ({ platform: m.platform, envId: m.envId, image: m.pullTag, ...(m.digest ? { digest: m.digest } : {}) })),
      base: first.base,
      steps: this.index.steps,
      status,
      ...(extra.digest ? { digest: extra.digest } : {}),
      python: envPython(this.index.id),
      packages: Math.max(...this.members.map((m) => m.packages)),
      ...(extra.reason ? { reason: extra.reason, logTail: [] } : {}),
      ...(extra.hint ? { hint: extra.hint } : {}),
      elapsedMs: Date.now() - this.started,
    };
  }

  /** Reports it failed and gives its failed result. */
  fail(reason: string, hint?: string): DeployImage {
    this.phase('failed', reason);
    return this.done('failed', { reason, ...(hint ? { hint } : {}) });
  }
}
