import { posix } from 'node:path';
import { ConfigError, readRegularFileSync } from '@prebuilt/core/backend';
import { completeEntries, parentDirs, type LayerEntry } from './layer.js';

/**
 * eStargz prefetch: the files a task reads first go at the top of each eStargz layer, then a
 * landmark file, then the rest. The stargz snapshotter (with prefetch on, its default) fetches
 * everything before `.prefetch.landmark` in one range request when it mounts the layer, and waits
 * for it before the container starts; a layer with `.no.prefetch.landmark` is not prefetched. Same
 * rules as the snapshotter's own eStargz builder: a moved file's parent directories move with it,
 * the landmark is a 1-byte file (0x0f) at the layer's root.
 */

export const PREFETCH_LANDMARK = '.prefetch.landmark';
export const NO_PREFETCH_LANDMARK = '.no.prefetch.landmark';
const LANDMARK_CONTENT = Uint8Array.of(0x0f);

/**
 * Which files an eStargz layer puts first: `static` (the default: what an import is likely to
 * read — see {@link isStaticPrefetch}), `profile` (the paths a recorded run of the task opened, in
 * the order it opened them; see {@link PREFETCH_RECORDER_PY}), or `off` (no reordering, no landmark:
 * the node's `prefetch_size` applies).
 */
export type EstargzPrefetch =
  | { mode: 'static' }
  | { mode: 'off' }
  /** `sections`: a profile with env sections (see {@link profileSections}); `paths` then lists every path, {@link envPrefetch} picks an env's. */
  | { mode: 'profile'; paths: readonly string[]; sections?: ProfileSections };

const INTERPRETER = /(^|\/)bin\/python3(\.\d+)?$/;
const LIBPYTHON = /(^|\/)libpython3[^/]*\.so[^/]*$/;
const SHARED_OBJECT = /\.so(\.\d+)*$/;
/** A module's source, and its compiled form (`__pycache__/<module>.cpython-XY.pyc`, not the `-O` ones): groups 1 and 2 name the module. */
const SOURCE = /^(.*\/)?([^/]+)\.py$/;
const PYC = /^(.*\/)?__pycache__\/([^/.]+)\.cpython-\d+\.pyc$/;
/** Test suites shipped inside packages, which no task imports. */
const TESTS = /(^|\/)(tests?|testing)\//;

/**
 * The static choice, from the paths alone: the interpreter and libpython, every ELF shared object
 * (`*.so`, `*.so.N`: the extension modules and the libraries they link, which an import maps
 * whole), and every Python module's code outside test directories — its compiled pyc where the
 * layer has one (Python then only stats the source), else its source. `paths` are the layer's
 * paths (to tell whether a source has its pyc); without them a source counts only for `__init__`.
 */
export function isStaticPrefetch(path: string, paths?: ReadonlySet<string>): boolean {
  if (INTERPRETER.test(path) || LIBPYTHON.test(path) || SHARED_OBJECT.test(path)) return true;
  if (TESTS.test(path)) return false;
  if (PYC.test(path)) return true;
  const source = SOURCE.exec(path);
  if (!source) return false;
  if (!paths) return source[2] === '__init__';
  const dir = source[1] ?? '';
  for (const tag of PYC_TAGS) if (paths.has(`${dir}__pycache__/${source[2]}.${tag}.pyc`)) return false;
  return true;
}

/** The interpreters whose pycs a source may have beside it (CPython 3.7–3.14). */
const PYC_TAGS = Array.from({ length: 8 }, (_, i) => `cpython-3${7 + i}`);

/** The paths an entry list puts first under a choice, in their prefetch order (profile order, else bytewise). */
function prioritized(items: readonly LayerEntry[], prefetch: EstargzPrefetch): string[] {
  if (prefetch.mode === 'profile') return [...prefetch.paths];
  const paths = new Set(items.map((e) => e.path));
  return items.filter((e) => e.kind !== 'directory' && isStaticPrefetch(e.path, paths)).map((e) => e.path);
}

