import type { BuildRequest, BuildResult, RegistryCredentials } from '../contracts.js';
import { CancelledError } from '../errors.js';

/**
 * The log of one build: splits output chunks into lines, removes secrets, hands each line to the
 * request's `log` callback as it arrives and keeps the last lines for a failed result.
 */
export class BuildLog {
  readonly #sink: ((line: string) => void) | undefined;
  readonly #scrub: (text: string) => string;
  readonly #tailLines: number;
  readonly #tail: string[] = [];
  #pending = '';

  constructor(sink: ((line: string) => void) | undefined, scrub: (text: string) => string, tailLines: number) {
    this.#sink = sink;
    this.#scrub = scrub;
    this.#tailLines = tailLines;
  }

  /**
   * The log of a build request: lines go to its `log` callback (the `pushing` phase reported at the
   * first line matching `pushLine`), its push credentials are scrubbed from every line.
   */
  static forRequest(request: BuildRequest, pushLine: RegExp, tailLines: number): BuildLog {
    return new BuildLog(withPushPhase(request, pushLine), scrubber(request.pushCredentials), tailLines);
  }

  /** A chunk of output; complete lines are emitted, a partial last line waits for the rest. */
  write(chunk: string): void {
    const parts = (this.#pending + chunk).split(/\r?\n|\r/);
    this.#pending = parts.pop() ?? '';
    for (const part of parts) this.line(part);
  }

  /** One whole line. */
  line(text: string): void {
    // trimEnd, not /\s+$/: that regex takes quadratic time on a line of many spaces a build step can print.
    const clean = this.#scrub(text.trimEnd());
    if (clean === '') return;
    this.#tail.push(clean);
    if (this.#tail.length > this.#tailLines) this.#tail.shift();
    this.#sink?.(clean);
  }

  /** Emits a partial last line, if any. */
  flush(): void {
    if (this.#pending !== '') {
      const last = this.#pending;
      this.#pending = '';
      this.line(last);
    }
  }

  /** A failed build's result: the reason (scrubbed) and the log's tail, after a partial last line. */
  failure(reason: string): BuildResult {
    this.flush();
    return { ok: false, reason: this.scrub(reason), logTail: this.tail };
  }

  get tail(): string[] {
    return [...this.#tail];
  }

  /** The text with every secret removed. */
  scrub(text: string): string {
    return this.#scrub(text);
  }
}

/** Removes every secret of the credentials from a text (a builder should never echo one; this makes sure). */
export function scrubber(credentials: RegistryCredentials | undefined): (text: string) => string {
  const secrets = [credentials?.password, credentials?.identityToken, credentials?.registryToken]
    .map((secret) => secret?.reveal())
    .filter((value): value is string => value !== undefined && value.length >= 4);
  if (secrets.length === 0) return (text) => text;
  return (text) => secrets.reduce((out, secret) => out.split(secret).join('<redacted>'), text);
}

/** The CancelledError for an aborted signal (SIGINT/SIGTERM reasons keep their exit code). */
export function cancelledError(signal: AbortSignal, what: string): CancelledError {
  const reason = signal.reason as unknown;
  return new CancelledError(`${what} was cancelled.`, {
    cause: reason,
    ...(reason === 'SIGINT' || reason === 'SIGTERM' ? { signal: reason } : {}),
  });
}

/** The request's log callback, reporting the `pushing` phase once a line matches `pushLine`. */
export function withPushPhase(request: BuildRequest, pushLine: RegExp): (line: string) => void {
  let pushing = false;
  return (line) => {
    if (!pushing && pushLine.test(line)) {
      pushing = true;
      request.onPhase?.('pushing');
    }
    request.log?.(line);
  };
}
