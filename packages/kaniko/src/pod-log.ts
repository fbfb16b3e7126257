import { Writable } from 'node:stream';
import { createLogger, errorMessage, type BuildLog } from '@prebuilt/core/backend';
import { CONTAINER_NAME } from './kaniko-manifests.js';
import type { KubeCluster } from './kubernetes-api.js';

const debug = createLogger('kaniko');

/** How often a log follow that ends early is opened again. */
const MAX_LOG_REOPENS = 100;

/** The wait a log follow belongs to. */
export interface LogOwner {
  /** The wait is over: a follow that opens now is closed at once, one that ends is not reopened. */
  readonly settled: boolean;
  /** The container has terminated: a follow that ends is not reopened. */
  readonly containerTerminated: boolean;
  /** Keeps an open follow's controller, to abort it when the wait ends. */
  adopt(controller: AbortController): void;
}

/** An RFC 3339 timestamp as [whole seconds, nanoseconds], comparable whatever its fraction's length. */
type StampKey = [number, number];

function stampKey(text: string): StampKey {
  const m = /^(.{19})(?:\.(\d+))?Z$/.exec(text);
  const seconds = Math.floor(Date.parse(`${m?.[1] ?? text}Z`) / 1000);
  return [seconds, Number((m?.[2] ?? '').padEnd(9, '0').slice(0, 9))];
}

function compareStamps(a: StampKey, b: StampKey): number {
  return a[0] - b[0] || a[1] - b[1];
}

/**
 * Follows the executor's log into the build log; resolves when the log has ended. A follow stream
 * can end before the container does (the kubelet closes it, e.g. on log rotation); it is then
 * opened again from the last line's timestamp, and lines already seen are skipped.
 */
export function followPodLog(cluster: KubeCluster, pod: string, log: BuildLog, owner: LogOwner): Promise<void> {
  return new Promise((ended) => new PodLogFollow(cluster, pod, log, owner, ended).open());
}

class PodLogFollow {
  #lastStamp: StampKey | undefined;
  #lastStampText: string | undefined;
  #reopened = 0;

  constructor(
    private readonly cluster: KubeCluster,
    private readonly pod: string,
    private readonly log: BuildLog,
    private readonly owner: LogOwner,
    private readonly end: () => void,
  ) {}

  open(): void {
    const { k8s, kc, namespace } = this.cluster;
    new k8s.Log(kc)
      .log(namespace, this.pod, CONTAINER_NAME, this.#sink(), {
        follow: true,
        timestamps: true,
        ...(this.#lastStampText ? { sinceTime: `${this.#lastStampText.slice(0, 19)}Z` } : {}),
      })
      .then((controller) => this.owner.adopt(controller))
      .catch((error: unknown) => {
        debug('log of pod %s: %s', this.pod, errorMessage(error));
        this.end();
      });
  }

  #sink(): Writable {
    let pending = '';
    let fresh = 0;
    const take = (raw: string) => {
      if (this.#take(raw)) fresh++;
    };
    return new Writable({
      write(chunk: Buffer, _encoding, callback) {
        const parts = (pending + chunk.toString('utf8')).split(/\r?\n/);
        pending = parts.pop() ?? '';
        for (const part of parts) take(part);
        callback();
      },
      final: (callback) => {
        if (pending !== '') take(pending);
        callback();
        this.#ended(fresh);
      },
    });
  }

  /** One raw line (`<timestamp> <text>`) to the build log, unless already seen; true for a new timestamped line. */
  #take(raw: string): boolean {
    const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z) ?(.*)$/.exec(raw);
    if (!m) {
      this.log.line(raw);
      return false;
    }
    const key = stampKey(m[1]!);
    if (this.#lastStamp && compareStamps(key, this.#lastStamp) <= 0) return false;
    this.#lastStamp = key;
    this.#lastStampText = m[1]!;
    this.log.line(m[2]!);
    return true;
  }

  #ended(fresh: number): void {
    if (this.owner.settled || this.owner.containerTerminated || this.#reopened >= MAX_LOG_REOPENS) return this.end();
    this.#reopened++;
    debug('log of pod %s ended early; following it again', this.pod);
    setTimeout(() => this.open(), fresh > 0 ? 0 : 1000);
  }
}
