/**
 * The lock file: `<flow file stem>.prebuilt.lock` beside the flow.
 *
 * JSON, 2-space indent, object keys sorted, packages in a fixed order, a trailing newline — so the
 * same inputs give byte-identical files and a change shows as a small diff. One entry per unique
 * env and platform (keyed by its specHash and what it was resolved with) plus the step → env map.
 * Written atomically (temp file + rename). Two formats, chosen by content so a single-platform lock
 * stays readable by prebuilt versions that know only version 1: version 1 (every step on one
 * platform: `steps.<step>` → entry) and version 2 (a multi-platform lock: `steps.<step>.<platform>`
 * → entry). In memory every step maps platform → entry.
 */
import { basename, dirname, extname, join } from 'node:path';
import { writeFileAtomic } from './atomic-write.js';
import type { CondaPlatform, EnvRequest, LockedEnv, LockedPackage, ResolvedWith } from './env-model.js';
import { InputError, errorMessage } from './errors.js';
import { canonicalJson, sha256Hex, stableJson } from './identity.js';
import { fileUrlInsideSources, LocalSourceRoots, localSourceUrls } from './local-source.js';
import { redactUrl } from './net/url-credentials.js';
import { readRegularFile } from './regular-file.js';
import { oneLineText } from './terminal-text.js';
import { fileArgument } from './shell-word.js';

export type { EnvPins, ResolvedWith } from './env-model.js';

/** The newest format version of the lock file (see the module comment); a file with another is stale. */
export const LOCK_FILE_VERSION = 2;

export type LockFileVersion = 1 | typeof LOCK_FILE_VERSION;

/** A step's locked envs: platform → lockKey, one per target platform. */
export type StepLocks = Partial<Record<CondaPlatform, string>>;

/** One locked env in the lock file. */
export interface LockEntry extends LockedEnv {
  resolvedWith: ResolvedWith;
}

export interface LockFile {
  /** 1 when every step has one platform, else 2 (see {@link lockFileVersion}). */
  lockVersion: LockFileVersion;
  /** The flow file's base name. */
  flow: string;
  /** lockKey (see {@link lockKey}) → locked env (one platform's). */
  envs: Record<string, LockEntry>;
  /** step name → platform → lockKey, or null for a step whose env is disabled. */
  steps: Record<string, StepLocks | null>;
}

/**
 * The key of a locked env in the lock file: 16 hex of a sha256 over its specHash and what it was
 * resolved with. Usually one per specHash; a @conda and a @pypi step with equal requests get
 * different pins (conda vs PyPI `requests`), hence different keys.
 */
export function lockKey(specHashValue: string, resolvedWith: ResolvedWith): string {
  return sha256Hex(canonicalJson({ specHash: specHashValue, resolvedWith })).slice(0, 16);
}

/** `<dir>/<stem>.prebuilt.lock` for `<dir>/<stem>.py`. */
export function lockFilePath(flowFile: string): string {
  const name = basename(flowFile);
  const ext = extname(name);
  return join(dirname(flowFile), `${ext ? name.slice(0, -ext.length) : name}.prebuilt.lock`);
}

/** Conda packages first, then wheels; each group by name, then url. */
export function comparePackages(a: LockedPackage, b: LockedPackage): number {
  if (a.kind !== b.kind) return a.kind === 'conda' ? -1 : 1;
  if (a.name !== b.name) return a.name < b.name ? -1 : 1;
  return a.url < b.url ? -1 : a.url > b.url ? 1 : 0;
}

/** A package as the lock file records it (only the known fields). */
export function packageRecord(p: LockedPackage): LockedPackage {
  return {
    kind: p.kind,
    name: p.name,
    version: p.version,
    build: p.build,
    url: p.url,
    sha256: p.sha256,
    size: p.size,
    filename: p.filename,
    ...(p.subdir !== undefined ? { subdir: p.subdir } : {}),
    ...(p.directUrl !== undefined ? { directUrl: { requiredBy: [...p.directUrl.requiredBy].sort() } } : {}),
  };
}

