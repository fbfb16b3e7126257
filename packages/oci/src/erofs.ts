import { execFile, spawn } from 'node:child_process';
import { Writable } from 'node:stream';
import { ConfigError } from '@prebuilt/core/backend';
import { atLeast } from './version.js';

/** The tool that turns a layer's tar into an EROFS image (erofs-utils). */
export const MKFS_EROFS = 'mkfs.erofs';

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
  /** The environment it runs in (PATH says which mkfs.erofs). */
  env: NodeJS.ProcessEnv;
  /** The version it reports, e.g. `1.8.6`. */
  version: string;
}

/** `mkfs.erofs (erofs-utils) 1.8.6` → `1.8.6` and [1, 8]; undefined when it names no version. */
export function parseMkfsErofsVersion(output: string): { version: string; majorMinor: [number, number] } | undefined {
  const match = /erofs-utils\)?\s+v?((\d+)\.(\d+)[0-9A-Za-z.+~-]*)/.exec(output);
  return match ? { version: match[1]!, majorMinor: [Number(match[2]), Number(match[3])] } : undefined;
}

/** Runs `mkfs.erofs --version` with `env`'s PATH; a ConfigError when it is missing, says no version, or is older than 1.8. */
export async function findMkfsErofs(env: Record<string, string | undefined>): Promise<MkfsErofs> {
  const runEnv: NodeJS.ProcessEnv = { ...process.env, ...(env['PATH'] === undefined ? {} : { PATH: env['PATH'] }) };
  const output = await new Promise<string>((resolve, reject) => {
    execFile(MKFS_EROFS, ['--version'], { env: runEnv, timeout: 30_000 }, (error, stdout, stderr) => {
      if (error && (error as NodeJS.ErrnoException).code === 'ENOENT') reject(missingTool());
      else if (error) reject(unusableTool(`'${MKFS_EROFS} --version' failed: ${lastLines(`${stderr}`) || error.message}`));
      else resolve(`${stdout}`);
    });
  });
  const parsed = parseMkfsErofsVersion(output);
  if (!parsed) throw unusableTool(`'${MKFS_EROFS} --version' printed no version ('${output.trim().split('\n')[0]}')`);
  if (!atLeast(parsed.majorMinor, MKFS_EROFS_SINCE)) {
    throw unusableTool(`the ${MKFS_EROFS} on PATH is erofs-utils ${parsed.version}, older than ${MKFS_EROFS_SINCE.join('.')} (it cannot read a tar with --tar=f)`);
  }
  return { env: runEnv, version: parsed.version };
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

/** The last few non-empty lines of a tool's output (an error's detail). */
function lastLines(text: string, count = 5): string {
  return text.trim().split('\n').map((l) => l.trim()).filter(Boolean).slice(-count).join(' | ');
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

/** Starts mkfs.erofs writing the EROFS image of the tar it reads on stdin to `file`; the signal kills it. `label` names the layer in errors. */
export function startMkfsErofs(mkfs: MkfsErofs, file: string, label: string, signal?: AbortSignal): MkfsErofsRun {
  const child = spawn(MKFS_EROFS, [...MKFS_EROFS_OPTIONS, file], { env: mkfs.env, stdio: ['pipe', 'ignore', 'pipe'], ...(signal ? { signal } : {}) });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-4096);
  });
  const done = new Promise<void>((resolve, reject) => {
    child.on('error', (error: NodeJS.ErrnoException) => {
      reject(error.code === 'ENOENT' ? missingTool() : error);
    });
    child.on('close', (code, killed) => {
      if (code === 0) resolve();
      else reject(new Error(`${MKFS_EROFS} ${mkfs.version} failed making ${label} (${code === null ? `killed by ${killed}` : `exit ${code}`}): ${lastLines(stderr) || 'it printed nothing'}`));
    });
  });
  let exited = false;
  child.on('exit', () => (exited = true));
  // Its stdin closing early (mkfs.erofs failed: EPIPE) is not the tar's failure; `done` has the reason.
  child.stdin.on('error', () => undefined);
  const stdin = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      if (exited || child.stdin.destroyed) callback();
      else child.stdin.write(chunk, () => callback());
    },
    final(callback) {
      child.stdin.end();
      callback();
    },
    destroy(error, callback) {
      child.stdin.destroy();
      callback(error);
    },
  });
  return { stdin, done, kill: () => child.kill('SIGKILL') };
}
