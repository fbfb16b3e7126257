import { spawn } from 'node:child_process';
import { open, rm, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { Writable } from 'node:stream';
import { ConfigError, ProgramRunError, elapsedNow, lastLines, outputDrained, programPath, runProgram } from '@prebuilt/core/backend';
import { atLeast } from './version.js';

/** The tool that turns a layer's tar into an EROFS image (erofs-utils). */
const MKFS_EROFS = 'mkfs.erofs';

/** erofs-utils ≥ 1.8: the first release whose mkfs.erofs reads a full tar (`--tar=f`) from stdin with these options. */
export const MKFS_EROFS_SINCE = [1, 8] as const;

/**
 * mkfs.erofs's options for an env layer: the tar read in full from stdin, lz4 in 256 KiB physical
 * clusters (what the kernel decompresses on a read), build time 0 and the files' own mtimes, a
 * zero UUID, nothing on stdout. With these the image is a function of the tar and the mkfs.erofs
 * version (checked: byte-identical across runs of 1.8.6, and of 1.9.4; 1.9.4 writes some layers
 * differently from 1.8.6, hence the version in the layer cache's format id).
 */
export const MKFS_EROFS_OPTIONS = ['--tar=f', '-zlz4', '-C262144', '-T0', '--mkfs-time', '-Uclear', '--quiet'] as const;

/** How to install a mkfs.erofs that builds these layers. */
const INSTALL_HINT =
  "Install erofs-utils ≥ 1.8 on the machine that builds the images: 'apt-get install erofs-utils' on Debian ≥ 13 or Ubuntu ≥ 24.10, else build erofs-utils ≥ 1.8 from source (https://github.com/erofs/erofs-utils) and put mkfs.erofs on PATH.";

/** The mkfs.erofs a build runs: its PATH and version. */
export interface MkfsErofs {
  /** The environment it runs in (PATH says which mkfs.erofs); only {@link TOOL_ENV}'s variables of it are passed on. */
  env: NodeJS.ProcessEnv;
  /** The version it reports, e.g. `1.8.6`. */
  version: string;
  /** Its file, found in the absolute directories of `env`'s PATH; default: looked up there when it runs. */
  path?: string;
  /** How long it may stall and how much disk its image may take (default {@link MKFS_EROFS_LIMITS}). */
  limits?: MkfsErofsLimits;
}

/**
 * The only variables of the environment mkfs.erofs gets: which one runs (and the libraries of one
 * built into its own prefix), where its temp files go, the locale of its messages. Nothing else (registry passwords, cloud keys) is its business, so
 * nothing else can end up in its output, which errors quote.
 */
const TOOL_ENV = ['PATH', 'LD_LIBRARY_PATH', 'TMPDIR', 'LANG', 'LC_ALL', 'LC_CTYPE', 'LC_MESSAGES'] as const;

function toolEnv(env: Record<string, string | undefined>): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const key of TOOL_ENV) if (env[key] !== undefined) out[key] = env[key];
  return out;
}

/** Bounds on one mkfs.erofs run. */
export interface MkfsErofsLimits {
  /** How long it may take none of the tar and leave its image unchanged while the build waits on it (ms); then it is killed. */
  silenceMs: number;
  /** How often its image is looked at (ms). */
  pollMs: number;
  /** Disk its image may take beyond 4x the tar sent so far (bytes); more and it is killed (see {@link maxErofsImageBytes}). */
  imageSlackBytes: number;
  /**
   * The slowest it may finish once the tar is sent: `silenceMs` plus the tar's size at this rate
   * (bytes a second); later and it is killed, busy or not (one that keeps rewriting its image would
   * never be silent).
   */
  finishBytesPerSecond: number;
}

/**
 * Ten minutes of silence (a real mkfs.erofs is never idle that long), a look each second, 256 MiB of
 * slack, and 1 MiB a second to finish (mkfs.erofs makes lz4 images at tens to hundreds of MiB a second).
 */
const MKFS_EROFS_LIMITS: MkfsErofsLimits = { silenceMs: 10 * 60_000, pollMs: 1000, imageSlackBytes: 256 << 20, finishBytesPerSecond: 1 << 20 };

