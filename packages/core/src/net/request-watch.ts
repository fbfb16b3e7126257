/**
 * The clock of one network request ({@link netFetch}): an idle timeout and an overall deadline that
 * abort it, and the waiting events of a read idle for a few seconds ({@link withNetworkWaits}).
 */
import { elapsedNow } from '../elapsed-now.js';
import { CancelledError, NetworkError } from '../errors.js';
import { NETWORK_ENV, type NetworkTimeouts } from './network-settings.js';
import { currentNetworkWaitListener } from './network-wait.js';

class Expired {
  constructor(readonly reason: 'idle' | 'deadline') {}
}

export class RequestWatch {
  /** The URL of the current hop (redirects move it); its host is what the events and errors name. */
  url: URL;
  /** Aborts on the caller's signal, the idle timeout or the deadline. */
  readonly signal: AbortSignal;
  private readonly controller = new AbortController();
  private readonly listener = currentNetworkWaitListener();
  private readonly reportEvery: number;
  private readonly started = elapsedNow();
  private readonly timer: NodeJS.Timeout;
  private last = this.started;
  private nextReport: number;
  private reported = false;
  private finished = false;

  constructor(
    url: URL,
    readonly what: string,
    private readonly timeouts: NetworkTimeouts,
    private readonly callerSignal: AbortSignal | undefined,
    reportEveryMs: number | undefined,
  ) {
    this.url = url;
    this.reportEvery = reportEveryMs ?? Math.min(5000, Math.max(500, timeouts.idleMs / 3));
    this.nextReport = this.started + this.reportEvery;
    this.signal = callerSignal ? AbortSignal.any([callerSignal, this.controller.signal]) : this.controller.signal;
    this.timer = setInterval(() => this.tick(), Math.max(20, Math.min(250, timeouts.idleMs / 4)));
    this.timer.unref();
  }

  get target(): string {
    return this.url.host;
  }

  /** Bytes (or an answer) arrived: the idle clock restarts, and a reported wait ends. */
  activity(): void {
    this.last = elapsedNow();
    this.nextReport = this.last + this.reportEvery;
    if (this.reported) {
      this.reported = false;
      this.listener?.({ target: this.target, what: this.what, seconds: 0 });
    }
  }

  /** Stops the clock (idempotent); a reported wait ends. */
  finish(): void {
    if (this.finished) return;
    this.finished = true;
    clearInterval(this.timer);
    if (this.reported) this.listener?.({ target: this.target, what: this.what, seconds: 0 });
  }

  /** Stops the clock and gives back `error`, to be thrown. */
  fail(error: NetworkError): NetworkError {
    this.finish();
    return error;
  }

  /** What a failure of the transport or of reading means: our timeout, the caller's cancel, or itself. */
  translate(error: unknown): unknown {
    this.finish();
    const reason: unknown = this.controller.signal.reason;
    if (this.controller.signal.aborted && reason instanceof Expired) return this.expired(reason, error);
    if (this.callerSignal?.aborted) {
      return new CancelledError(`${this.what} from ${this.target} was cancelled`, { cause: this.callerSignal.reason });
    }
    return error;
  }

  private expired(reason: Expired, error: unknown): NetworkError {
    const { what, target } = this;
    const idle = reason.reason === 'idle';
    const seconds = +((idle ? this.timeouts.idleMs : this.timeouts.deadlineMs) / 1000).toFixed(1);
    const setting = idle ? NETWORK_ENV.idleTimeout : NETWORK_ENV.deadline;
    return new NetworkError(
      idle
        ? `${what} from ${target}: no data for ${seconds} s (${setting})`
        : `${what} from ${target}: not finished within ${seconds} s (${setting})`,
      { target, what, reason: reason.reason },
      { cause: error, hint: `The server stalled or is very slow; try again, or raise ${setting} (seconds).` },
    );
  }

  private tick(): void {
    const now = elapsedNow();
    if (now - this.started >= this.timeouts.deadlineMs) this.controller.abort(new Expired('deadline'));
    else if (now - this.last >= this.timeouts.idleMs) this.controller.abort(new Expired('idle'));
    else if (now >= this.nextReport) {
      this.nextReport += this.reportEvery;
      this.reported = true;
      this.listener?.({ target: this.target, what: this.what, seconds: (now - this.last) / 1000 });
    }
  }
}
