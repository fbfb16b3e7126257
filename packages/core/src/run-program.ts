/**
 * One bounded child-process runner: every program prebuilt runs to its end and reads the output of
 * (pip, `docker buildx inspect`, a credential helper) goes through it. No shell (an argv array), the
 * environment passed in, stdin optional (written then closed; what it holds is never logged),
 * stdout and stderr each kept to a bounded head and/or tail, an optional timeout and AbortSignal.
 * A program that exits (whatever its code) resolves; one that cannot start, runs past its timeout
 * or is cancelled rejects with a {@link ProgramRunError} its caller turns into its own error — a
 * stopped one once it has exited (SIGKILLed when it outlives `killSignal` by two seconds), so that
 * none outlives the run, nor holds the CLI on its pipes (read no longer than a second after it exits).
 *
 * Each program runs in its own process group (`detached`: a new session, so no controlling
 * terminal either — its stdio never is the terminal, and a prompt on /dev/tty would hang a build),
 * and a stop signals the whole group: pip's build backends, a shell's children, the plugins `docker`
 * starts go with it, and the SIGKILL two seconds later reaches those of them that outlive their
 * parent. The terminal's Ctrl-C no longer reaches the group by itself: the caller's `signal` (the
 * CLI's interrupt) stops it; and when this process exits (a second Ctrl-C, an error) every group
 * still running or still being stopped is sent SIGKILL (a `process.on('exit')` hook). Only a SIGKILL
 * of this process itself leaves them running.
 */
import { spawn } from 'node:child_process';
import type { Readable } from 'node:stream';

const MARKER = Symbol.for('prebuilt.ProgramRunError');

/** The bytes of a stream kept: its first `head` and last `tail` bytes (default: the last 64 KiB). */
export interface OutputBound {
  head?: number;
  tail?: number;
  /**
   * At a cut, keep whole lines only (default true): half a line could be half a URL, its
   * credentials no longer recognisable to a redactor. false keeps the bytes as they are.
   */
  wholeLines?: boolean;
}

export const DEFAULT_OUTPUT_BOUND: Readonly<OutputBound> = { head: 0, tail: 64 * 1024 };

/** A stream's output as kept. */
export interface CapturedOutput {
  /** The head and the tail, with a line saying how many bytes were cut between them when some were. */
  text: string;
  /** Every byte the program wrote to the stream. */
  bytes: number;
  /** Whether bytes were dropped (more than head + tail were written). */
  cut: boolean;
}

export interface RunProgramOptions {
  /** The program's environment: nothing else is passed (not process.env). */
  env: Record<string, string | undefined>;
  cwd?: string;
  /** Written to the program's stdin, which is then closed; without it stdin is /dev/null. Never logged. */
  input?: string | Uint8Array;
  stdout?: OutputBound;
  stderr?: OutputBound;
  /** stderr kept with stdout in one capture (`stdout`'s bound), in the order the chunks arrive. */
  mergeStderr?: boolean;
  /** Milliseconds the program may run; then it is killed and the run rejects (reason `timed-out`). */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** How a timed-out or cancelled program is killed (SIGKILL two seconds later if it has not exited). Default SIGTERM. */
  killSignal?: NodeJS.Signals;
}

export interface ProgramResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: CapturedOutput;
  /** Empty when `mergeStderr`. */
  stderr: CapturedOutput;
}

/** Why a run did not end with the program's exit. */
export type ProgramRunFailure = 'not-started' | 'timed-out' | 'cancelled';

/**
 * A program that could not be started (`cause` is the spawn error: its `code`, e.g. ENOENT), ran
 * past its timeout, or was cancelled (`cause` is the signal's reason). Not for the user as is: the
 * caller says what the program was for.
 */
export class ProgramRunError extends Error {
  readonly [MARKER] = true;
  readonly reason: ProgramRunFailure;
  /** The file that was run. */
  readonly file: string;
  readonly timeoutMs: number | undefined;

  constructor(reason: ProgramRunFailure, file: string, options: { cause?: unknown; timeoutMs?: number } = {}) {
    super(
      reason === 'not-started'
        ? `${file} could not be started: ${options.cause instanceof Error ? options.cause.message : String(options.cause)}`
        : reason === 'timed-out'
          ? `${file} did not finish within ${options.timeoutMs} ms`
          : `${file} was cancelled${options.cause instanceof Error ? `: ${options.cause.message}` : ''}`,
      options.cause === undefined ? undefined : { cause: options.cause },
    );
    this.name = 'ProgramRunError';
    this.reason = reason;
    this.file = file;
    this.timeoutMs = options.timeoutMs;
  }

