import type { BaseImageIdentity, DeployImage, ImageLayout, ImagePhase } from '../contracts.js';
import type { CondaPlatform, LockedEnv } from '../env-model.js';
import type { DeployRun } from './deploy-run.js';
import { envPython } from './image-map.js';
import { service } from './service-failure.js';

/** What a job's events name: an image, or a multi-platform image index (platforms joined by `+`). */
interface JobTarget {
  envId: string;
  tag: string;
  steps: string[];
  platform: string;
}

/** A job of the deploy: reports its phases as `image` events and times itself. */
abstract class DeployJob {
  /** When the job started (its result's `elapsedMs` counts from here). */
  readonly started = Date.now();

  constructor(
    readonly run: DeployRun,
    private readonly target: JobTarget,
  ) {}

  get envId(): string {
    return this.target.envId;
  }
  get tag(): string {
    return this.target.tag;
  }
  get signal(): AbortSignal | undefined {
    return this.run.signal;
  }

  /** Reports a phase of this job as an `image` event. */
  phase(value: ImagePhase, detail?: string): void {
    const { envId, tag, steps, platform } = this.target;
    this.run.emit({ type: 'image', envId, tag, steps, phase: value, ...(detail ? { detail } : {}), platform });
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
  /** Its answer of {@link expectedLayout}: the check, a check again after the build lock, and the build's result share it. */
  #layout: Promise<ImageLayout | undefined> | undefined;

  constructor(
    readonly image: PlannedImage,
    run: DeployRun,
  ) {
    super(run, { envId: image.envId, tag: image.tag, steps: image.steps, platform: image.lock.platform });
  }

  /** The layout the build service gives this env's image (`DeployOptions.imageLayout`), when it records one: asked once per image. */
  expectedLayout(): Promise<ImageLayout | undefined> {
    const { imageLayout } = this.run.options;
    return (this.#layout ??= imageLayout ? service(() => imageLayout(this.envId)) : Promise.resolve(undefined));
  }

  /** Its result with this status. */
  done(status: DeployImage['status'], extra: { digest?: string; reason?: string; layout?: string } = {}): DeployImage {
    return imageResult(this.image, status, { ...extra, elapsedMs: Date.now() - this.started });
  }

  /** Reports it failed and gives its failed result. */
  fail(reason: string, logTail: string[] = [], hint?: string): DeployImage {
    this.phase('failed', reason);
    return imageResult(this.image, 'failed', { reason, ...(hint ? { hint } : {}), logTail, elapsedMs: Date.now() - this.started });
  }
}

/** The result of a platform image (a failed one has a reason, maybe a hint, and its log tail). */
export function imageResult(
  image: PlannedImage,
  status: DeployImage['status'],
  extra: { digest?: string; reason?: string; hint?: string; logTail?: string[]; layout?: string; elapsedMs: number },
): DeployImage {
  return {
    envId: image.envId,
    tag: image.tag,
    pullTag: image.pullTag,
    platform: image.lock.platform,
    base: image.base,
    steps: image.steps,
    status,
    ...(extra.digest ? { digest: extra.digest } : {}),
    python: envPython(image.envId),
    packages: image.lock.packages.length,
    ...(extra.reason !== undefined ? { reason: extra.reason } : {}),
    ...(extra.hint ? { hint: extra.hint } : {}),
    ...(extra.logTail ? { logTail: extra.logTail } : {}),
    ...(extra.layout ? { layout: extra.layout } : {}),
    elapsedMs: extra.elapsedMs,
  };
}

/** One image index being checked or pushed, over its platforms' results. */
export class IndexJob extends DeployJob {
  constructor(
    readonly index: PlannedIndex,
    /** Its platforms' images, in the index's platform order. */
    readonly members: DeployImage[],
    run: DeployRun,
  ) {
    super(run, { envId: index.id, tag: index.tag, steps: index.steps, platform: index.members.map((m) => m.platform).join('+') });
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