/** The format a lock is written in: 1 when every step has (at most) one platform, else 2. */
export function lockFileVersion(steps: LockFile['steps']): LockFileVersion {
  return Object.values(steps).some((locks) => locks !== null && Object.keys(locks).length > 1) ? LOCK_FILE_VERSION : 1;
}

/** The platforms a lock was made for, in {@link CONDA_PLATFORMS} order; empty when no step has an env. */
export function lockPlatforms(lock: LockFile): CondaPlatform[] {
  const found = new Set(Object.values(lock.steps).flatMap((locks) => Object.keys(locks ?? {})));
  return PLATFORMS.filter((p) => found.has(p)) as CondaPlatform[];
}

/** The exact text of a lock file (deterministic for equal content; its format by {@link lockFileVersion}). */
export function serializeLockFile(lock: LockFile): string {
  const envs: Record<string, LockEntry> = {};
  for (const [hash, entry] of Object.entries(lock.envs)) {
    envs[hash] = { ...entry, packages: entry.packages.map(packageRecord).sort(comparePackages) };
  }
  const lockVersion = lockFileVersion(lock.steps);
  const steps =
    lockVersion === 1
      ? Object.fromEntries(Object.entries(lock.steps).map(([step, locks]) => [step, locks === null ? null : (Object.values(locks)[0] ?? null)]))
      : lock.steps;
  return `${stableJson({ ...lock, lockVersion, envs, steps })}\n`;
}

// ---------------------------------------------------------------------------------------------
// Reading with validation

class Invalid extends Error {}

function expectObject(value: unknown, where: string): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new Invalid(`${where} is not an object`);
  return value as Record<string, unknown>;
}
function expectString(value: unknown, where: string): string {
  if (typeof value !== 'string') throw new Invalid(`${where} is not a string`);
  return value;
}
function expectStringMap(value: unknown, where: string): Record<string, string> {
  const obj = expectObject(value, where);
  for (const [k, v] of Object.entries(obj)) expectString(v, `${where}.${k}`);
  return obj as Record<string, string>;
}
const PLATFORMS: readonly string[] = ['linux-64', 'linux-aarch64'];
function expectPlatform(value: unknown, where: string): CondaPlatform {
  const s = expectString(value, where);
  if (!PLATFORMS.includes(s)) throw new Invalid(`${where} is '${s}', not one of ${PLATFORMS.join(', ')}`);
  return s as CondaPlatform;
}

function validateRequest(value: unknown, where: string): EnvRequest {
  const r = expectObject(value, where);
  const channels = r.channels;
  if (!Array.isArray(channels)) throw new Invalid(`${where}.channels is not a list`);
  channels.forEach((c, i) => expectString(c, `${where}.channels[${i}]`));
  if (r.indexUrl !== null) expectString(r.indexUrl, `${where}.indexUrl`);
  return {
    python: expectString(r.python, `${where}.python`),
    conda: expectStringMap(r.conda, `${where}.conda`),
    pypi: expectStringMap(r.pypi, `${where}.pypi`),
    channels: channels as string[],
    indexUrl: r.indexUrl as string | null,
    platform: expectPlatform(r.platform, `${where}.platform`),
  };
}

function validatePackage(value: unknown, where: string): LockedPackage {
  const p = expectObject(value, where);
  if (p.kind !== 'conda' && p.kind !== 'pypi') throw new Invalid(`${where}.kind is not 'conda' or 'pypi'`);
  const sha256 = expectString(p.sha256, `${where}.sha256`);
  if (!/^[0-9a-f]{64}$/.test(sha256)) throw new Invalid(`${where}.sha256 is not a hex sha256`);
  if (typeof p.size !== 'number' || !Number.isSafeInteger(p.size) || p.size < 0) {
    throw new Invalid(`${where}.size is not a byte count`);
  }
  return {
    kind: p.kind,
    name: expectString(p.name, `${where}.name`),
    version: expectString(p.version, `${where}.version`),
    build: expectString(p.build, `${where}.build`),
    url: expectString(p.url, `${where}.url`),
    sha256,
    size: p.size,
    filename: expectString(p.filename, `${where}.filename`),
    ...(p.subdir !== undefined ? { subdir: expectString(p.subdir, `${where}.subdir`) } : {}),
    ...(p.directUrl !== undefined ? { directUrl: validateDirectUrl(p.directUrl, `${where}.directUrl`) } : {}),
  };
}