/**
 * The entries of an eStargz layer in prefetch order: the prioritized files (each after its missing
 * parent directories), the landmark (`.prefetch.landmark`, or `.no.prefetch.landmark` when none of
 * the layer's files is prioritized), then every other entry bytewise. With `off`, the plain order
 * of {@link completeEntries}. The same entries and choice give the same order.
 */
export function prefetchOrder(entries: readonly LayerEntry[], prefetch: EstargzPrefetch): LayerEntry[] {
  const items = completeEntries(entries);
  if (prefetch.mode === 'off') return items;
  const rest = new Map(items.filter((e) => e.path !== PREFETCH_LANDMARK && e.path !== NO_PREFETCH_LANDMARK).map((e) => [e.path, e]));
  const first: LayerEntry[] = [];
  const move = (path: string): void => {
    const entry = rest.get(path);
    if (!entry) return;
    rest.delete(path);
    first.push(entry);
  };
  for (const path of prioritized(items, prefetch)) {
    if (!rest.has(path)) continue;
    for (const dir of parentDirs(path)) move(dir);
    move(path);
  }
  const landmark = first.some((e) => e.kind !== 'directory') ? PREFETCH_LANDMARK : NO_PREFETCH_LANDMARK;
  return [...first, { path: landmark, kind: 'file', content: LANDMARK_CONTENT }, ...rest.values()];
}

/** A recorded profile's paths: those of every env (before any section), and each env section's (`[env <envId>]`), in file order. */
export interface ProfileSections {
  common: string[];
  envs: Map<string, string[]>;
}

const SECTION = /^\[env ([0-9A-Za-z._-]+)\]$/;

/**
 * A recorded prefetch profile: one path in the image per line (absolute, or relative to `/`), in
 * the order the task opened them; blank lines and `#` comments are ignored. A line `[env <envId>]`
 * starts the paths of one env (`prebuilt profile` writes one section per env: the envs share the
 * prefix, so a path alone does not say whose it is); the paths before any section are every env's.
 * Paths outside the layers (the base image's) are ignored when the layers are built. Throws a
 * ConfigError naming the line for a line with a control character or a malformed section line.
 */
export function profileSections(text: string, source = 'The prefetch profile'): ProfileSections {
  const common: string[] = [];
  const envs = new Map<string, string[]>();
  let into = common;
  for (const [i, raw] of text.split('\n').entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const problem = CONTROL.test(line) ? 'has a control character' : line.startsWith('[') && !SECTION.test(line) ? 'is not a section line ([env <envId>])' : undefined;
    if (problem) throw new ConfigError(`${source}: line ${i + 1} ${problem}.`, { setting: PREFETCH_ENV, hint: PROFILE_HINT });
    const section = SECTION.exec(line);
    if (section) {
      into = envs.get(section[1]!) ?? [];
      envs.set(section[1]!, into);
      continue;
    }
    const path = posix.normalize(`/${line}`).replace(/^\/+/, '');
    if (path !== '' && path !== '.') into.push(path);
  }
  return { common, envs };
}

/** Every path of a recorded profile (see {@link profileSections}), each once, in file order. */
export function parsePrefetchProfile(text: string): string[] {
  return everyPath(profileSections(text));
}

function everyPath({ common, envs }: ProfileSections): string[] {
  return [...new Set([...common, ...[...envs.values()].flat()])];
}

/**
 * The prefetch choice for one env's image: a profile with env sections gives the env its paths
 * (the common ones, then its section's), or `static` when the profile names none of its paths (a
 * step that was not recorded); any other choice is the same for every env.
 */