/**
 * The most disk the image of `tarBytes` of tar may take: 4x and the slack. An EROFS image is
 * smaller than its tar, but while it works mkfs.erofs keeps the tar's data in the image file
 * (~1.5x the tar on disk seen, then truncated); past this bound it is writing garbage.
 */
export function maxErofsImageBytes(tarBytes: number, slackBytes = MKFS_EROFS_LIMITS.imageSlackBytes): number {
  return 4 * tarBytes + slackBytes;
}

/** The EROFS superblock's magic (little-endian at byte 1024 of an image). */
const EROFS_MAGIC = 0xe0f5e1e2;
const EROFS_SUPERBLOCK_OFFSET = 1024;

/**
 * `mkfs.erofs (erofs-utils) 1.8.6` → `1.8.6` and [1, 8]; undefined when it names no version. The
 * banner of erofs-utils before 1.6 (`mkfs.erofs 1.5` at the start of a line: Debian 12's, which
 * has no `--version` and prints it before refusing the option) names one too.
 */
export function parseMkfsErofsVersion(output: string): { version: string; majorMinor: [number, number] } | undefined {
  // At most 64 characters of version: it names the layer cache's directory (erofsFormatId).
  const match = /(?:erofs-utils\)?|^mkfs\.erofs)[ \t]+v?((\d{1,9})\.(\d{1,9})[0-9A-Za-z.+~-]{0,48})(?![0-9A-Za-z.+~-])/m.exec(output);
  // The pattern alone lets 9 + 1 + 9 + 48 = 67 through.
  if (!match || match[1]!.length > MAX_VERSION_CHARS) return undefined;
  return { version: match[1]!, majorMinor: [Number(match[2]), Number(match[3])] };
}

/** The longest version taken from `--version` (see {@link parseMkfsErofsVersion}). */
const MAX_VERSION_CHARS = 64;

/** Runs `mkfs.erofs --version` with `env`'s PATH; a ConfigError when it is missing, says no version, is older than 1.8, or does not answer within `timeoutMs` (default 30 s). */
export async function findMkfsErofs(env: Record<string, string | undefined>, options: { timeoutMs?: number } = {}): Promise<MkfsErofs> {
  const runEnv = toolEnv({ ...process.env, ...(env['PATH'] === undefined ? {} : { PATH: env['PATH'] }) });
  const timeoutMs = options.timeoutMs ?? 30_000;
  const result = await runVersion(runEnv, timeoutMs);
  if ('missing' in result) throw missingTool();
  if (result.timedOut) throw unusableTool(`'${MKFS_EROFS} --version' did not answer within ${timeoutMs / 1000} s (killed)`);
  const output = result.stdout;
  const parsed = parseMkfsErofsVersion(output);
  // Said first, whatever the exit: erofs-utils before 1.6 prints its version, then refuses --version (exit 1, its usage on stderr).
  if (parsed && !atLeast(parsed.majorMinor, MKFS_EROFS_SINCE)) {
    throw unusableTool(`the ${MKFS_EROFS} on PATH is erofs-utils ${parsed.version}, older than ${MKFS_EROFS_SINCE.join('.')} (it cannot read a tar with --tar=f)`);
  }
  if (result.code !== 0) throw unusableTool(`'${MKFS_EROFS} --version' failed: ${outputTail(result.stderr) || (result.code === null ? 'it was killed' : `exit ${result.code}`)}`);
  if (!parsed) throw unusableTool(`'${MKFS_EROFS} --version' printed no version ('${clip(output.trim().split('\n')[0] ?? '')}')`);
  return { env: runEnv, version: parsed.version, path: result.path };
}

/** What `--version` prints is kept to this much of each stream. */
const VERSION_OUTPUT_BYTES = 64 << 10;

/**
 * `mkfs.erofs --version`, bounded (core's runProgram): its output kept to 64 KiB a stream, killed
 * (SIGKILL) after `timeoutMs`, settled once it has exited even when a child of it holds its output open.
 */
