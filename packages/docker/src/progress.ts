import type { Readable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import { dockerfileInstructions } from './dockerfile-instructions.js';
import { decodeStatusResponse } from './buildkit-trace.js';

/** One JSON message of a Docker Engine progress stream (build, pull, push). */
export interface DockerStreamEvent {
  stream?: string;
  status?: string;
  id?: string;
  progress?: string;
  progressDetail?: { current?: number; total?: number };
  error?: string;
  errorDetail?: { code?: number; message?: string };
  aux?: unknown;
}

/**
 * The longest event line read (4 MiB): far above any progress event, BuildKit traces included,
 * so that a stream without newlines cannot fill the memory.
 */
export const MAX_EVENT_LINE = 4 << 20;

/**
 * Reads a Docker progress stream: newline-delimited JSON, each line at most {@link MAX_EVENT_LINE}
 * characters (a longer one rejects: the stream is not the daemon's). Resolves when the stream ends; rejects
 * when it breaks (an aborted request, a dropped connection). Never decides success by itself:
 * the caller inspects the events (`error`/`errorDetail` arrive inside a stream that ends normally).
 */
export async function readEvents(stream: Readable, onEvent: (event: DockerStreamEvent) => void): Promise<void> {
  let pending = '';
  const handleLine = (line: string) => {
    const trimmed = line.trim();
    if (trimmed === '') return;
    let event: unknown;
    try {
      event = JSON.parse(trimmed);
    } catch {
      // A non-JSON line (an old daemon's plain text): keep it as log output.
      onEvent({ stream: `${trimmed}\n` });
      return;
    }
    if (typeof event === 'object' && event !== null) onEvent(event as DockerStreamEvent);
  };
  const utf8 = new StringDecoder('utf8'); // a character split across chunks is decoded whole
  for await (const chunk of stream) {
    pending += typeof chunk === 'string' ? chunk : utf8.write(chunk as Buffer);
    let newline: number;
    while ((newline = pending.indexOf('\n')) >= 0) {
      handleLine(pending.slice(0, newline));
      pending = pending.slice(newline + 1);
    }
    if (pending.length > MAX_EVENT_LINE) throw new Error(`a progress event of the Docker daemon is longer than ${MAX_EVENT_LINE} characters`);
  }
  handleLine(pending + utf8.end());
}

/**
 * The longest log line kept (characters). A build step's output comes in pieces (legacy `stream`
 * events, BuildKit log messages), each bounded, but a step printing without newlines (a
 * package's install script, hostile or not) would grow one line without end: a longer line is cut
 * here, and the rest of it, up to its newline, dropped.
 */
export const MAX_LOG_LINE = 16 * 1024;

/** Splits text that arrives in pieces into whole lines, each at most {@link MAX_LOG_LINE} characters. */
class LineSplitter {
  #partial = '';
  /** The line being read was cut: the rest of it is dropped. */
  #cut = false;
  constructor(private readonly emit: (line: string) => void) {}
  push(text: string): void {
    const parts = text.split('\n');
    const last = parts.pop() ?? '';
    for (const part of parts) {
      this.#append(part);
      this.flush();
    }
    this.#append(last);
  }
  flush(): void {
    if (this.#partial !== '') this.#line(this.#partial);
    this.#partial = '';
    this.#cut = false;
  }
  #append(text: string): void {
    if (this.#cut) return;
    this.#partial += text;
    if (this.#partial.length <= MAX_LOG_LINE) return;
    // A progress bar rewrites its line with carriage returns: only its last version counts.
    this.#partial = lastVersion(this.#partial) ?? '';
    if (this.#partial.length <= MAX_LOG_LINE) return;
    this.#partial = cutLine(this.#partial);
    this.#cut = true;
  }
  #line(raw: string): void {
    const line = lastVersion(raw)?.trimEnd();
    if (line !== undefined && line !== '') this.emit(line);
  }
}

/** A line of at most {@link MAX_LOG_LINE} characters, saying where it was cut. */
function cutLine(line: string): string {
  return line.length <= MAX_LOG_LINE ? line : `${line.slice(0, MAX_LOG_LINE)} … (line cut at ${MAX_LOG_LINE} characters)`;
}

/** What a terminal shows of a line with carriage returns (each rewrites it): its last non-blank version. */
function lastVersion(raw: string): string | undefined {
  return raw.split('\r').filter((segment) => segment.trim() !== '').at(-1);
}

/**
 * Turns the events of a build or push stream into log lines, a bounded tail of them, the first
 * error, and (for a push) the pushed digest. Understands the legacy builder (`stream` text,
 * `Step N/M : INSTRUCTION`) and BuildKit (`moby.buildkit.trace` protobuf in `aux`).
 */
export class ProgressTracker {
  readonly tail: string[] = [];
  /** The first error reported by the stream. */
  error: string | undefined;
  /** True when the error happened while resolving or pulling the base image (a FROM step). */
  errorInFrom = false;
  /**
   * The image of the FROM step that failed, as the builder names it (the legacy builder as the
   * Dockerfile writes it; BuildKit normalized: `docker.io/library/python:3.11`, a digest appended).
   */
  failedFrom: string | undefined;
  /**
   * The digest of a push: its stream's `aux.Digest`, else the one of its last status line
   * (`<tag>: digest: sha256:… size: N`), which is all a Docker Engine before 27 with the containerd
   * image store reports.
   */
  digest: string | undefined;
  /** The image id from the build stream (`aux.ID` or BuildKit's `moby.image.id`). */
  imageId: string | undefined;

  readonly #emit: (line: string) => void;
  readonly #tailSize: number;
  readonly #text: LineSplitter;
  readonly #vertexLogs = new Map<string, LineSplitter>();
  /** One decoder per vertex and output stream: BuildKit cuts a step's output into messages anywhere, inside a UTF-8 character too. */
  readonly #logDecoders = new Map<string, { vertex: string; decoder: StringDecoder }>();
  readonly #vertexNames = new Map<string, string>();
  readonly #vertexAnnounced = new Set<string>();
  readonly #vertexFailed = new Set<string>();
  #instruction: string | undefined;
  /** The image of the legacy builder's current step when it is a FROM. */
  #stepFrom: string | undefined;
  /** The legacy builder's current step number and its total (`Step N/M`), to tell its step lines from a RUN's output. */
  #step: { n: number; total: number } | undefined;
  /** The keywords of the Dockerfile's instructions, when it was given: step N is the N-th. */
  readonly #instructions: string[] | undefined;

  /**
   * `dockerfile`: the Dockerfile being built, so that a line of a RUN's output reading like the
   * legacy builder's next step (`Step 3/3 : FROM x`) is one only when the Dockerfile's step 3 is a
   * FROM.
   */
  constructor(log: ((line: string) => void) | undefined, tailSize: number, options: { dockerfile?: string } = {}) {
    this.#tailSize = tailSize;
    this.#instructions = options.dockerfile === undefined ? undefined : dockerfileInstructions(options.dockerfile);
    // A status or error event is one line however long (up to MAX_EVENT_LINE): cut as well.
    this.#emit = (whole) => {
      const line = cutLine(whole);
      this.tail.push(line);
      if (this.tail.length > this.#tailSize) this.tail.shift();
      log?.(line);
    };
    this.#text = new LineSplitter((line) => {
      const step = /^Step (\d+)\/(\d+) : (\w+)(?:\s+(?:--\S+\s+)*(\S+))?/i.exec(line);
      // A RUN step's output comes in the same text: a line of it that reads like a step (a package printing
      // `Step 1/1 : FROM x`) is one only when it comes after the current step with the build's own total.
      if (step && this.#isNextStep(Number(step[1]), Number(step[2]), step[3]!.toUpperCase())) {
        this.#instruction = step[3]!.toUpperCase();
        this.#stepFrom = this.#instruction === 'FROM' ? step[4] : undefined;
      }
      this.#emit(line);
    });
  }

  /**
   * Whether `Step n/total : KEYWORD` follows the legacy builder's current step (a greater number, the
   * same total) and, when the Dockerfile is known (and has `total` instructions), is its n-th
   * instruction; it becomes the current one.
   *
   * The stream cannot tell more: the builder's step lines and a RUN's output are both `stream` text
   * of the same JSON stream, cut anywhere, and what comes between steps (` ---> Running in <id>`,
   * ` ---> <id>`, `Removing intermediate container <id>`) is plain text a RUN can print too. So a RUN
   * printing exactly the next step's own line (its number, the build's total and the Dockerfile's
   * instruction there) is still read as that step. prebuilt's recipes have no FROM after a RUN, so
   * no output of theirs can make a RUN's failure read as a base image's; in a Dockerfile with a FROM
   * after a RUN, the FROM such a line can name is only that real one.
   */
  #isNextStep(n: number, total: number, keyword: string): boolean {
    if (this.#step && (total !== this.#step.total || n <= this.#step.n)) return false;
    // A count of ours that differs from the builder's (a Dockerfile syntax we read otherwise) checks nothing.
    if (this.#instructions?.length === total && this.#instructions[n - 1] !== keyword) return false;
    this.#step = { n, total };
    return true;
  }

  handle(event: DockerStreamEvent): void {
    if (typeof event.stream === 'string') this.#text.push(event.stream);

    if (event.id === 'moby.buildkit.trace' && typeof event.aux === 'string') {
      this.#handleTrace(event.aux);
    } else if (event.id === 'moby.image.id' && isRecord(event.aux) && typeof event.aux['ID'] === 'string') {
      this.imageId = event.aux['ID'];
    } else if (isRecord(event.aux)) {
      if (typeof event.aux['Digest'] === 'string') this.digest = event.aux['Digest'];
      if (typeof event.aux['ID'] === 'string') this.imageId = event.aux['ID'];
    }

    if (typeof event.status === 'string' && event.progressDetail?.current === undefined) {
      this.digest ??= PUSHED_DIGEST.exec(event.status)?.[1];
      this.#text.flush();
      this.#emit(event.id ? `${event.id}: ${event.status}` : event.status);
    }

    const message = event.errorDetail?.message ?? event.error;
    if (typeof message === 'string' && message !== '') {
      this.#text.flush();
      this.#emit(`ERROR: ${message}`);
      if (this.error === undefined) {
        this.error = message;
        if (this.#instruction === 'FROM') {
          this.errorInFrom = true;
          this.failedFrom = this.#stepFrom;
        }
      }
    }
  }

  /** Records an error that did not come through the stream (a rejected request). */
  fail(message: string): void {
    this.flush();
    this.#emit(`ERROR: ${message}`);
    this.error ??= message;
  }

  flush(): void {
    this.#text.flush();
    for (const { vertex, decoder } of this.#logDecoders.values()) this.#vertexLogs.get(vertex)?.push(decoder.end()); // a cut-off character: U+FFFD
    for (const splitter of this.#vertexLogs.values()) splitter.flush();
  }

  #handleTrace(payload: string): void {
    let status;
    try {
      status = decodeStatusResponse(payload);
    } catch {
      return; // A trace we cannot read carries no error that the stream does not also report.
    }
    for (const vertex of status.vertexes) {
      if (vertex.name) this.#vertexNames.set(vertex.digest, vertex.name);
      const name = this.#vertexNames.get(vertex.digest) ?? vertex.digest;
      if ((vertex.started || vertex.cached) && !this.#vertexAnnounced.has(vertex.digest)) {
        this.#vertexAnnounced.add(vertex.digest);
        this.#emit(`=> ${name}${vertex.cached ? ' (cached)' : ''}`);
      }
      if (vertex.error && !this.#vertexFailed.has(vertex.digest)) {
        this.#vertexFailed.add(vertex.digest);
        this.#vertexLogs.get(vertex.digest)?.flush();
        this.#emit(`=> ${name}: ERROR: ${vertex.error}`);
        const from = fromVertexImage(name);
        if (this.error === undefined && from !== undefined) {
          this.errorInFrom = true;
          this.failedFrom ??= from;
        }
      }
    }
    for (const log of status.logs) {
      let splitter = this.#vertexLogs.get(log.vertex);
      if (!splitter) {
        splitter = new LineSplitter(this.#emit);
        this.#vertexLogs.set(log.vertex, splitter);
      }
      const key = `${log.vertex}\n${log.stream}`;
      let entry = this.#logDecoders.get(key);
      if (!entry) {
        entry = { vertex: log.vertex, decoder: new StringDecoder('utf8') };
        this.#logDecoders.set(key, entry);
      }
      splitter.push(entry.decoder.write(log.msg));
    }
  }
}

/** The last status line of a push: `<tag>: digest: sha256:… size: N`. */
const PUSHED_DIGEST = /^[\w][\w.-]*: digest: (sha256:[0-9a-f]{64}) size: \d+$/;

/** The image a BuildKit vertex resolving or pulling a FROM names (`[internal] load metadata for <image>`, `[stage 1/2] FROM <image>`), or undefined for any other vertex. */
function fromVertexImage(name: string): string | undefined {
  return (/^\[internal\] load metadata for (\S+)/.exec(name) ?? /^\[[^\]]*\d+\/\d+\] FROM (\S+)/.exec(name))?.[1];
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}