export function envPrefetch(prefetch: EstargzPrefetch, envId: string | undefined): EstargzPrefetch {
  if (prefetch.mode !== 'profile') return prefetch;
  if (!prefetch.sections || envId === undefined) return { mode: 'profile', paths: prefetch.paths };
  const paths = [...new Set([...prefetch.sections.common, ...(prefetch.sections.envs.get(envId) ?? [])])];
  return paths.length === 0 ? { mode: 'static' } : { mode: 'profile', paths };
}

/** The env variable naming the prefetch choice: `static` (default), `off`, or a profile file. */
export const PREFETCH_ENV = 'METAFLOW_PREBUILT_OCI_PREFETCH';

const PROFILE_HINT = `Record it again with 'prebuilt profile <flow.py>' (it writes <flow>.prebuilt.prefetch, which a build of the flow picks up), or set ${PREFETCH_ENV} to 'static', 'off', or the path of a file listing one image path per line.`;

/** Resolves the prefetch choice of a setting value (the option, else the env variable): `static`, `off`, or a profile file's path. */
export function prefetchSetting(value: string | undefined): EstargzPrefetch {
  const raw = value?.trim();
  if (raw === undefined || raw === '' || raw.toLowerCase() === 'static') return { mode: 'static' };
  if (raw.toLowerCase() === 'off') return { mode: 'off' };
  const text = readProfileFile(raw);
  if (lineCount(text) > MAX_PROFILE_LINES) throw new ConfigError(`The eStargz prefetch profile '${raw}' has more than ${MAX_PROFILE_LINES} lines: not a profile prebuilt wrote.`, { setting: PREFETCH_ENV, hint: PROFILE_HINT });
  const sections = profileSections(text, `The eStargz prefetch profile '${raw}'`);
  const paths = everyPath(sections);
  if (paths.length === 0) throw new ConfigError(`The eStargz prefetch profile '${raw}' lists no path.`, { setting: PREFETCH_ENV, hint: PROFILE_HINT });
  return sections.envs.size === 0 ? { mode: 'profile', paths } : { mode: 'profile', paths, sections };
}

/** The largest profile file read (128 MiB): far above what `prebuilt profile` writes for a flow. */
export const MAX_PROFILE_BYTES = 128 << 20;
/** The most lines a profile file may have (20 envs at `prebuilt profile`'s default bound of 100 000 paths): 128 MiB of short lines would be tens of millions of strings. */
export const MAX_PROFILE_LINES = 2_000_000;

function lineCount(text: string): number {
  let lines = 1;
  for (let at = text.indexOf('\n'); at !== -1; at = text.indexOf('\n', at + 1)) lines++;
  return lines;
}

/**
 * A profile file's text. The file beside the flow comes with the flow's repository and may be a
 * symlink to anything: only a regular file of at most {@link MAX_PROFILE_BYTES} is read, and it is
 * opened without blocking, so a FIFO or a device is refused at once instead of hanging the build.
 */
function readProfileFile(file: string): string {
  const refuse = (why: string): ConfigError => new ConfigError(`The eStargz prefetch profile '${file}' ${why}.`, { setting: PREFETCH_ENV, hint: PROFILE_HINT });
  try {
    return readRegularFileSync(file, MAX_PROFILE_BYTES, {
      notAFile: (kind) => refuse(`is not a regular file (${kind})`),
      tooLarge: (size) => refuse(`is larger than ${MAX_PROFILE_BYTES >> 20} MiB (${size} bytes): not a profile prebuilt wrote`),
    }).toString('utf8');
  } catch (error) {
    throw error instanceof ConfigError ? error : refuse(`cannot be read: ${(error as Error).message}`);
  }
}