async function runVersion(env: NodeJS.ProcessEnv, timeoutMs: number): Promise<{ missing: true } | { path: string; code: number | null; timedOut: boolean; stdout: string; stderr: string }> {
  const path = mkfsErofsPath(env);
  if (path === undefined) return { missing: true };
  // As printed: the error quotes a bounded part of a first line longer than the bound.
  const bound = { head: VERSION_OUTPUT_BYTES, wholeLines: false };
  try {
    const result = await runProgram(path, ['--version'], { env, stdout: bound, stderr: bound, timeoutMs, killSignal: 'SIGKILL' });
    return { path, code: result.code, timedOut: false, stdout: result.stdout.text, stderr: result.stderr.text };
  } catch (error) {
    if (!ProgramRunError.isInstance(error)) throw error;
    if (error.reason === 'timed-out') return { path, code: null, timedOut: true, stdout: '', stderr: '' };
    if (error.errno === 'ENOENT') return { missing: true };
    // On PATH but not runnable (EACCES: no execute permission): the tool is unusable, exit 2 as any other reason.
    throw unusableTool(`'${MKFS_EROFS} --version' could not be run: ${(error.cause as Error).message}`);
  }
}

/**
 * mkfs.erofs's file in the absolute directories of `env`'s PATH (core's programPath): a ConfigError
 * when it is found only through an empty or relative entry (the current directory); undefined when missing.
 */
function mkfsErofsPath(env: Record<string, string | undefined>): string | undefined {
  return programPath(MKFS_EROFS, { env, what: `erofs layers were asked for, but ${MKFS_EROFS}` });
}

function missingTool(): ConfigError {
  return new ConfigError(`erofs layers were asked for, but there is no ${MKFS_EROFS} on PATH: the oci build service makes each EROFS layer with it.`, {
    setting: 'METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION',
    hint: INSTALL_HINT,
  });
}

function unusableTool(why: string): ConfigError {
  return new ConfigError(`erofs layers were asked for, but ${why}.`, { setting: 'METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION', hint: INSTALL_HINT });
}

/** The last few non-empty lines of a tool's output on one line (an error's detail), at most 1000 characters. */
function outputTail(text: string, count = 5): string {
  const lines = lastLines(text, count, ' | ');
  return lines.length > 1000 ? `…${lines.slice(-1000)}` : lines;
}

/** A line of a tool's output quoted in a message: at most 200 characters. */
function clip(line: string): string {
  return line.length > 200 ? `${line.slice(0, 200)}…` : line;
}

/**
 * Names the byte format of this mkfs.erofs's layers (a directory name): the options and the
 * version, so a layer made by another version or other options is never taken for one of these.
 */
export function erofsFormatId(baseId: string, mkfs: MkfsErofs): string {
  return `${baseId}-mkfs${mkfs.version.replace(/[^0-9A-Za-z.+-]/g, '_')}`;
}

/**
 * A mkfs.erofs at work: write the tar to `stdin`; `done` settles when the image is complete (or
 * rejects with its stderr's last lines). `stdin` never fails because mkfs.erofs quit early (what
 * it is sent then is dropped): a failure writing the tar is the tar's own, mkfs.erofs's is `done`'s.
 */
export interface MkfsErofsRun {
  stdin: Writable;
  done: Promise<void>;
  /** Stops it (the tar could not be written: erofs-utils before 1.9.1 can spin on a closed stdin). */
  kill: () => void;
}

/**
 * Starts mkfs.erofs writing the EROFS image of the tar it reads on stdin to `file`; the signal kills
 * it. `label` names the layer in errors. Bounded: killed (SIGKILL, which it cannot ignore) when it
 * stalls for `limits.silenceMs` while the build waits on it (a write of the tar it does not take, or
 * the end of the tar) with its image unchanged, when its image takes more disk than
 * {@link maxErofsImageBytes} of the tar sent, or when it has not finished `limits.silenceMs` plus
 * the tar's size at `limits.finishBytesPerSecond` after the end of the tar; its stderr is kept to the last 4 KiB; once it has exited,
 * a child of it left holding its stderr does not keep `done` waiting. `done` checks that what it
 * wrote is an EROFS image (the superblock's magic) of at most that bound.
 */