  /** The spawn error's code (ENOENT, EACCES …) of a program that could not be started. */
  get errno(): string | undefined {
    return this.reason === 'not-started' ? (this.cause as NodeJS.ErrnoException | undefined)?.code : undefined;
  }

  static isInstance(error: unknown): error is ProgramRunError {
    return typeof error === 'object' && error !== null && (error as Record<symbol, unknown>)[MARKER] === true;
  }
}

/** Keeps the first `head` and the last `tail` bytes of a stream, and counts them all. */
export class BoundedOutput {
  readonly #headLimit: number;
  readonly #tailLimit: number;
  readonly #wholeLines: boolean;
  readonly #head: Buffer[] = [];
  #headBytes = 0;
  #tail: Buffer[] = [];
  #tailBytes = 0;
  /** The last byte dropped before the tail's chunks: whether the tail starts a line. */
  #droppedLastByte: number | undefined;
  #bytes = 0;

  constructor(bound: OutputBound = DEFAULT_OUTPUT_BOUND) {
    this.#headLimit = Math.max(0, bound.head ?? 0);
    this.#tailLimit = Math.max(0, bound.tail ?? 0);
    this.#wholeLines = bound.wholeLines ?? true;
  }

  push(chunk: Buffer): void {
    this.#bytes += chunk.length;
    let rest = chunk;
    if (this.#headBytes < this.#headLimit) {
      const take = Math.min(this.#headLimit - this.#headBytes, rest.length);
      this.#head.push(Buffer.from(rest.subarray(0, take)));
      this.#headBytes += take;
      rest = rest.subarray(take);
    }
    if (rest.length === 0 || this.#tailLimit === 0) return;
    this.#tail.push(rest);
    this.#tailBytes += rest.length;
    // Whole chunks the tail no longer needs are dropped as they come: memory stays ~tail + one chunk.
    while (this.#tail.length > 1 && this.#tailBytes - this.#tail[0]!.length >= this.#tailLimit) {
      const dropped = this.#tail.shift()!;
      this.#tailBytes -= dropped.length;
      this.#droppedLastByte = dropped[dropped.length - 1];
    }
  }

  result(): CapturedOutput {
    let head = Buffer.concat(this.#head);
    const joined = Buffer.concat(this.#tail);
    let tail = joined.length > this.#tailLimit ? joined.subarray(joined.length - this.#tailLimit) : joined;
    if (this.#wholeLines && this.#bytes > head.length + tail.length) {
      const lastNewline = head.lastIndexOf(0x0a);
      head = head.subarray(0, lastNewline + 1);
      const before = joined.length > tail.length ? joined[joined.length - tail.length - 1] : this.#droppedLastByte;
      if (before !== 0x0a) {
        const firstNewline = tail.indexOf(0x0a);
        tail = tail.subarray(firstNewline === -1 ? tail.length : firstNewline + 1);
      }
    }
    const cut = this.#bytes - head.length - tail.length;
    const text = cut > 0 ? `${head.toString('utf8')}[… ${cut} bytes of output cut …]\n${tail.toString('utf8')}` : head.toString('utf8') + tail.toString('utf8');
    return { text, bytes: this.#bytes, cut: cut > 0 };
  }
}

/** Runs `file` with `args` to its end (see the module's comment). `file` is a path (core's programPath finds one). */
export function runProgram(file: string, args: readonly string[], options: RunProgramOptions): Promise<ProgramResult> {
  const { signal, timeoutMs } = options;
  const killSignal = options.killSignal ?? 'SIGTERM';
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new ProgramRunError('cancelled', file, { cause: signal.reason }));
    const stdout = new BoundedOutput(options.stdout ?? DEFAULT_OUTPUT_BOUND);
    const stderr = options.mergeStderr ? stdout : new BoundedOutput(options.stderr ?? DEFAULT_OUTPUT_BOUND);
    let settled = false;
    let timer: NodeJS.Timeout | undefined;
    const finish = (fn: () => void): void => {
      if (settled) return;
      settled = true;
      if (timer !== undefined) clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      fn();
    };
    const child = spawn(file, args, {
      env: options.env as NodeJS.ProcessEnv,
      ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
      stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      detached: true,
    });
    const group = child.pid === undefined ? undefined : runningGroup(child.pid);
    // A stopped program's group is signalled (then SIGKILLed after KILL_GRACE_MS: it may ignore the
    // signal, a child of it may outlive it) and the run rejects once it has exited: one left running
    // held the CLI, which waits on its pipes.
    let stopped: ProgramRunError | undefined;
    let killTimer: NodeJS.Timeout | undefined;
    const stop = (failure: ProgramRunError): void => {
      if (stopped !== undefined) return;
      stopped = failure;
      if (timer !== undefined) clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      if (group === undefined) return void child.kill(killSignal);
      group.signal(killSignal);
      // Kept after the program exits (its children may not have), not keeping this process alive:
      // the exit hook sends the SIGKILL then.
      killTimer = setTimeout(() => group.end('SIGKILL'), KILL_GRACE_MS).unref();
    };
    const onAbort = (): void => stop(new ProgramRunError('cancelled', file, { cause: signal?.reason }));
    signal?.addEventListener('abort', onAbort, { once: true });
    if (timeoutMs !== undefined) timer = setTimeout(() => stop(new ProgramRunError('timed-out', file, { timeoutMs })), timeoutMs);
    child.stdout?.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr?.on('data', (chunk: Buffer) => stderr.push(chunk));
    child.on('error', (error) => {
      if (killTimer !== undefined) clearTimeout(killTimer);
      group?.end();
      finish(() => reject(new ProgramRunError('not-started', file, { cause: error })));
    });
    if (options.input !== undefined && child.stdin) {
      // A program may exit without reading its stdin (EPIPE): its exit says what happened.
      child.stdin.on('error', () => undefined);
      child.stdin.end(options.input);
    }
    child.on('exit', (code, exitSignal) => {
      // A stopped program's group waits for its SIGKILL; one that exited by itself is let go (a
      // daemon it started on purpose stays).
      if (stopped === undefined) group?.end();
      // Settled once the program has exited and its output is read — within DRAIN_MS: a child of
      // it (a daemon it started) may hold the pipes open for ever.
      void Promise.all([outputDrained(child.stdout), outputDrained(child.stderr)]).then(() =>
        finish(() =>
          stopped !== undefined
            ? reject(stopped)
            : resolve({ code, signal: exitSignal, stdout: stdout.result(), stderr: options.mergeStderr ? { text: '', bytes: 0, cut: false } : stderr.result() }),
        ),
      );
    });
  });
}

/** A program's process group while it runs or is being stopped: signalled whole, SIGKILLed at this process's exit. */
interface RunningGroup {
  signal(sig: NodeJS.Signals): void;
  /** Signals it one last time when `sig` is given, and forgets it. */
  end(sig?: NodeJS.Signals): void;
}

/** The process groups of running (or stopping) programs, by their leader's pid. */
const runningGroups = new Set<number>();
let exitHook = false;

function signalGroup(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(-pid, sig);
  } catch {
    // The group is gone already.
  }
}

function runningGroup(pid: number): RunningGroup {
  if (!exitHook) {
    exitHook = true;
    process.on('exit', () => {
      for (const leader of runningGroups) signalGroup(leader, 'SIGKILL');
    });
  }
  runningGroups.add(pid);
  return {
    signal: (sig) => signalGroup(pid, sig),
    end: (sig) => {
      if (sig !== undefined && runningGroups.has(pid)) signalGroup(pid, sig);
      runningGroups.delete(pid);
    },
  };
}

/** How long a stopped program (past its timeout, or cancelled) has to exit before it is sent SIGKILL. */
const KILL_GRACE_MS = 2000;

/** How long the output of a program that has exited is still read (see runProgram's `exit`). */
const DRAIN_MS = 1000;

/**
 * Resolves once an exited program's output `stream` is read to its end, or after a second (a child
 * of it, a daemon it started, may hold the stream open for ever): then it is destroyed. For a
 * program that streams and is not run with {@link runProgram}, which waits so itself.
 */
export function outputDrained(stream: Readable | null): Promise<void> {
  return new Promise<void>((done) => {
    if (stream === null || stream.closed) return done();
    const timer = setTimeout(() => {
      stream.destroy();
      done();
    }, DRAIN_MS);
    timer.unref();
    stream.once('close', () => {
      clearTimeout(timer);
      done();
    });
  });
}