/**
 * Python code that records a prefetch profile by running a task once in the image:
 * `python -c "$PREFETCH_RECORDER_PY" 'import pandas'` runs the task code and prints to stdout, one
 * per line in first-use order, the files it opened (an audit hook on `open`), the modules imported
 * before the hook (their source and pyc), and the files mapped into the process at exit
 * (`/proc/self/maps`: the interpreter, extension modules and the libraries they link, which no
 * `open` event shows); `/proc`, `/sys` and `/dev` are left out. The task's own output, Python's
 * and its libraries' writes to file descriptor 1 included, goes to stderr: stdout carries the list
 * only. A task ending in `sys.exit(0)` still prints it; any other exit prints nothing.
 * `prebuilt profile` runs it for each step of a built flow (and validates what it prints).
 */
export const PREFETCH_RECORDER_PY = [
  'import sys, os',
  'out_fd = os.dup(1)',
  'os.dup2(2, 1)',
  'seen = {}',
  'def note(p):',
  '    if isinstance(p, str) and p:',
  '        seen.setdefault(os.path.abspath(p), None)',
  'def hook(event, args):',
  '    if event == "open" and args: note(args[0])',
  'for m in list(sys.modules.values()):',
  '    note(getattr(m, "__file__", None)); note(getattr(m, "__cached__", None))',
  'sys.addaudithook(hook)',
  'try:',
  '    exec(compile(sys.argv[1], "<task>", "exec"), {"__name__": "__main__"})',
  'except SystemExit as e:',
  '    if e.code not in (None, 0): raise',
  'sys.stdout.flush()',
  'with open("/proc/self/maps") as maps:',
  '    for line in maps:',
  '        parts = line.split(None, 5)',
  '        if len(parts) == 6 and parts[5].startswith("/"): note(parts[5].strip())',
  'out = []',
  'for p in list(seen):',
  '    if p.startswith(("/proc/", "/sys/", "/dev/")): continue',
  '    if os.path.isfile(p):',
  '        out.append(p)',
  '        r = os.path.realpath(p)',
  '        if r != p: out.append(r)',
  'with os.fdopen(out_fd, "w", encoding="utf-8", errors="surrogateescape") as f:',
  '    f.write("\\n".join(dict.fromkeys(out)) + "\\n")',
].join('\n');

/** The longest path a recorded profile keeps, in bytes (Linux's PATH_MAX). */
const MAX_PATH_LENGTH = 4096;

/** A recorder run's output, validated: its paths (absolute, normalised), and how many lines were refused. */
export interface RecordedProfile {
  paths: string[];
  /** Lines that were not a path in the image: relative, not normalised, too long, control characters, under /proc, /sys or /dev. */
  refused: number;
  /** More distinct paths than `maxPaths`: `paths` holds the first `maxPaths`. */
  truncated: boolean;
}

const NOT_IN_IMAGE = /^\/(proc|sys|dev)(\/|$)/;
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

/**
 * The paths a recorder run printed (see {@link PREFETCH_RECORDER_PY}), as written to a profile:
 * the output comes from code in the image, which anyone who published one of its packages wrote,
 * so each line must be an absolute, normalised path (`posix.normalize` leaves it as it is: no
 * `.`/`..`, no `//`, no trailing `/`) of at most `maxPathLength` bytes, without control
 * characters, and not under `/proc`, `/sys` or `/dev`; the others are refused and counted.
 * Duplicates are dropped, the first `maxPaths` distinct paths kept.
 */
export function recordedProfilePaths(output: string, limits: { maxPaths: number; maxPathLength?: number }): RecordedProfile {
  const { maxPaths, maxPathLength = MAX_PATH_LENGTH } = limits;
  const paths = new Set<string>();
  let refused = 0;
  let truncated = false;
  for (const line of output.split('\n')) {
    if (line === '') continue;
    const valid = line.startsWith('/') && !line.endsWith('/') && !CONTROL.test(line) && Buffer.byteLength(line) <= maxPathLength && posix.normalize(line) === line && !NOT_IN_IMAGE.test(line);
    if (!valid) refused += 1;
    else if (paths.size < maxPaths) paths.add(line);
    else if (!paths.has(line)) truncated = true;
  }
  return { paths: [...paths], refused, truncated };
}
