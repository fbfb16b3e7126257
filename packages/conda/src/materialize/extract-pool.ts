/**
 * Extraction off the main thread: a few worker threads (extract-worker.ts) extract conda packages
 * into the extraction cache — decompress, parse the tar, create and seal the files, hash the
 * archive's md5 — while the main thread links the packages already extracted into the prefix,
 * through the jail, and runs the bytecode pass. On one thread, creating the files and linking them
 * took turns on one core; now they share the machine's cores.
 *
 * The workers run the same extraction code as the main thread (conda-extract.ts): the same
 * budgets, bounds and names, and what they return (the kept `info/` files, the entries with their
 * stamps) is checked by the main thread as before — a worker only ever writes under the scratch
 * directory it is given. A worker starts at the first archive of {@link WORKER_START_MIN} bytes or
 * more (a rebuild that extracts nothing or one small package starts none; smaller archives are
 * extracted on the calling thread until one runs) and stops when the pool is closed, or after
 * `idleMs` without work. Where the worker's compiled script is absent (the sources run
 * untranspiled, without a build), extraction runs on the calling thread.
 *
 * One pool serves the whole process ({@link processExtractPool}): a build materializes its envs at
 * once, and they share its {@link defaultWorkerCount} workers instead of starting a pool each. Its
 * workers stop after {@link PROCESS_POOL_IDLE_MS} without work, and an idle worker never keeps
 * the process alive (unref'd), so the CLI exits when its work is done.
 */
import { existsSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { createLogger, errorMessage, PrebuiltError } from '@prebuilt/core/extraction';
import { hashFile } from '../cache/sha256-file.js';
import { extractCondaPackage, type ExtractedCondaPackage, type ExtractedEntry } from './conda-extract.js';
import { ArchiveError, InstallError } from './errors.js';

const log = createLogger('conda:extract-pool');

/** What the main thread asks of a worker: one package extracted into `scratch` (and its md5 when `md5`). */
export interface ExtractRequest {
  id: number;
  file: string;
  label: string;
  scratch: string;
  mtime?: number;
  md5: boolean;
}

/** An error crossing the thread boundary as data (structured clone keeps no classes). */
export interface SerialisedError {
  name: string;
  message: string;
  packageName?: string;
  hint?: string;
  code?: string;
  errno?: number;
  syscall?: string;
  path?: string;
}

export type ExtractReply =
  | { id: number; info: [string, Uint8Array][]; entries: ExtractedEntry[]; md5?: string }
  | { id: number; error: SerialisedError };

/** A package extracted (by a worker or on this thread), with its archive's md5 when asked for. */
export type PooledExtraction = ExtractedCondaPackage & { md5?: string };

export function serialiseError(error: unknown): SerialisedError {
  if (!(error instanceof Error)) return { name: 'Error', message: String(error) };
  const e = error as Error & { packageName?: unknown; hint?: unknown; code?: unknown; errno?: unknown; syscall?: unknown; path?: unknown };
  return {
    name: e.name,
    message: e.message,
    ...(typeof e.packageName === 'string' ? { packageName: e.packageName } : {}),
    ...(typeof e.hint === 'string' ? { hint: e.hint } : {}),
    ...(typeof e.code === 'string' ? { code: e.code } : {}),
    ...(typeof e.errno === 'number' ? { errno: e.errno } : {}),
    ...(typeof e.syscall === 'string' ? { syscall: e.syscall } : {}),
    ...(typeof e.path === 'string' ? { path: e.path } : {}),
  };
}

/** The error a worker sent, as the class the main thread would have thrown (system errors keep code, errno, syscall and path). */
export function rebuildError(data: SerialisedError): Error {
  const options = data.hint ? { hint: data.hint } : {};
  if (data.name === 'ArchiveError') return new ArchiveError(data.message, data.packageName ?? '', options);
  if (data.name === 'InstallError') return new InstallError(data.message, data.packageName ?? '', options);
  const error = Object.assign(new Error(data.message), {
    ...(data.code !== undefined ? { code: data.code } : {}),
    ...(data.errno !== undefined ? { errno: data.errno } : {}),
    ...(data.syscall !== undefined ? { syscall: data.syscall } : {}),
    ...(data.path !== undefined ? { path: data.path } : {}),
  });
  error.name = data.name;
  return error;
}

/** The compiled worker script beside this module (from the sources under a test runner: the package's build output). */
export function workerScript(moduleUrl: string = import.meta.url): string | undefined {
  const url = moduleUrl.endsWith('.ts') ? new URL('../../dist/materialize/extract-worker.js', moduleUrl) : new URL('./extract-worker.js', moduleUrl);
  const path = fileURLToPath(url);
  return existsSync(path) ? path : undefined;
}

/** The smallest archive that starts a worker when none runs (smaller ones are extracted on the calling thread then). */
export const WORKER_START_MIN = 2 * 1024 * 1024;

/** The file's size (0 when it cannot be read: the extraction then reports the error). */
const fileSize = (file: string): number => statSync(file, { throwIfNoEntry: false })?.size ?? 0;

/** Worker threads for a machine: one per core beyond the main thread's, at least one, at most two (each extracts several packages at once). */
export function defaultWorkerCount(cores: number = availableParallelism()): number {
  return Math.min(2, Math.max(1, cores - 1));
}

interface Pending {
  resolve: (value: PooledExtraction) => void;
  reject: (error: unknown) => void;
}

interface Slot {
  worker: Worker;
  pending: Map<number, Pending>;
}

export interface ExtractPoolOptions {
  /** The most workers at once (default {@link defaultWorkerCount}). */
  workers?: number;
  /** The worker script (default {@link workerScript}; undefined: extract on the calling thread). */
  script?: string | undefined;
  /** The smallest archive that starts a worker when none runs (default {@link WORKER_START_MIN}). */
  startMin?: number;
  /** Stop the workers after this long without work (default: never; they stop when the pool is closed). */
  idleMs?: number;
}

export class ExtractPool {
  readonly #size: number;
  readonly #script: string | undefined;
  readonly #slots: Slot[] = [];
  #next = 0;
  #closed = false;
  #peak = 0;
  readonly #startMin: number;
  readonly #idleMs: number | undefined;
  #idleTimer: NodeJS.Timeout | undefined;

  constructor(options: ExtractPoolOptions = {}) {
    this.#size = Math.max(1, options.workers ?? defaultWorkerCount());
    this.#script = 'script' in options ? options.script : workerScript();
    this.#startMin = options.startMin ?? WORKER_START_MIN;
    this.#idleMs = options.idleMs;
  }

  /** The most workers this pool ever ran at once (never more than its size). */
  get peakWorkers(): number {
    return this.#peak;
  }

  /** Whether extractions can run in worker threads (false: always on the calling thread). */
  get threaded(): boolean {
    return this.#script !== undefined;
  }

  /** How many workers run now. */
  get workers(): number {
    return this.#slots.length;
  }

  /** Extracts `file` into `scratch` as extractCondaPackage does, with the archive's md5 when `md5`. */
  extract(file: string, label: string, scratch: string, options: { mtime?: number; md5?: boolean } = {}): Promise<PooledExtraction> {
    if (this.#closed) return Promise.reject(new Error('The extraction pool is closed.'));
    const md5 = options.md5 === true;
    // Starting a worker costs ~0.15 s of CPU (its module graph): a small archive while none runs
    // (a rebuild's one changed package) is extracted here.
    if (!this.#script || (this.#slots.length === 0 && fileSize(file) < this.#startMin)) return inThread(file, label, scratch, options.mtime, md5);
    clearTimeout(this.#idleTimer);
    const slot = this.#slot();
    const id = (this.#next += 1);
    const request: ExtractRequest = { id, file, label, scratch, md5, ...(options.mtime === undefined ? {} : { mtime: options.mtime }) };
    return new Promise<PooledExtraction>((resolve, reject) => {
      slot.pending.set(id, { resolve, reject });
      // Held alive while it has work (an idle worker does not keep the process running).
      slot.worker.ref();
      slot.worker.postMessage(request);
    });
  }

  /** Stops the workers; extractions still running fail. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#idleTimer);
    await this.#stopWorkers();
  }

  async #stopWorkers(): Promise<void> {
    const slots = this.#slots.splice(0);
    await Promise.all(slots.map((slot) => slot.worker.terminate()));
  }

  /** After the last extraction: the workers stop once `idleMs` pass without new work (the timer never keeps the process alive). */
  #whenIdle(): void {
    if (this.#idleMs === undefined || this.#slots.some((slot) => slot.pending.size > 0)) return;
    clearTimeout(this.#idleTimer);
    this.#idleTimer = setTimeout(() => {
      if (this.#slots.every((slot) => slot.pending.size === 0)) {
        log('stopping %d idle extraction workers', this.#slots.length);
        void this.#stopWorkers();
      }
    }, this.#idleMs);
    this.#idleTimer.unref();
  }

  /** The worker with the fewest extractions running (a new one while fewer than the pool's size run). */
  #slot(): Slot {
    const idle = this.#slots.find((slot) => slot.pending.size === 0);
    if (idle) return idle;
    if (this.#slots.length < this.#size) return this.#start();
    return this.#slots.reduce((a, b) => (b.pending.size < a.pending.size ? b : a));
  }

  #start(): Slot {
    const worker = new Worker(this.#script!);
    const slot: Slot = { worker, pending: new Map() };
    const failAll = (error: unknown): void => {
      for (const pending of slot.pending.values()) pending.reject(error);
      slot.pending.clear();
      const at = this.#slots.indexOf(slot);
      if (at >= 0) this.#slots.splice(at, 1);
    };
    worker.on('message', (reply: ExtractReply) => {
      const pending = slot.pending.get(reply.id);
      if (!pending) return;
      slot.pending.delete(reply.id);
      if (slot.pending.size === 0) {
        worker.unref();
        this.#whenIdle();
      }
      if ('error' in reply) pending.reject(rebuildError(reply.error));
      else pending.resolve(fromReply(reply));
    });
    worker.on('error', (error) => {
      log('extraction worker failed: %s', errorMessage(error));
      failAll(PrebuiltError.isInstance(error) ? error : new Error(`An extraction worker thread failed: ${errorMessage(error)}.`, { cause: error }));
    });
    worker.on('exit', (code) => failAll(new Error(`An extraction worker thread stopped (exit code ${code}) before it finished.`)));
    this.#slots.push(slot);
    this.#peak = Math.max(this.#peak, this.#slots.length);
    return slot;
  }
}

/** How long the process's pool keeps idle workers (a build's next env reuses them; a finished CLI does not wait for them). */
export const PROCESS_POOL_IDLE_MS = 2000;

let processPool: ExtractPool | undefined;

/**
 * The extraction pool every materialize of this process shares: at most {@link defaultWorkerCount}
 * workers however many envs are materialized at once; they stop after {@link PROCESS_POOL_IDLE_MS}
 * without work and start again on demand. Never closed: nothing of it keeps the process alive.
 */
export function processExtractPool(): ExtractPool {
  processPool ??= new ExtractPool({ idleMs: PROCESS_POOL_IDLE_MS });
  return processPool;
}

function fromReply(reply: Extract<ExtractReply, { info: unknown }>): PooledExtraction {
  // Structured clone makes Buffers plain Uint8Arrays: views again, no copy.
  const info = new Map(reply.info.map(([name, data]) => [name, Buffer.from(data.buffer, data.byteOffset, data.byteLength)]));
  return { info, entries: reply.entries, ...(reply.md5 ? { md5: reply.md5 } : {}) };
}

async function inThread(file: string, label: string, scratch: string, mtime: number | undefined, md5: boolean): Promise<PooledExtraction> {
  const [contents, digest] = await Promise.all([extractCondaPackage(file, label, scratch, mtime === undefined ? {} : { mtime }), md5 ? hashFile(file, 'md5') : undefined]);
  return digest ? { ...contents, md5: digest } : contents;
}