function validateDirectUrl(value: unknown, where: string): { requiredBy: string[] } {
  const d = expectObject(value, where);
  if (!Array.isArray(d.requiredBy)) throw new Invalid(`${where}.requiredBy is not a list`);
  return { requiredBy: d.requiredBy.map((name, i) => expectString(name, `${where}.requiredBy[${i}]`)) };
}

/** What an error quotes of a lock's name or file name at most (a lock file, 256 MB at most, holds any length). */
const QUOTED_MAX = 100;
/** What an error quotes of a lock's URL at most. */
const QUOTED_URL_MAX = 300;
const quoted = (text: string): string => oneLineText(text, QUOTED_MAX);
/** A lock's URL as an error quotes it: its secrets hidden, on one line, cut. */
const quotedUrl = (url: string): string => oneLineText(redactUrl(url), QUOTED_URL_MAX);

/**
 * A package not at an http(s) URL — a `file:` URL naming a file of the machine that builds — is
 * locked only from a local source the env names, and only inside it (checked by {@link checkLocalFiles}, symlinks resolved): a wheel inside the env's PyPI
 * index when that is a `file:` index, a conda package inside one of its `file:` channels
 * (METAFLOW_PREBUILT_CONDA_CHANNELS or a decorator's `file:///…::name`). A lock (a cloned flow's,
 * committed) naming `file:///home/u/.docker/config.json` read that file into the package cache and
 * the image. This check needs no file system: a `file:` URL with no local source of its kind at all.
 */