export function startMkfsErofs(mkfs: MkfsErofs, file: string, label: string, signal?: AbortSignal): MkfsErofsRun {
  const limits = mkfs.limits ?? MKFS_EROFS_LIMITS;
  // No `signal` option: Node would report the abort at once and leave the process to die (or not)
  // on SIGTERM; here the abort kills it and `done` waits for it to be gone.
  // Absolute: a relative path starting with '-' (a TMPDIR of '-x') would be read as an option.
  const path = mkfs.path ?? mkfsErofsPath(mkfs.env);
  if (path === undefined) throw missingTool();
  const child = spawn(path, [...MKFS_EROFS_OPTIONS, resolve(file)], { env: toolEnv(mkfs.env), stdio: ['pipe', 'ignore', 'pipe'] });
  const tool = `${MKFS_EROFS} ${mkfs.version}`;
  let stderr = '';
  let exited = false;
  const kill = (): void => {
    if (!exited) child.kill('SIGKILL');
  };
  const watch = new MkfsWatch(file, limits, () => {
    if (!exited) kill();
    return !exited;
  });
  const onAbort = (): void => kill();
  signal?.addEventListener('abort', onAbort, { once: true });
  if (signal?.aborted) kill();

  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-4096);
    watch.progress();
  });

  const done = new Promise<void>((resolve, reject) => {
    let settled = false;
    const settle = (error: unknown): void => {
      if (settled) return;
      settled = true;
      watch.close();
      signal?.removeEventListener('abort', onAbort);
      if (error === undefined) resolve();
      else reject(error);
    };
    child.on('error', (error: NodeJS.ErrnoException) => {
      settle(error.code === 'ENOENT' ? missingTool() : error);
    });
    // 'exit', not 'close': a child of it holding its stderr open must not keep the layer waiting.
    child.on('exit', (code, killedBy) => {
      exited = true;
      watch.close();
      void outputDrained(child.stderr).then(async () => {
        if (signal?.aborted) return settle(signal.reason ?? new Error('aborted'));
        if (watch.stopped !== undefined) {
          await rm(file, { force: true }).catch(() => undefined);
          return settle(new Error(`${tool} was stopped making ${label}: ${watch.stopped}. ${STALLED_HINT}${detail(stderr)}`));
        }
        if (code !== 0) return settle(new Error(`${tool} failed making ${label} (${code === null ? `killed by ${killedBy}` : `exit ${code}`}): ${outputTail(stderr) || 'it printed nothing'}`));
        settle(await checkImage(file, tool, label, maxErofsImageBytes(watch.sent, limits.imageSlackBytes)).catch((error: unknown) => error));
      });
    });
  });
  return { stdin: tarInput(child.stdin, watch, () => exited), done, kill };
}

/**
 * The stream the tar is written to: it passes the tar on to mkfs.erofs's stdin, telling `watch` when
 * the build waits on it. Its stdin closing early (mkfs.erofs failed: EPIPE) is not the tar's failure
 * (`done` has the reason): what is written after mkfs.erofs has exited is dropped.
 */
function tarInput(stdin: Writable, watch: MkfsWatch, exited: () => boolean): Writable {
  stdin.on('error', () => undefined);
  return new Writable({
    write(chunk: Buffer, _encoding, callback) {
      if (exited() || stdin.destroyed) return callback();
      watch.sending(chunk.length);
      stdin.write(chunk, () => {
        watch.taken();
        callback();
      });
    },
    final(callback) {
      // The tar is complete: from now on the build waits on mkfs.erofs alone.
      watch.ended();
      stdin.end();
      callback();
    },
    destroy(error, callback) {
      stdin.destroy();
      callback(error);
    },
  });
}

/**
 * The bounds of one mkfs.erofs run (see {@link startMkfsErofs}): what it has been sent, whether the
 * build waits on it, and, looking at its image every `limits.pollMs`, why it was stopped. `kill`
 * kills it, and says whether it did (not once it has exited).
 */
// Its times are elapsed time (core's `elapsedNow`, monotonic): a step of the wall clock (NTP,
// `date -s`) forward stopped a healthy mkfs.erofs as silent, back let a hung one run on.
class MkfsWatch {
  /** Bytes of the tar sent so far. */
  sent = 0;
  /** Why the bounds stopped it, once they did. */
  stopped: string | undefined;
  /** Since when the build has been waiting on it (a write it has not taken, or the end of the tar); undefined while it is not. */
  #waitingSince: number | undefined;
  /** When the whole tar had been sent. */
  #endedAt: number | undefined;
  #lastProgress = elapsedNow();
  #lastBlocks = -1;
  #looking = false;
  readonly #timer: NodeJS.Timeout;
  readonly #file: string;
  readonly #limits: MkfsErofsLimits;
  readonly #kill: () => boolean;

