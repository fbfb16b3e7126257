import type { ClientRequest, IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { NETWORK_ENV, NetworkError, elapsedNow, type NetworkTimeouts } from '@prebuilt/core/backend';

/**
 * How long the body of an answer may go silent once its headers came:
 * - `idle`: the client's idle limit, and the whole request within the deadline (every JSON answer
 *   but a container's wait: the daemon has it ready or nearly).
 * - `progress`: ten times the idle limit (10 minutes by default), for pull and push progress. The
 *   daemon reports a running download or upload every fraction of a second and each layer's
 *   step (`Waiting`, `Extracting`, `Pushed`); it says nothing while a registry checks a large
 *   uploaded layer or while it commits a pulled image, a minute or two at worst. Ten minutes of
 *   silence is a daemon or registry connection that hangs.
 * - `open`: no limit. A build can print nothing for an hour (a `RUN` compiling, BuildKit reports a
 *   vertex only when its state changes); `POST /containers/{id}/wait` answers when the container
 *   exits. These are bounded by their caller: the request's AbortSignal (Ctrl-C), a run's time limit.
 */
export type AnswerSilence = 'idle' | 'progress' | 'open';

/** How long the clean-up after a cancel (removing what a build or run left) may take: Ctrl-C stops at once even with a hung daemon. */
export const CANCEL_CLEANUP_MS = 2000;

/** The factor of {@link AnswerSilence} `progress`. */
const PROGRESS_SILENCE_FACTOR = 10;

/** What the clock of one request needs to name in its errors. */
export interface ClockTarget {
  /** The daemon's address as messages show it (credentials in it as `***`). */
  shownHost: string;
  /** The daemon is reached through ssh (the hint says how to check the remote host). */
  ssh: boolean;
  method: string;
  path: string;
}

/**
 * The clock of one Engine API request: fails it (destroys the request and its answer with the
 * error) when the connect, the upload, the headers or the body go silent longer than their
 * limit, or an `idle` request (a JSON call) outlives the deadline. Activity is any byte the connection reads, a
 * connect, or a chunk of the request's body flushed. Stopped at the end of the answer, at the
 * hijack of an attach, and when the request closes (an abort included). An ssh connection's
 * connect is ssh's own (its ConnectTimeout, see ssh-dial.ts): the clock waits for it.
 */
export class RequestClock {
  readonly #started = elapsedNow();
  #last = this.#started;
  #connecting = false;
  /** The silence allowed now (ms): the idle limit until the headers, then the answer's. */
  #silenceMs: number | undefined;
  #deadlineMs: number | undefined;
  #timer: NodeJS.Timeout | undefined;
  #socket: Duplex | undefined;
  #response: IncomingMessage | undefined;
  readonly #touch = (): void => void (this.#last = elapsedNow());

  /**
   * `limits` are the network settings every other read of prebuilt uses
   * (METAFLOW_PREBUILT_NETWORK_IDLE_TIMEOUT / _DEADLINE): no byte for `idleMs` fails the request —
   * the connect, the upload of its body (a stalled daemon stops reading it), the wait for the
   * answer's headers, and an `idle` answer's body; an `idle` request (a JSON call), first byte to
   * last, may take at most `deadlineMs`.
   */
  constructor(
    private readonly limits: NetworkTimeouts,
    private readonly target: ClockTarget,
    private readonly req: ClientRequest,
    private readonly silence: AnswerSilence,
  ) {
    this.#silenceMs = limits.idleMs;
    this.#deadlineMs = silence === 'idle' ? limits.deadlineMs : undefined;
    this.#timer = setInterval(() => this.#tick(), Math.max(10, Math.min(250, limits.idleMs / 4)));
    this.#timer.unref();
    req.on('socket', (socket: Duplex) => this.#watchSocket(socket));
    req.on('close', () => {
      if (!this.#response) this.stop();
    });
  }

  /** A chunk of the request's body was flushed. */
  touch(): void {
    this.#touch();
  }

  /** The headers came: the answer's own silence limit from now on. */
  answered(response: IncomingMessage): void {
    this.#touch();
    this.#response = response;
    const { idleMs } = this.limits;
    this.#silenceMs = this.silence === 'open' ? undefined : this.silence === 'progress' ? idleMs * PROGRESS_SILENCE_FACTOR : idleMs;
    if (this.#silenceMs === undefined && this.#deadlineMs === undefined) return this.stop();
    response.on('close', () => this.stop());
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    this.#socket?.off('data', this.#touch);
  }

  #watchSocket(socket: Duplex): void {
    if (this.#timer === undefined) return; // stopped already (aborted before it had a connection)
    this.#socket = socket;
    // The HTTP parser reads the socket already: one more 'data' listener only watches.
    socket.on('data', this.#touch);
    if ((socket as { connecting?: boolean }).connecting) {
      this.#connecting = true;
      socket.once('connect', () => {
        this.#connecting = false;
        // An ssh connection says it connected only once ssh outlived its ConnectTimeout (ssh-dial.ts):
        // no sign of life, its silence counts from the request's start.
        if (!this.target.ssh) this.#touch();
      });
    }
  }

  #tick(): void {
    // A connecting ssh is left to its own ConnectTimeout (ssh-dial.ts): it exits (the daemon is unreachable) or is taken as connected, then the limits are checked.
    if (this.#connecting && this.target.ssh) return;
    const now = elapsedNow();
    if (this.#deadlineMs !== undefined && now - this.#started >= this.#deadlineMs) this.#fail(this.#expired('deadline'));
    else if (this.#silenceMs !== undefined && now - this.#last >= this.#silenceMs) this.#fail(this.#connecting ? this.#connectFailed() : this.#expired('idle'));
  }

  #fail(error: Error): void {
    this.stop();
    this.#response?.destroy(error);
    this.req.destroy(error);
  }

  /** No connection within the idle limit: nothing answers at the address (the caller's UnreachableError). */
  #connectFailed(): Error {
    const error: NodeJS.ErrnoException = new Error(`no connection to ${this.target.shownHost} within ${seconds(this.limits.idleMs)} s (${NETWORK_ENV.idleTimeout})`);
    error.code = 'ETIMEDOUT';
    return error;
  }

  /** The daemon stalled: it took the connection (and the request) and stopped answering. */
  #expired(reason: 'idle' | 'deadline'): NetworkError {
    const { shownHost, method, path, ssh } = this.target;
    const what = `${method} ${path}`;
    const progress = this.#response !== undefined && this.silence === 'progress';
    const setting = reason === 'deadline' ? NETWORK_ENV.deadline : progress ? `${PROGRESS_SILENCE_FACTOR} × ${NETWORK_ENV.idleTimeout}` : NETWORK_ENV.idleTimeout;
    const message =
      reason === 'deadline'
        ? `The Docker daemon at ${shownHost} did not finish its answer to ${what} within ${seconds(this.limits.deadlineMs)} s (${setting}).`
        : `The Docker daemon at ${shownHost} sent nothing for ${seconds(this.#silenceMs ?? 0)} s ${this.#response ? 'in its answer to' : 'after'} ${what} (${setting}).`;
    const remote = ssh ? `; through ssh, also check that the remote host answers and its daemon runs there (\`ssh <host> docker info\`)` : '';
    return new NetworkError(message, { target: shownHost, what, reason }, {
      hint: `Check that the Docker daemon is alive (\`docker info\` with the same DOCKER_HOST)${remote}; restart a hung daemon, or raise ${reason === 'deadline' ? NETWORK_ENV.deadline : NETWORK_ENV.idleTimeout} (seconds) for a slow one.`,
    });
  }
}

/** Milliseconds as the seconds messages show (one decimal at most). */
export function seconds(ms: number): number {
  return +(ms / 1000).toFixed(1);
}