function checkLocalUrls(request: EnvRequest, packages: readonly LockedPackage[], where: string): void {
  packages.forEach((p, i) => {
    if (/^https?:\/\//i.test(p.url) || (/^file:/i.test(p.url) && localSourceUrls(request, p.kind).length > 0)) return;
    if (p.kind === 'pypi') {
      const index = request.indexUrl === null ? "pip's configured index" : `the index ${quotedUrl(request.indexUrl)}`;
      throw new Invalid(
        `${where}.packages[${i}] locks the wheel ${quoted(p.filename)} at ${quotedUrl(p.url)}, which is not an http(s) URL, but the env's PyPI packages come from ${index}, not a file: index; only a file: index names files on this machine`,
      );
    }
    throw new Invalid(
      `${where}.packages[${i}] locks the conda package ${quoted(p.filename)} at ${quotedUrl(p.url)}, which is not an http(s) URL and not under a file: channel of the env; only a file: channel names files on this machine`,
    );
  });
}

/**
 * Every `file:` URL of the lock, symlinks resolved, inside a local source of its env (see
 * {@link checkLocalUrls}); realpath only, no file is opened. A symlink in the index pointing out
 * (`simple/foo/foo-1.0-py3-none-any.whl -> /root/.docker/config.json`), or an index directory
 * reached through a symlink, is judged by where it really is.
 */
async function checkLocalFiles(lock: LockFile, file: string, shown: string): Promise<void> {
  // Each source directory resolved once for the whole lock, not once per package.
  const roots = new LocalSourceRoots();
  for (const entry of Object.values(lock.envs)) {
    for (const p of entry.packages) {
      if (!/^file:/i.test(p.url)) continue;
      const sources = localSourceUrls(entry.request, p.kind);
      if (await fileUrlInsideSources(p.url, sources, roots)) continue;
      const what = p.kind === 'pypi' ? `the wheel ${quoted(p.filename)} (${quoted(p.name)})` : `the conda package ${quoted(p.filename)} (${quoted(p.name)})`;
      const source = p.kind === 'pypi' ? 'file: index' : 'file: channels';
      throw new InputError(
        `Lock file ${shown} locks ${what} at ${quotedUrl(p.url)}, which is not inside the env's ${source} ${sources.map(quotedUrl).join(', ')} (by the path it names, \`..\` and symlinks resolved); refusing to read it.`,
        {
          file,
          hint: `Re-create the lock with \`prebuilt lock --update ${flowOf(file)}\` (it replaces the file); if that file is meant to be used, put it inside the index or channel, or configure the one that holds it (METAFLOW_PREBUILT_PYPI_INDEX_URL, METAFLOW_PREBUILT_CONDA_CHANNELS) and re-lock.`,
        },
      );
    }
  }
}

function validateEntry(value: unknown, where: string): LockEntry {
  const e = expectObject(value, where);
  const packages = e.packages;
  if (!Array.isArray(packages)) throw new Invalid(`${where}.packages is not a list`);
  const resolvedWith = expectObject(e.resolvedWith, `${where}.resolvedWith`);
  const pins = expectObject(resolvedWith.pins, `${where}.resolvedWith.pins`);
  const request = validateRequest(e.request, `${where}.request`);
  const locked = packages.map((p, i) => validatePackage(p, `${where}.packages[${i}]`));
  checkLocalUrls(request, locked, where);
  return {
    specHash: expectString(e.specHash, `${where}.specHash`),
    request,
    platform: expectPlatform(e.platform, `${where}.platform`),
    pythonVersion: expectString(e.pythonVersion, `${where}.pythonVersion`),
    packages: locked,
    resolvedWith: {
      pins: {
        conda: expectStringMap(pins.conda, `${where}.resolvedWith.pins.conda`),
        pypi: expectStringMap(pins.pypi, `${where}.resolvedWith.pins.pypi`),
      },
      glibc: expectString(resolvedWith.glibc, `${where}.resolvedWith.glibc`),
    },
  };
}

/** The flow file a lock file belongs to, for the hints. */
function flowOf(lockFile: string): string {
  return fileArgument(basename(lockFile).replace(/\.prebuilt\.lock$/, '.py'));
}

/** How to get past a lock file this prebuilt cannot use; it is never replaced without being asked. */
function corruptLockHint(file: string): string {
  return `Restore it from version control, or re-create it with \`prebuilt lock --update ${flowOf(file)}\` (it replaces the file; lock, plan, build and run never overwrite it on their own).`;
}

/** Checks the shape of parsed lock-file JSON. Throws InputError naming `file` when it is invalid. */
function validateLockFile(value: unknown, file: string, shown: string): LockFile {
  try {
    const root = expectObject(value, 'the file');
    if (typeof root.lockVersion === 'number' && Number.isInteger(root.lockVersion) && root.lockVersion > LOCK_FILE_VERSION) {
      throw new InputError(
        `Lock file ${shown} has lockVersion ${root.lockVersion}, written by a newer prebuilt; this prebuilt reads versions 1 and ${LOCK_FILE_VERSION}.`,
        { file, hint: `Upgrade prebuilt, or re-create the lock with this version: \`prebuilt lock --update ${flowOf(file)}\` (it replaces the file).` },
      );
    }
    if (root.lockVersion !== LOCK_FILE_VERSION && root.lockVersion !== 1) {
      throw new Invalid(`lockVersion is ${JSON.stringify(root.lockVersion)}, this prebuilt reads versions 1 and ${LOCK_FILE_VERSION}`);
    }
    const envs: Record<string, LockEntry> = {};
    for (const [key, entry] of Object.entries(expectObject(root.envs, 'envs'))) {
      const e = validateEntry(entry, `envs.${key}`);
      if (lockKey(e.specHash, e.resolvedWith) !== key) {
        throw new Invalid(`envs.${key} does not match its specHash and resolvedWith (edited by hand?)`);
      }
      envs[key] = e;
    }
    const steps: Record<string, StepLocks | null> = {};
    for (const [step, value] of Object.entries(expectObject(root.steps, 'steps'))) {
      if (value === null) {
        steps[step] = null;
        continue;
      }
      // Version 1: step → lockKey of its one platform's env.
      const byPlatform = root.lockVersion === 1 && typeof value === 'string' && value in envs ? { [envs[value]!.platform]: value } : value;
      if (root.lockVersion === 1 && byPlatform === value) throw new Invalid(`steps.${step} names no env of this file`);
      const locks = expectObject(byPlatform, `steps.${step}`);
      if (Object.keys(locks).length === 0) throw new Invalid(`steps.${step} names no platform`);
      for (const [platform, key] of Object.entries(locks)) {
        expectPlatform(platform, `a platform of steps.${step}`);
        if (typeof key !== 'string' || !(key in envs)) throw new Invalid(`steps.${step}.${platform} names no env of this file`);
        if (envs[key]!.platform !== platform) throw new Invalid(`steps.${step}.${platform} names an env locked for ${envs[key]!.platform}`);
      }
      steps[step] = locks as StepLocks;
    }
    return { lockVersion: lockFileVersion(steps), flow: expectString(root.flow, 'flow'), envs, steps };
  } catch (error) {
    if (!(error instanceof Invalid)) throw error;
    throw new InputError(`Lock file ${shown} is invalid: ${error.message}.`, { file, hint: corruptLockHint(file) });
  }
}

/** Where a JSON parse failed, as ` at line L, column C` (only when the parser says where; never the text). */
function jsonErrorPlace(text: string, error: unknown): string {
  const position = /at position (\d+)/.exec(error instanceof Error ? error.message : '');
  if (!position) return '';
  const before = text.slice(0, Number(position[1]));
  const line = before.split('\n').length;
  return ` at line ${line}, column ${before.length - before.lastIndexOf('\n')}`;
}

/** A lock file larger than this is refused (a lock of hundreds of envs is a few MiB). */
const MAX_LOCK_FILE_BYTES = 256 * 1024 * 1024;

/**
 * The lock file's text, read only when it is a regular file of at most {@link MAX_LOCK_FILE_BYTES}
 * (a symlink is followed): a cloned repository's lock may be a FIFO, or a symlink to one or to
 * /dev/zero, which would hang the command or fill its memory. Opened without blocking.
 */
async function readLockText(file: string, shown: string): Promise<string> {
  const bytes = await readRegularFile(file, MAX_LOCK_FILE_BYTES, {
    notAFile: (kind) => new InputError(`Lock file ${shown} is ${kind}, not a file.`, { file, hint: corruptLockHint(file) }),
    tooLarge: (size) => new InputError(`Lock file ${shown} is ${size} bytes, more than a lock file holds (${MAX_LOCK_FILE_BYTES} bytes at most).`, { file, hint: corruptLockHint(file) }),
  });
  return bytes.toString('utf8');
}

/**
 * Reads and validates a lock file; undefined when it does not exist. Corrupt → InputError naming the
 * file (its `file` the path read; its message the path as `shownAs` gives it, e.g. relative to the
 * user's directory).
 */
export async function readLockFile(file: string, options: { shownAs?: string } = {}): Promise<LockFile | undefined> {
  const shown = options.shownAs ?? file;
  let text: string;
  try {
    text = await readLockText(file, shown);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    if (InputError.isInstance(error)) throw error;
    throw new InputError(`Cannot read lock file ${shown}: ${errorMessage(error)}.`, { file, cause: error });
  }
  if (text.trim() === '') {
    throw new InputError(`Lock file ${shown} is empty (truncated?).`, { file, hint: corruptLockHint(file) });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    // Not the parser's message: it quotes the file's first characters, and a lock that is a symlink
    // (a cloned repository's `flow.prebuilt.lock -> ~/.config/gh/hosts.yml`) would have them printed.
    throw new InputError(`Lock file ${shown} is not valid JSON (truncated or edited?)${jsonErrorPlace(text, error)}.`, {
      file,
      hint: corruptLockHint(file),
    });
  }
  const lock = validateLockFile(parsed, file, shown);
  await checkLocalFiles(lock, file, shown);
  return lock;
}

/**
 * Writes a lock file atomically. It goes beside the flow file whatever the current directory, so a
 * directory that cannot be written says that, and what to do.
 */
export async function writeLockFile(file: string, lock: LockFile): Promise<void> {
  await writeFileAtomic(file, serializeLockFile(lock), {
    hint:
      `The lock file is written beside the flow file, whatever the current directory: make ${dirname(file)} writable for this user, ` +
      `or lock in a copy of the project you can write and commit ${basename(file)} (with it up to date, --frozen reads it and writes nothing).`,
  });
}