  constructor(file: string, limits: MkfsErofsLimits, kill: () => boolean) {
    this.#file = file;
    this.#limits = limits;
    this.#kill = kill;
    this.#timer = setInterval(() => this.#look(), limits.pollMs);
    this.#timer.unref();
  }

  /** It wrote to its stderr. */
  progress(): void {
    this.#lastProgress = elapsedNow();
  }

  /** `bytes` more of the tar are being written to it: the build waits until it takes them. */
  sending(bytes: number): void {
    this.sent += bytes;
    this.#waitingSince = elapsedNow();
  }

  /** It took what was written. */
  taken(): void {
    this.#waitingSince = undefined;
  }

  /** The whole tar was sent: the build waits on it alone. */
  ended(): void {
    this.#waitingSince = elapsedNow();
    this.#endedAt = this.#waitingSince;
  }

  close(): void {
    clearInterval(this.#timer);
  }

  #stop(why: string): void {
    if (this.stopped === undefined && this.#kill()) this.stopped = why;
  }

  #look(): void {
    if (this.#looking) return;
    this.#looking = true;
    void stat(this.#file)
      .then((s) => this.#sized(s.blocks), () => undefined)
      .finally(() => {
        this.#looking = false;
        this.#timed();
      });
  }

  /** Its image takes `blocks` of disk: blocks, not the size — mkfs.erofs sizes its image sparse (terabytes) while it works. */
  #sized(blocks: number): void {
    const bytes = blocks * 512;
    const max = maxErofsImageBytes(this.sent, this.#limits.imageSlackBytes);
    if (bytes > max) this.#stop(`its image took ${bytes} bytes of disk from a tar of ${this.sent} bytes (at most ${max})`);
    if (blocks !== this.#lastBlocks) {
      this.#lastBlocks = blocks;
      this.#lastProgress = elapsedNow();
    }
  }

  #timed(): void {
    if (this.#waitingSince === undefined) return;
    const { silenceMs, finishBytesPerSecond } = this.#limits;
    if (elapsedNow() - Math.max(this.#lastProgress, this.#waitingSince) > silenceMs) this.#stop(`it made no progress for ${silenceMs / 1000} s (it took none of the tar and its image did not change)`);
    if (this.#endedAt !== undefined) {
      const allowedMs = silenceMs + (this.sent / finishBytesPerSecond) * 1000;
      if (elapsedNow() - this.#endedAt > allowedMs) this.#stop(`it did not finish within ${Math.round(allowedMs / 1000)} s of the end of a tar of ${this.sent} bytes`);
    }
  }
}

const STALLED_HINT = 'Check the mkfs.erofs on PATH (erofs-utils ≥ 1.8) and the disk of the temporary directory, then build again';

function detail(stderr: string): string {
  const lines = outputTail(stderr);
  return lines ? `; its last output: ${lines}` : '.';
}

/** What mkfs.erofs left at `file` after exiting 0: an EROFS image (its superblock's magic) of at most `max` bytes; else why not. */
async function checkImage(file: string, tool: string, label: string, max: number): Promise<undefined> {
  const wrongly = (why: string): Error =>
    new Error(`${tool} exited 0 making ${label} but wrote no EROFS image (${why}). Check the mkfs.erofs on PATH (erofs-utils ≥ 1.8), then build again.`);
  const handle = await open(file, 'r').catch((error: NodeJS.ErrnoException) => {
    throw error.code === 'ENOENT' ? wrongly(`no file at ${file}`) : error;
  });
  try {
    const { size } = await handle.stat();
    if (size > max) throw wrongly(`${file} is ${size} bytes, more than ${max} for its tar`);
    const magic = Buffer.alloc(4);
    const { bytesRead } = await handle.read(magic, 0, 4, EROFS_SUPERBLOCK_OFFSET);
    if (bytesRead < 4 || magic.readUInt32LE(0) !== EROFS_MAGIC) throw wrongly(`no EROFS superblock in ${file}`);
  } finally {
    await handle.close();
  }
  return undefined;
}
