/**
 * The PyPI part of an env, resolved with the host's pip:
 * `pip install --dry-run --report` for the target's platform tags, python version and ABI,
 * wheels only, nothing installed. The python version comes from the conda solve.
 */
import { constants } from 'node:fs';
import { mkdir, open, rm, writeFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import {
  CancelledError,
  createRunTempDir,
  EnvironmentError,
  NetworkError,
  ResolutionError,
  createLogger,
  lastLines,
  oneLineText,
  netFetch,
  normalizePypiName,
  pypiProjectName,
  fileUrlInsideSources,
  LocalSourceRoots,
  programNotFound,
  programPath,
  PIP_TIMEOUT_ENV,
  pipTimeoutMs,
  ProgramRunError,
  PYTHON_SETTING,
  runProgram,
  redactUrl,
  redactUrls,
  stripUrlCredentials,
  type CondaPlatform,
  type LockedPackage,
  type NetworkTimeouts,
  type UrlCredentials,
} from '@prebuilt/core';
import { remoteDigest, remoteSize, type RemoteFileOptions } from './remote-file.js';
import { sourceFetchError } from './unreachable-source.js';

const log = createLogger('conda:pip');

export interface PipOptions {
  /** Host interpreter that runs pip (default `python3`). */
  python?: string;
  /**
   * Ignore the user's pip configuration: `--isolated`, `PIP_CONFIG_FILE=/dev/null` and no
   * inherited `PIP_*` variables. Off by default (users expect their pip.conf to count); tests
   * turn it on so no other index or find-links directory leaks in.
   */
  isolated?: boolean;
  /** Environment of the pip process (default process.env). */
  env?: Record<string, string | undefined>;
  fetch?: typeof fetch;
  signal?: AbortSignal;
  /**
   * Credentials of the configured index URLs (taken out of METAFLOW_PREBUILT_PYPI_INDEX_URL /
   * PIP_INDEX_URL): written back into the index URL pip gets, sent as Basic auth to the same origin
   * by our own requests, and never printed (pip's output and errors are redacted).
   */
  credentials?: UrlCredentials;
  timeouts?: NetworkTimeouts;
  /**
   * Milliseconds the pip run may take in all (default METAFLOW_PREBUILT_PIP_TIMEOUT of `env`, else
   * an hour): pip's own timeout bounds a read that stalls, not an index that trickles.
   */
  timeoutMs?: number;
}

export interface PipResolveInput {
  /** PyPI package name → spec (`""` any, `1.2` exact, `>=1.2` as written). */
  packages: Record<string, string>;
  /** Full python version of the env, from the conda solve (e.g. `3.11.9`). */
  pythonVersion: string;
  platform: CondaPlatform;
  /** glibc version of the target; manylinux tags up to it are accepted. */
  glibc: string;
  indexUrl: string | null;
  steps: readonly string[];
}

const NAME = /^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?(?:\[[A-Za-z0-9._,\s-]*\])?$/;

function stepsText(steps: readonly string[]): string {
  return steps.length === 0 ? 'the env' : `step${steps.length === 1 ? '' : 's'} ${steps.join(', ')}`;
}

/** A PEP 440 version as a specifier clause may name it (`1.2`, `2!1.0rc1.post2+local`, `1.*`). */
const VERSION = /^[A-Za-z0-9](?:[A-Za-z0-9._+!-]*[A-Za-z0-9*])?$/;
/** One clause of a PEP 440 specifier: an operator, then a version. */
const CLAUSE = /^(~=|===|==|!=|<=|>=|<|>)\s*([A-Za-z0-9]\S*)$/;

/**
 * Why a spec is not a PEP 440 specifier, naming the first thing wrong; undefined when it is one.
 * What a shell or pip would read as more than a version (`;` markers, `&&`, `|`, `$`, quotes,
 * spaces, options, URLs) never reaches pip.
 */
function specifierProblem(spec: string, bare: boolean): string | undefined {
  const odd = /[^A-Za-z0-9.+!*_,~=<>\s-]/.exec(spec);
  if (odd) {
    const what = odd[0] === ';' ? "';' (an environment marker or a shell command separator)" : `'${odd[0]}'`;
    return `it contains ${what} at position ${odd.index + 1}, which is not part of a version specifier`;
  }
  if (bare) return VERSION.test(spec) && !spec.includes('*') ? undefined : `'${spec}' is not a version (nor an operator followed by one)`;
  for (const raw of spec.split(',')) {
    const clause = raw.trim();
    const match = CLAUSE.exec(clause);
    if (!match) return clause === '' ? 'it has an empty clause between commas' : `'${clause}' is not an operator followed by a version`;
    if (!VERSION.test(match[2]!)) return `'${match[2]}' in '${clause}' is not a version`;
  }
  return undefined;
}

/** `name` + spec as a pip requirement: `""` → name, a bare version → `name==version`. */
export function pipRequirement(name: string, spec: string, steps: readonly string[] = []): string {
  const n = name.trim();
  if (!NAME.test(n)) {
    throw new ResolutionError(`Invalid PyPI package name '${name}' (${stepsText(steps)}).`, {
      steps,
      hint: 'PyPI names contain letters, digits, ., _ and -, optionally with [extras].',
    });
  }
  const s = spec.trim();
  if (s === '') return n;
  const bare = !/^[<>=!~]/.test(s);
  const problem = specifierProblem(s, bare);
  if (problem !== undefined) {
    throw new ResolutionError(
      `Invalid PyPI version spec '${spec}' for package '${n}' in the @pypi packages of ${stepsText(steps)}: ${problem}.`,
      { steps, hint: "Use a PEP 440 specifier such as '2.31.0', '>=2.31,<3' or '~=2.31'; environment markers, URLs and anything after ';' are not supported." },
    );
  }
  return bare ? `${n}==${s}` : `${n}${s}`;
}

/** manylinux platform tags a target with this glibc accepts, newest first. */
export function manylinuxTags(platform: CondaPlatform, glibc: string): string[] {
  const match = /^2\.(\d+)/.exec(glibc.trim());
  if (!match) {
    throw new ResolutionError(`glibc version '${glibc}' is not like 2.28.`, { hint: 'Set METAFLOW_PREBUILT_GLIBC_VERSION to e.g. 2.28.' });
  }
  const minor = Number(match[1]);
  const arch = platform === 'linux-aarch64' ? 'aarch64' : 'x86_64';
  const lowest = arch === 'x86_64' ? 5 : 17;
  const aliases: Record<number, string> = { 17: 'manylinux2014', 12: 'manylinux2010', 5: 'manylinux1' };
  const tags: string[] = [];
  for (let m = minor; m >= lowest; m--) {
    tags.push(`manylinux_2_${m}_${arch}`);
    const alias = aliases[m];
    if (alias) tags.push(`${alias}_${arch}`);
  }
  return tags;
}

interface PipReport {
  install?: {
    download_info?: { url?: string; archive_info?: { hash?: string; hashes?: Record<string, string> } };
    metadata?: { name?: string; version?: string; requires_dist?: string[] };
    /** A requirement pip took at a URL (`bar @ https://…`), not from the index's list of files. */
    is_direct?: boolean;
  }[];
}

/**
 * The largest pip report read. It holds every package's core metadata, READMEs (`description`)
 * included: torch 2.13's entry is 33 KB (measured: pip 23.2 `--report` of its wheel), so even a
 * thousand packages of that size make 33 MB, a quarter of the bound. A hostile index can make it as
 * large as it likes (a wheel's METADATA is the index's to write), and it is read into memory
 * whole to be parsed.
 */
export const PIP_REPORT_MAX_BYTES = 128 * 1024 * 1024;

/** pip's stderr kept for its error: the last 256 KiB (its ERROR lines and a traceback come last). */
const PIP_STDERR_TAIL = 256 * 1024;
/** pip's stdout (`--quiet`: next to nothing; its report is a file) kept: the last 16 KiB. */
const PIP_STDOUT_TAIL = 16 * 1024;

interface PipRun {
  code: number | null;
  stderr: string;
  stdout: string;
  /** How much of stderr was cut, for the error; undefined when none was. */
  stderrCut?: { bytes: number; kept: number };
}

/**
 * Runs pip to its end with its output bounded (core's runProgram): a hostile index or package can
 * make pip print without end. A stalled index is bounded by pip's own socket timeout (--timeout,
 * 15 s a read unless pip's configuration sets another) and retries (--retries, 5), but an index
 * that trickles (a byte every few seconds) never trips it: the whole run has a bound too
 * (`timeoutMs`, METAFLOW_PREBUILT_PIP_TIMEOUT), after which pip is killed. A cancel stops it too.
 */
async function run(command: string, args: string[], env: Record<string, string | undefined>, cwd: string, timeoutMs: number, signal?: AbortSignal): Promise<PipRun> {
  // Never from an empty or relative PATH entry (core's programPath): a python3 the flow's
  // checked-out directory holds would run with the index's credentials.
  const file = programPath(command, { env, setting: PYTHON_SETTING, what: `the Python interpreter '${command}' that runs pip` });
  if (file === undefined) throw programNotFound(command);
  // In a directory of its own: `python -c` (as `-m pip`) imports from its working directory first,
  // where a flow file named pip.py would stand in for pip (the launcher drops that entry too).
  const result = await runProgram(file, args, {
    env,
    cwd,
    stdout: { tail: PIP_STDOUT_TAIL },
    stderr: { tail: PIP_STDERR_TAIL },
    timeoutMs,
    ...(signal ? { signal } : {}),
  });
  const { stderr } = result;
  return {
    code: result.code,
    stderr: stderr.text,
    stdout: result.stdout.text,
    ...(stderr.cut ? { stderrCut: { bytes: stderr.bytes, kept: PIP_STDERR_TAIL } } : {}),
  };
}

/**
 * pip's environment: the caller's (its pip variables dropped when isolated), with TMPDIR the `tmp`
 * directory of pip's work directory — pip makes its temp directories there (pip-target-*,
 * pip-install-*, …), and a pip killed by a cancel (SIGTERM) never removes them; the work
 * directory is removed whatever happens.
 */
function pipEnv(options: PipOptions, tmp: string): Record<string, string | undefined> {
  const env = { ...(options.env ?? process.env) };
  if (options.isolated) {
    for (const key of Object.keys(env)) if (key.startsWith('PIP_')) delete env[key];
    env.PIP_CONFIG_FILE = '/dev/null';
  }
  env.TMPDIR = tmp;
  return env;
}

function remoteOptions(options: PipOptions): RemoteFileOptions {
  return {
    ...(options.fetch ? { fetch: options.fetch } : {}),
    ...(options.credentials ? { credentials: options.credentials } : {}),
    ...(options.timeouts ? { timeouts: options.timeouts } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
  };
}

async function probeIndex(indexUrl: string, firstPackage: string, options: PipOptions, steps: readonly string[]): Promise<void> {
  if (!/^https?:/.test(indexUrl)) return;
  const url = `${indexUrl.replace(/\/+$/, '')}/${pypiProjectName(firstPackage)}/`;
  const { credentials } = options;
  let response: Awaited<ReturnType<typeof netFetch>>;
  try {
    response = await netFetch(url, {
      what: 'PyPI index',
      ...(options.fetch ? { fetch: options.fetch } : {}),
      ...(options.timeouts ? { timeouts: options.timeouts } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
      ...(credentials ? { authorize: (hop: URL) => credentials.authorizationFor(hop) } : {}),
    });
    await response.cancel();
  } catch (error) {
    if (error instanceof NetworkError) throw error;
    throw sourceFetchError(error, {
      service: `PyPI index ${indexUrl}`,
      request: `GET ${url}`,
      steps,
      hint: 'Check METAFLOW_PREBUILT_PYPI_INDEX_URL / PIP_INDEX_URL and your network or proxy settings.',
    });
  }
  // pip reports a failing index only as "no matching distribution"; say what the index answered.
  if (response.status >= 500 || response.status === 401 || response.status === 403) {
    throw new ResolutionError(`PyPI index ${indexUrl} answered ${response.status} ${response.statusText} to GET ${url}.`, {
      steps,
      hint:
        response.status >= 500
          ? 'The index is failing; try again later, or set METAFLOW_PREBUILT_PYPI_INDEX_URL to a working mirror.'
          : 'The index wants credentials; put them in the index URL or your pip configuration.',
    });
  }
}

/** The wheels pip picks for the requested packages on the target, with url, sha256 and size. */
export async function resolvePypi(input: PipResolveInput, options: PipOptions = {}): Promise<LockedPackage[]> {
  const requirements = Object.entries(input.packages)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([name, spec]) => pipRequirement(name, spec, input.steps));
  if (requirements.length === 0) return [];
  if (input.indexUrl !== null) await probeIndex(input.indexUrl, Object.keys(input.packages).sort()[0]!, options, input.steps);

  const work = await createRunTempDir('prebuilt-pip-');
  const python = options.python ?? 'python3';
  try {
    const reportPath = join(work, 'report.json');
    const { args, indexFile } = pipArgs(input, requirements, work, options);
    // Only this user may read it (the work directory is 0700 too).
    if (indexFile) await writeFile(indexFile.path, indexFile.content, { mode: 0o600, flag: 'wx' });
    log('%s %s', python, redactUrls(args.map((arg) => (arg === WHEELS_ONLY_PIP ? '<wheels-only pip launcher>' : arg)).join(' ')));
    const result = await runPip(python, args, options, work, input);
    if (result.code !== 0) throw pipFailure(result, python, input, requirements);
    const report = await readReport(reportPath, input);
    const items = report.install ?? [];
    // Every URL and reported sha256 checked before any file is read: a refused one is never hashed nor sized.
    for (const item of items) checkWheelSource(item, input, options);
    const roots = new LocalSourceRoots(); // The file: index's directory resolved once, not once per wheel.
    await Promise.all(items.map((item) => checkInsideIndex(item, input, roots)));
    const sha256s = items.map((item) => reportedSha256(item, input));
    const packages = await Promise.all(items.map((item, i) => lockedWheel(item, items, sha256s[i], options)));
    return packages.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/**
 * Runs pip (`python -c WHEELS_ONLY_PIP install ...` in place of `python -m pip install ...`) kept
 * to wheels. `--only-binary=:all:` filters only the files an index lists: a direct URL — a
 * published wheel's `Requires-Dist: bar @ https://host/bar-1.0.tar.gz`, or `@ file:///some/dir` —
 * is still fetched and prepared, and preparing a source distribution runs its build backend (its
 * `setup.py`, or any code its pyproject.toml names) on this machine, which holds the index's
 * credentials. So pip's preparer is wrapped before pip starts: a requirement whose link is not a
 * wheel file at an http(s) or file: URL is refused before it is fetched (no download, no VCS
 * checkout — even of a URL ending in a wheel's file name, which pip's `is_wheel` takes for a wheel
 * —, no build), and building
 * any source distribution's metadata is refused too, should a pip reach it another way. A pip
 * without those internals (every pip since 22.2, the first with `--report`, has them) is refused
 * rather than run unguarded. Then pip's own `__main__` runs, as `-m pip` would.
 */
const WHEELS_ONLY_PIP = String.raw`
import os, sys
if sys.path and sys.path[0] in ("", os.getcwd()):
    sys.path.pop(0)
try:
    import pip
except ImportError:
    sys.stderr.write("%s: No module named pip\n" % sys.executable)
    sys.exit(1)
try:
    from pip._internal.exceptions import CommandError
    from pip._internal.operations.prepare import RequirementPreparer
    from pip._internal.distributions.sdist import SourceDistribution
    from pip._internal.models.link import Link
    Link.is_wheel, Link.is_vcs, Link.scheme, Link.is_existing_dir
    RequirementPreparer.prepare_linked_requirement
    RequirementPreparer.prepare_editable_requirement
    SourceDistribution.prepare_distribution_metadata
except (ImportError, AttributeError) as error:
    sys.stderr.write("ERROR: prebuilt cannot keep pip %s to wheels (%s), so it does not run it: a source distribution it met would run its code on this machine.\n" % (getattr(pip, "__version__", "?"), error))
    sys.exit(1)

# A CommandError: pip prints it as "ERROR: ..." and exits 1, and no resolver step catches it
# (an InstallationError may be taken for a candidate that fails to build, and skipped).
class NotAWheelError(CommandError):
    pass

def refuse(req):
    parent = getattr(req.comes_from, "name", None) or req.comes_from
    what = "%s at %s" % (req.name or "a requirement", req.link.url) if req.link else str(req)
    raise NotAWheelError("prebuilt: %s%s, which is not a wheel: building it would run its code on this machine, and prebuilt locks wheels only." % ("%s depends on " % parent if parent else "", what))

# Link.is_wheel reads the file name only: git+https://host/bar-1.0-py3-none-any.whl (a checkout)
# and file:///dir/bar-1.0-py3-none-any.whl/ (a directory) are no wheel files either.
def is_wheel_file(link):
    return link is not None and link.is_wheel and not link.is_vcs and link.scheme in ("http", "https", "file") and not link.is_existing_dir()

prepare_linked = RequirementPreparer.prepare_linked_requirement
def prepare_wheel(self, req, *args, **kwargs):
    if not is_wheel_file(req.link):
        refuse(req)
    return prepare_linked(self, req, *args, **kwargs)
def prepare_editable(self, req, *args, **kwargs):
    refuse(req)
def build_metadata(self, *args, **kwargs):
    refuse(self.req)
RequirementPreparer.prepare_linked_requirement = prepare_wheel
RequirementPreparer.prepare_editable_requirement = prepare_editable
SourceDistribution.prepare_distribution_metadata = build_metadata

import runpy
runpy.run_module("pip", run_name="__main__", alter_sys=True)
`;

/**
 * `pip install --dry-run --report` for the target's Python and manylinux tags, wheels only (see
 * {@link WHEELS_ONLY_PIP}: a direct URL to a source distribution is refused too). An
 * index URL that gets its credentials back goes to pip in a requirements file of the private work
 * directory (`indexFile`: its path and content, `-r` on the command line): any user of the machine
 * reads a process's arguments (`ps`), and pip's `--isolated` ignores PIP_INDEX_URL.
 */
function pipArgs(input: PipResolveInput, requirements: string[], work: string, options: PipOptions): { args: string[]; indexFile?: { path: string; content: string } } {
  const [major, minor] = input.pythonVersion.split('.');
  const args = [
    '-c', WHEELS_ONLY_PIP, 'install',
    '--dry-run', '--quiet', '--no-input', '--disable-pip-version-check', '--progress-bar', 'off',
    '--report', join(work, 'report.json'),
    '--ignore-installed', '--only-binary=:all:', '--target', join(work, 'target'),
    '--python-version', input.pythonVersion,
    '--implementation', 'cp',
    '--abi', `cp${major}${minor}`,
    ...manylinuxTags(input.platform, input.glibc).flatMap((tag) => ['--platform', tag]),
    ...(options.isolated ? ['--isolated'] : []),
    ...(input.indexUrl !== null ? ['--index-url', input.indexUrl] : []),
    ...requirements,
  ];
  // pip only takes an index's credentials inside its URL: put them back for pip, and only there.
  const indexAt = input.indexUrl === null ? -1 : args.indexOf(input.indexUrl);
  const withCredentials = indexAt !== -1 && options.credentials ? options.credentials.withCredentials(input.indexUrl!) : undefined;
  if (withCredentials === undefined || withCredentials === input.indexUrl) return { args };
  const path = join(work, 'index-url.txt');
  args.splice(indexAt - 1, 2, '-r', path);
  return { args, indexFile: { path, content: `--index-url ${withCredentials}\n` } };
}

/**
 * pip's report, read only when it is a regular file within {@link PIP_REPORT_MAX_BYTES} (its size
 * taken from the open file, and no more than that read), and parsed: anything else is a
 * ResolutionError saying what the index made pip write.
 */
async function readReport(path: string, input: PipResolveInput): Promise<PipReport> {
  const refuse = (why: string, hint = "pip did not write its report as pip 22.2 and later do; check the host's pip (python3 -m pip --version)."): ResolutionError =>
    new ResolutionError(`Cannot resolve the PyPI packages of ${stepsText(input.steps)}: pip's report ${why}.`, { steps: input.steps, hint });
  let file: FileHandle;
  try {
    // Non-blocking: a FIFO at the path would hold an ordinary open until a writer came.
    file = await open(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw refuse('is missing: pip ended without writing it');
    if (code === 'ELOOP') throw refuse('is a symbolic link, not a file pip wrote');
    throw error;
  }
  let text: string;
  try {
    const stats = await file.stat();
    if (!stats.isFile()) throw refuse('is not a regular file');
    if (stats.size > PIP_REPORT_MAX_BYTES) {
      throw refuse(
        `has ${stats.size} bytes, more than the ${PIP_REPORT_MAX_BYTES / (1024 * 1024)} MiB prebuilt reads into memory`,
        `The report holds the metadata of every package pip picked, as ${indexName(input.indexUrl)} serves it; no real env comes near this size. The index is misconfigured or hostile: use another (METAFLOW_PREBUILT_PYPI_INDEX_URL, PIP_INDEX_URL or your pip configuration).`,
      );
    }
    // The size taken, no more read: should the file grow meanwhile, the rest is left.
    const buffer = Buffer.alloc(stats.size);
    let length = 0;
    while (length < buffer.length) {
      const { bytesRead } = await file.read(buffer, length, buffer.length - length, length);
      if (bytesRead === 0) break;
      length += bytesRead;
    }
    text = buffer.subarray(0, length).toString('utf8');
  } finally {
    await file.close();
  }
  try {
    const report = JSON.parse(text) as unknown;
    if (report === null || typeof report !== 'object' || Array.isArray(report)) throw new TypeError('not an object');
    return report as PipReport;
  } catch (error) {
    // JSON.parse quotes a piece of the text, which may hold a URL with the index's credentials.
    throw refuse(`is not a JSON object (${redactUrls(error instanceof Error ? error.message : String(error))})`);
  }
}

/**
 * The error of a pip run past its bound (METAFLOW_PREBUILT_PIP_TIMEOUT): a NetworkError (exit 1,
 * as a channel read past its deadline) naming the index pip was reading.
 */
function pipTimedOut(error: ProgramRunError, input: PipResolveInput): NetworkError {
  const seconds = +((error.timeoutMs ?? 0) / 1000).toFixed(1);
  let target = "pip's configured index";
  if (input.indexUrl !== null) {
    try {
      target = new URL(input.indexUrl).host || redactUrl(input.indexUrl);
    } catch {
      target = redactUrl(input.indexUrl);
    }
  }
  return new NetworkError(
    `pip did not finish resolving the PyPI packages of ${stepsText(input.steps)} within ${seconds} s (${PIP_TIMEOUT_ENV}); it was stopped. ` +
      `It was still reading ${indexName(input.indexUrl)}: an index that is very slow, or that trickles its answers a byte at a time, keeps pip waiting (pip's own --timeout only ends a read that gets no byte at all).`,
    { target, what: 'PyPI resolution (pip)', reason: 'deadline' },
    {
      cause: error,
      hint: `Check the index, or use another one (METAFLOW_PREBUILT_PYPI_INDEX_URL, PIP_INDEX_URL or your pip configuration); if the resolve is just big and the link slow, raise ${PIP_TIMEOUT_ENV} (seconds, default 3600).`,
    },
  );
}

/** Runs pip; its output with every URL's credentials redacted. A missing python is an EnvironmentError. */
async function runPip(python: string, args: string[], options: PipOptions, work: string, input: PipResolveInput): Promise<PipRun> {
  let result: PipRun;
  const tmp = join(work, 'tmp');
  await mkdir(tmp);
  const timeoutMs = options.timeoutMs ?? pipTimeoutMs(options.env ?? process.env);
  try {
    result = await run(python, args, pipEnv(options, tmp), work, timeoutMs, options.signal);
  } catch (error) {
    if (ProgramRunError.isInstance(error) && error.errno === 'ENOENT') {
      throw new EnvironmentError(`Cannot resolve PyPI packages: '${python}' was not found on this machine.`, {
        cause: error,
        hint: 'Install Python 3 with pip (e.g. apt-get install python3 python3-pip).',
      });
    }
    if (ProgramRunError.isInstance(error) && error.reason === 'cancelled') throw new CancelledError('Resolving the PyPI packages was cancelled.', { cause: error.cause });
    if (ProgramRunError.isInstance(error) && error.reason === 'timed-out') throw pipTimedOut(error, input);
    throw error;
  }
  // pip's output names the index URL (and may name it with its credentials): never pass them on.
  result.stderr = redactUrls(result.stderr);
  result.stdout = redactUrls(result.stdout);
  return result;
}

/** pip's ERROR lines an error shows at most (the last ones). */
const MAX_ERROR_LINES = 40;

/** What a failed pip run means: no pip for this python, or pip's own reasons (its ERROR lines). */
function pipFailure({ stderr, stderrCut }: PipRun, python: string, input: PipResolveInput, requirements: string[]): Error {
  if (/No module named pip/.test(stderr)) {
    return new EnvironmentError(`Cannot resolve PyPI packages: pip is not installed for '${python}'.`, {
      hint: 'Install pip for the host python (e.g. apt-get install python3-pip, or python3 -m ensurepip).',
    });
  }
  const lines = stderr.split('\n');
  // pip's own crash is `ERROR: Exception:` then a traceback: its last line says what went wrong.
  const crash = lines.findLast((line) => /^\w+(\.\w+)*(Error|Exception)\b.*:/.test(line))?.trim();
  const errors = lines
    .filter((line) => /^ERROR:|ResolutionImpossible|conflict|requires/i.test(line))
    .map((line) => line.replace(/^ERROR:\s*/, '').trim())
    .map((line) => (line === 'Exception:' ? (crash ? `pip failed: ${crash}` : '') : line))
    .filter((line) => line !== '');
  // The last ERROR lines only: a pip made to print errors without end would make an endless message.
  const shown = errors.length > MAX_ERROR_LINES ? [`(${errors.length - MAX_ERROR_LINES} earlier error lines left out)`, ...errors.slice(-MAX_ERROR_LINES)] : errors;
  const explanation = shown.length > 0 ? shown.join('\n') : lastLines(stderr, 5);
  // Only the last lines of an endless output are kept: say so, so the cut is not taken for all pip said.
  const cut = stderrCut ? ` (pip printed ${stderrCut.bytes} bytes to stderr; only its last ${stderrCut.kept} are kept)` : '';
  return new ResolutionError(`Cannot resolve the PyPI packages of ${stepsText(input.steps)}${cut}: ${explanation}`, {
    steps: input.steps,
    hint: `Requested: ${requirements.join(' ')} for Python ${input.pythonVersion} on ${input.platform}${input.indexUrl ? ` from ${input.indexUrl}` : ''}. Only wheels are used; check that the packages publish wheels for this platform.`,
  });
}

/** The index pip used, as an error names it. */
function indexName(indexUrl: string | null): string {
  return indexUrl === null ? "pip's configured index (https://pypi.org/simple unless your pip configuration names another)" : redactUrl(indexUrl);
}

/**
 * A wheel pip picked is at an http(s) URL, or at a `file:` URL when the index is a `file:` index
 * (a local directory the user chose). pip follows the `file:` links of any index: a remote index
 * answering `file:///home/u/.ssh/...-1.0-py3-none-any.whl` pointed the lock, the package cache and
 * the image at a file of the machines that lock and build. A local wheel pip found through its
 * own configuration — a `find-links` or a `file:` index-url in pip.conf — is refused too: the lock
 * records prebuilt's index only, so the lock could not say where the wheel came from (and pip's
 * report does not say which of the index or the find-links named it, so prebuilt does not take
 * pip.conf's word for either). The error says so when pip's configuration was read (not
 * `isolated`), with the fix: a `file:` index named to prebuilt.
 */
function checkWheelSource(item: NonNullable<PipReport['install']>[number], input: PipResolveInput, options: PipOptions): void {
  const rawUrl = item.download_info?.url;
  if (!rawUrl || /^https?:\/\//i.test(rawUrl)) return;
  const localIndex = input.indexUrl !== null && /^file:/i.test(input.indexUrl);
  const isFile = /^file:/i.test(rawUrl);
  if (isFile && localIndex) return;
  const name = item.metadata?.name ?? 'a package';
  const url = redactUrl(rawUrl.replace(/#.*$/, ''));
  if (isFile && !options.isolated) {
    const source =
      input.indexUrl === null
        ? "pip's configuration (a find-links, or a file: index-url, in pip.conf or PIP_* variables)"
        : `the PyPI index ${redactUrl(input.indexUrl)} or a find-links of pip's configuration (pip.conf, PIP_FIND_LINKS)`;
    throw new ResolutionError(
      `pip found ${name} (${stepsText(input.steps)}) at ${url}, a file on this machine, named by ${source}: ` +
        'prebuilt locks a local wheel only from a file: index it is given itself (METAFLOW_PREBUILT_PYPI_INDEX_URL), so that the lock says where the wheel comes from and no index can point a build at files of this machine. Refusing to lock it.',
      {
        steps: input.steps,
        hint:
          'To use wheels of a local directory, make it a file: index and give it to prebuilt: METAFLOW_PREBUILT_PYPI_INDEX_URL=file:///path/to/simple ' +
          '(a folder per project, each with an index.html linking its wheels), and take the find-links out of your pip configuration (or set METAFLOW_PREBUILT_PIP_ISOLATED=1 to ignore it). ' +
          'If an index named the file, it is misconfigured or hostile: use another.',
      },
    );
  }
  throw new ResolutionError(
    `PyPI index ${indexName(input.indexUrl)} names ${url} for ${name} (${stepsText(input.steps)}), ${isFile ? 'a file on this machine; only a file: index (a local directory) may name local files' : 'which is not an http(s) URL'}. Refusing to lock it.`,
    {
      steps: input.steps,
      hint: isFile
        ? 'The index is misconfigured or hostile; use another index (METAFLOW_PREBUILT_PYPI_INDEX_URL, PIP_INDEX_URL or your pip configuration). Wheels in a local directory are used from a file: index: METAFLOW_PREBUILT_PYPI_INDEX_URL=file:///path/to/simple.'
        : 'The index is misconfigured or hostile; use another index (METAFLOW_PREBUILT_PYPI_INDEX_URL, PIP_INDEX_URL or your pip configuration).',
    },
  );
}

type ReportItem = NonNullable<PipReport['install']>[number];

/**
 * A wheel of a `file:` index is locked only when it lies inside the index, `..` and symlinks
 * resolved (core's local-source; a lock naming anything else is refused when it is read): a symlink
 * in the index pointing out (`simple/foo/foo-1.0-py3-none-any.whl -> ~/.docker/config.json`), or a
 * link climbing out of it, named a file of this machine. Checked before the file is hashed or sized.
 */
async function checkInsideIndex(item: ReportItem, input: PipResolveInput, roots: LocalSourceRoots): Promise<void> {
  const rawUrl = item.download_info?.url;
  if (!rawUrl || !/^file:/i.test(rawUrl) || input.indexUrl === null) return;
  const url = rawUrl.replace(/#.*$/, '');
  if (await fileUrlInsideSources(url, [input.indexUrl], roots)) return;
  throw new ResolutionError(
    `PyPI index ${redactUrl(input.indexUrl)} names ${redactUrl(url)} for ${item.metadata?.name ?? 'a package'} (${stepsText(input.steps)}), which is not inside the index once \`..\` and symlinks are resolved; refusing to lock it.`,
    {
      steps: input.steps,
      hint: 'A file: index holds its wheels itself: copy the wheel into the index directory instead of linking to a file outside it.',
    },
  );
}

/** The first word of a requirement `bar[extra] @ https://…; marker`, when it is one at a URL. */
const AT_URL = /^\s*([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)\s*(?:\[[^\]]*\])?\s*@/;

/**
 * The packages pip picked whose metadata requires `name` at a URL (`Requires-Dist: bar @ https://…`):
 * who brought a direct URL into the lock (none named when pip's report does not say).
 */
function directUrlRequirers(name: string, items: readonly ReportItem[]): string[] {
  const wanted = normalizePypiName(name);
  const by = new Set<string>();
  for (const other of items) {
    const otherName = other.metadata?.name;
    const requires = other.metadata?.requires_dist;
    if (typeof otherName !== 'string' || !Array.isArray(requires)) continue;
    for (const requirement of requires) {
      const match = typeof requirement === 'string' ? AT_URL.exec(requirement) : null;
      if (match && normalizePypiName(match[1]!) === wanted) by.add(normalizePypiName(otherName));
    }
  }
  return [...by].sort();
}

/**
 * The sha256 pip's report gives a wheel (the index's `#sha256=` as written: pip checks it only
 * against a file it downloads, and takes the metadata alone where the index serves it), in lower
 * case; one that is not 64 hex digits is a ResolutionError — the lock's reader refuses it, so the
 * lock written would be one no command could read.
 */
function reportedSha256(item: ReportItem, input: PipResolveInput): string | undefined {
  const archive = item.download_info?.archive_info;
  const hash: unknown = archive?.hash;
  const sha256: unknown = archive?.hashes?.sha256 ?? (typeof hash === 'string' && hash.startsWith('sha256=') ? hash.slice(7) : undefined);
  if (sha256 === undefined) return undefined;
  if (typeof sha256 === 'string' && /^[0-9a-f]{64}$/i.test(sha256)) return sha256.toLowerCase();
  const name = String(item.metadata?.name ?? 'a package');
  const version = String(item.metadata?.version ?? '');
  throw new ResolutionError(
    `${indexName(input.indexUrl)} gives ${oneLineText(name, 100)} ${oneLineText(version, 100)} (${stepsText(input.steps)}) the sha256 '${oneLineText(String(sha256), 100)}', which is not 64 hex digits; refusing to lock it.`,
    { steps: input.steps, hint: 'The index is misconfigured or hostile; use another index (METAFLOW_PREBUILT_PYPI_INDEX_URL, PIP_INDEX_URL or your pip configuration).' },
  );
}

/**
 * One entry of pip's report as a locked wheel; `reported` its sha256 as the report gives it
 * ({@link reportedSha256}, checked for every entry before any is read), and its sha256 and size
 * from the index when the report lacks them. A wheel pip took at a direct URL (a dependency's `bar @ https://other-host/…`, not a
 * file the index lists) is locked as pip found it, and says so (`directUrl`, with the packages
 * that required it), so that `prebuilt lock` can show it and a reviewer of the lock file sees it.
 */
async function lockedWheel(item: ReportItem, items: readonly ReportItem[], reported: string | undefined, options: PipOptions): Promise<LockedPackage> {
  const rawUrl = item.download_info?.url;
  const name = item.metadata?.name;
  const version = item.metadata?.version;
  if (!rawUrl || !name || !version) throw new ResolutionError(`pip's report has an entry without url, name or version.`);
  const url = stripUrlCredentials(rawUrl.replace(/#.*$/, ''));
  let sha256 = reported;
  let size: number;
  if (sha256 === undefined) {
    const digest = await remoteDigest(url, remoteOptions(options));
    sha256 = digest.sha256;
    size = digest.size;
  } else {
    size = await remoteSize(url, remoteOptions(options));
  }
  const filename = decodeURIComponent(new URL(url).pathname.split('/').pop() ?? '');
  return {
    kind: 'pypi',
    name: normalizePypiName(name),
    version,
    build: '',
    url,
    sha256,
    size,
    filename,
    ...(item.is_direct === true ? { directUrl: { requiredBy: directUrlRequirers(name, items) } } : {}),
  };
}
