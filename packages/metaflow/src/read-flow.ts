/**
 * Reads a Metaflow flow file statically: the flow class it runs, its steps, and the decorators
 * that shape each step's environment. Runs `python/read_flow.py` with the host python3 (its `ast`
 * module only — neither the flow nor Metaflow is imported).
 */
import { readdir, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve as resolvePath } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InputError, closestName, createLogger, errorMessage, EnvironmentError, fileArgument } from '@prebuilt/core';
import { runPythonScript, type HostPythonOptions } from './host-python.js';

const log = createLogger('metaflow');

/** The script, shipped in the package's `python/` folder. */
export const READ_FLOW_SCRIPT = fileURLToPath(new URL('../python/read_flow.py', import.meta.url));

export type EnvDecoratorName = 'conda' | 'pypi' | 'conda_base' | 'pypi_base';
export type RemoteDecoratorName = 'kubernetes' | 'batch';

/** One `@conda`/`@pypi`/`@conda_base`/`@pypi_base`, with the arguments that were written. */
export interface EnvDecorator {
  name: EnvDecoratorName;
  /** Line of the decorator in its file (`file`, else the flow file). */
  line: number;
  /** The module file it is written in, when that is not the flow file (a base flow's module). */
  file?: string;
  packages?: Record<string, string>;
  /** Deprecated alias of `packages` (`@conda`, `@conda_base` only). */
  libraries?: Record<string, string>;
  /** `null` when written as None or "". */
  python?: string | null;
  /** Normalised as Metaflow does: truthy and not the string "false". `null` when written as None. */
  disabled?: boolean | null;
  /** Line of each argument's value. */
  argLines: Record<string, number>;
}

/** One `@kubernetes` / `@batch`. */
export interface RemoteDecorator {
  name: RemoteDecoratorName;
  line: number;
  /** Requested GPUs (`null` when not given). */
  gpu: number | null;
  /** The `image` argument: a constant, absent, or computed at run time (line of the expression). */
  image: { kind: 'static'; value: string } | { kind: 'absent' } | { kind: 'dynamic'; line: number };
  /** `@kubernetes(node_selector=…)`: a dict or `"k=v,k2=v2"` as written (not yet checked), absent, or computed at run time. */
  nodeSelector?: PlacementArg;
  /** `@kubernetes(tolerations=[…])`, as `nodeSelector`. */
  tolerations?: PlacementArg;
  /** `@kubernetes(compute_pool="x")` (Metaflow adds the node label `outerbounds.co/compute-pool: x`), as `nodeSelector`. */
  computePool?: PlacementArg;
  /** `@kubernetes(gpu_vendor="amd")` (the GPU resource `<vendor>.com/gpu`), as `nodeSelector`. */
  gpuVendor?: PlacementArg;
}

/** A placement argument of `@kubernetes`: its literal or constant value, or why it cannot be read without running the flow. */
export type PlacementArg = { kind: 'static'; value: unknown; line: number } | { kind: 'dynamic'; line: number; why: string };

/**
 * An absolute import as the flow file writes it: `import a.b` (`names` absent) or `from a import b, c`
 * (`names`, `*` for a star import). Relative imports name the flow's own files and are not listed.
 */
export interface FlowImport {
  module: string;
  names?: string[];
  line: number;
  /** The module file the import is written in, when that is not the flow file (a base flow's module). */
  file?: string;
  /** Written inside a `try` (the code guards it: a missing module is expected to be possible). */
  optional: boolean;
  /** Written inside another compound statement (`if TYPE_CHECKING:`, `for`, `with`, `match`): it may not run. */
  conditional?: boolean;
  /**
   * The flow's own module: its top-level name is a `.py` file or a folder beside the flow file.
   * Metaflow's code package carries those files to every task and the flow's folder comes first on
   * its `sys.path`, so the task imports them from there, never from the image.
   */
  local?: boolean;
}

/** A step's `@resources`: what prebuilt reads of it. */
export interface ResourcesDecorator {
  line: number;
  /** Requested GPUs (`null` when not given); Metaflow gives them to the step's @kubernetes/@batch. */
  gpu: number | null;
}

export interface FlowStep {
  name: string;
  /** Line of the step's `def` in its file (`file`, else the flow file). */
  line: number;
  /** The module file the step is defined in, when that is not the flow file (an inherited step of a base flow's module). */
  file?: string;
  /** The imports of the step's function body (nested functions included), in source order. */
  imports: FlowImport[];
  conda?: EnvDecorator;
  pypi?: EnvDecorator;
  remote?: RemoteDecorator;
  resources?: ResourcesDecorator;
}

export interface FlowFile {
  /** The path as given. */
  file: string;
  /** The path resolved against the working directory. */
  path: string;
  /** The FlowSpec class the file runs. */
  flow: string;
  line: number;
  condaBase?: EnvDecorator;
  pypiBase?: EnvDecorator;
  /** In source order (inherited steps first, base flows' modules included). */
  steps: FlowStep[];
  /**
   * The imports that run when the file is loaded: module level and class bodies, not function bodies;
   * the flow file's, then those of the modules its base flows come from (`file` says which).
   */
  imports: FlowImport[];
  /** Version of the interpreter that read the file (Metaflow's default python), e.g. `3.11.7`. */
  hostPython: string;
}

export interface ReadFlowOptions extends HostPythonOptions {
  /** Directory relative paths are resolved against. Default: process.cwd(). */
  cwd?: string;
}

interface RawArg {
  value?: unknown;
  dynamic?: boolean;
  /** Why a dynamic placement argument cannot be read. */
  why?: string;
  line: number;
}
interface RawDecorator {
  name: string;
  line: number;
  file?: string;
  args: Record<string, RawArg>;
}
interface RawImport {
  module: string;
  names: string[] | null;
  line: number;
  file?: string;
  optional: boolean;
  conditional?: boolean;
}
type RawResult =
  | {
      ok: true;
      hostPython: string;
      flow: { name: string; line: number };
      flowDecorators: RawDecorator[];
      imports: RawImport[];
      steps: { name: string; line: number; file?: string; decorators: RawDecorator[]; imports: RawImport[] }[];
    }
  | {
      ok: false;
      hostPython: string;
      /** `file`, `module`, `chain`: the error is in a module the flow file imports (its path from the flow's directory), reached through `chain`. */
      error: { kind: string; message: string; line: number | null; step: string | null; file?: string; module?: string; chain?: { file: string | null; line: number }[] };
    };

const HINTS: Record<string, string> = {
  syntax: 'Fix the syntax error (`python3 -m py_compile FILE` shows it too).',
  'no-flow': 'A flow file defines `class MyFlow(FlowSpec)` with `from metaflow import FlowSpec` (or `metaflow.FlowSpec`).',
  'imported-flow':
    'Define the base flow in the flow file or in a module under its directory (`from base import TeamFlow` reads base.py beside the flow file; ' +
    'Metaflow packages those files for its tasks); helpers and mixins without steps or env decorators can stay in installed libraries.',
  'relative-import':
    'Write the import as Python finds it when Metaflow runs `python flow.py`: the flow file\'s directory comes first on sys.path, ' +
    'so `from base import TeamFlow` or `from mypkg.base import TeamFlow` (relative imports work inside a package, not in the flow file).',
  'outside-module':
    'Keep the modules base flows come from under the flow file\'s directory as real files, not symlinks out of it: Metaflow\'s code package ' +
    'carries only that directory to the tasks.',
  'import-cycle':
    'Break the cycle: a module that base flows or decorator values come from must not import the flow file, or a module that imports it back, ' +
    'for what it needs at import time.',
  'too-many-modules': 'Keep the base flows within a few modules of the flow file; prebuilt follows a bounded number of them.',
  'too-large': 'A flow file or a module a base flow comes from is far larger than a flow needs: check that the path names the flow.',
  'too-deep': 'Python cannot parse an expression nested that deeply either (`python3 -m py_compile FILE` fails too): write it flatter, or check that the path names the flow.',
  'unreadable-base':
    'Define base flows with a `class` statement at the top level of a module under the flow file\'s directory, ' +
    'and import them at the top level (`from base import TeamFlow`, `import base` with `base.TeamFlow`).',
  'invalid-flow': 'Order the base classes so that Python can build the class (a subclass before its base).',
  'no-steps': 'Decorate the flow\'s methods with `@step` (from metaflow).',
  'ambiguous-flow': 'Say which flow the file runs: end it with `if __name__ == "__main__":` and `MyFlow()`.',
  'dynamic-value':
    'prebuilt reads decorators without running the flow: use literals, module-level constants or simple expressions ' +
    '(dicts, lists, strings, `{**BASE, "pkg": "1.0"}`, string concatenation, f-strings of constants), or constants imported from the ' +
    "flow's own modules (`from settings import PYTHON`, `import settings as cfg` with `cfg.BASE`), each assigned once.",
  'config-value':
    'prebuilt reads decorators without running the flow, so it cannot follow a Metaflow Config (its files, --config, --config-value): ' +
    'write the env decorators\' packages and python in the flow file (literals or module-level constants) and keep the Config for the rest.',
  'invalid-value': 'Fix the decorator argument; Metaflow expects packages={"name": "version spec"}, python="3.11", disabled=True/False.',
  'invalid-decorator': 'Fix the decorator; see the Metaflow documentation of @conda, @pypi, @kubernetes and @batch.',
  'duplicate-decorator': 'Keep one of the two decorators.',
  io: 'Check the path and permissions of the file.',
};

function location(file: string, line: number | null | undefined): string {
  return line ? `${file}:${line}` : file;
}

/**
 * Checks that the flow file exists and is a file; returns its absolute path. Missing, a directory or
 * unreadable → InputError (exit 2) naming it. Commands run it before anything else: a misspelt path is
 * the thing to fix, before any setting.
 */
export async function checkFlowFile(file: string, cwd: string = process.cwd()): Promise<string> {
  const path = resolvePath(cwd, file);
  try {
    const info = await stat(path);
    if (!info.isFile()) throw new InputError(`${file} is not a file.`, { file, hint: 'Pass the path of a flow file (flow.py).' });
  } catch (error) {
    if (error instanceof InputError) throw error;
    const missing = (error as NodeJS.ErrnoException).code === 'ENOENT';
    const meant = missing ? await likelyFlowFile(path) : undefined;
    throw new InputError(missing ? `Flow file ${file} does not exist (${path}).` : `Flow file ${file} cannot be read: ${errorMessage(error)}.`, {
      file,
      cause: error,
      hint: `${meant === undefined ? '' : `Did you mean ${join(dirname(file), meant)}? `}Check the path; relative paths are resolved against the current directory.`,
    });
  }
  return path;
}

/** The .py file beside a missing `path` whose name is a likely typo of its name (flwo.py → flow.py), if there is one. */
async function likelyFlowFile(path: string): Promise<string | undefined> {
  const entries = await readdir(dirname(path), { withFileTypes: true }).catch(() => []);
  return closestName(basename(path), entries.filter((entry) => entry.isFile() && entry.name.endsWith('.py')).map((entry) => entry.name));
}

/** Reads a flow file. Bad input → InputError (exit 2) with file and line; no python3 → EnvironmentError. */
export async function readFlow(file: string, options: ReadFlowOptions = {}): Promise<FlowFile> {
  const path = await checkFlowFile(file, options.cwd);

  // The reader needs the standard library only (ast, json): without `site`, the interpreter's
  // site-packages and their .pth files are not read at start-up.
  const stdout = await runPythonScript(READ_FLOW_SCRIPT, [path], { ...options, site: false });
  let raw: RawResult;
  try {
    raw = JSON.parse(stdout) as RawResult;
  } catch (cause) {
    throw new EnvironmentError(`The flow reader printed something that is not JSON: ${stdout.slice(0, 200)}`, { cause });
  }
  log('read %s: %o', file, raw.ok ? { flow: raw.flow.name, steps: raw.steps.length } : raw.error);

  if (!raw.ok) throw readError(file, raw.error);

  const local = await localModules(dirname(path), [raw.imports, ...raw.steps.map((s) => s.imports)].flat());
  const inFile = (entry: { file?: string }) => (entry.file === undefined ? {} : { file: moduleFile(file, entry.file) });
  const flowImport = (entry: RawImport): FlowImport => ({
    module: entry.module,
    ...(entry.names ? { names: entry.names } : {}),
    line: entry.line,
    ...inFile(entry),
    optional: entry.optional,
    ...(entry.conditional ? { conditional: true } : {}),
    ...(local.has(topLevel(entry.module)) ? { local: true } : {}),
  });
  const flow: FlowFile = {
    file,
    path,
    flow: raw.flow.name,
    line: raw.flow.line,
    steps: [],
    imports: raw.imports.map(flowImport),
    hostPython: raw.hostPython,
  };
  for (const deco of raw.flowDecorators) {
    if (deco.name === 'conda_base') flow.condaBase = { ...envDecorator(deco), ...inFile(deco) };
    else if (deco.name === 'pypi_base') flow.pypiBase = { ...envDecorator(deco), ...inFile(deco) };
  }
  for (const rawStep of raw.steps) {
    const step: FlowStep = { name: rawStep.name, line: rawStep.line, ...inFile(rawStep), imports: rawStep.imports.map(flowImport) };
    for (const deco of rawStep.decorators) {
      if (deco.name === 'conda') step.conda = { ...envDecorator(deco), ...inFile(rawStep) };
      else if (deco.name === 'pypi') step.pypi = { ...envDecorator(deco), ...inFile(rawStep) };
      else if (deco.name === 'kubernetes' || deco.name === 'batch') step.remote = remoteDecorator(deco);
      else if (deco.name === 'resources') step.resources = { line: deco.line, gpu: typeof deco.args.gpu?.value === 'number' ? deco.args.gpu.value : null };
    }
    flow.steps.push(step);
  }
  return flow;
}

/** A module's path as the reader gives it (relative to the flow file's directory), as the user reaches it: beside `file`. */
function moduleFile(file: string, relative: string): string {
  return join(dirname(file), relative);
}

/**
 * The InputError for what the reader refused: at the file and line (a module the flow's base classes
 * come from, with the chain of imports that reached it), with the hint for its kind.
 */
function readError(file: string, error: Extract<RawResult, { ok: false }>['error']): InputError {
  const { kind, message, line, step } = error;
  const at = error.file === undefined ? file : moduleFile(file, error.file);
  const chain = (error.chain ?? []).map((hop) => `${hop.file === null ? file : moduleFile(file, hop.file)}:${hop.line}`);
  const through = error.module && chain.length > 0 ? ` (module ${error.module}, imported at ${chain.join(' → ')})` : '';
  return new InputError(`${location(at, line)}: ${step && !message.includes(`'${step}'`) ? `step '${step}': ` : ''}${message}${through}`, {
    file: at,
    ...(line ? { line } : {}),
    hint: (HINTS[kind] ?? HINTS['invalid-decorator']!).replace('FILE', () => fileArgument(at)),
  });
}

function topLevel(module: string): string {
  return module.split('.', 1)[0]!;
}

/**
 * The top-level names of `imports` that are the flow's own modules: a `<name>.py` file or a
 * `<name>/` folder (a package, or a namespace package) in the flow file's directory `dir`.
 */
async function localModules(dir: string, imports: readonly RawImport[]): Promise<Set<string>> {
  const names = [...new Set(imports.map((entry) => topLevel(entry.module)))];
  const found = await Promise.all(
    names.map(async (name) => {
      for (const [candidate, kind] of [[`${name}.py`, 'file'], [name, 'directory']] as const) {
        const info = await stat(join(dir, candidate)).catch(() => null);
        if (info && (kind === 'file' ? info.isFile() : info.isDirectory())) return name;
      }
      return null;
    }),
  );
  return new Set(found.filter((name): name is string => name !== null));
}

function envDecorator(raw: RawDecorator): EnvDecorator {
  const deco: EnvDecorator = { name: raw.name as EnvDecoratorName, line: raw.line, argLines: {} };
  for (const [name, arg] of Object.entries(raw.args)) {
    deco.argLines[name] = arg.line;
    if (name === 'packages' || name === 'libraries') deco[name] = arg.value as Record<string, string>;
    else if (name === 'python') deco.python = (arg.value as string | null) ?? null;
    else if (name === 'disabled') deco.disabled = (arg.value as boolean | null) ?? null;
  }
  return deco;
}

function remoteDecorator(raw: RawDecorator): RemoteDecorator {
  const gpu = raw.args.gpu?.value;
  const image = raw.args.image;
  return {
    name: raw.name as RemoteDecoratorName,
    line: raw.line,
    gpu: typeof gpu === 'number' ? gpu : null,
    image:
      image === undefined || (!image.dynamic && (image.value === null || image.value === undefined))
        ? { kind: 'absent' }
        : image.dynamic
          ? { kind: 'dynamic', line: image.line }
          : { kind: 'static', value: String(image.value) },
    ...placementArgs(raw),
  };
}

type PlacementKey = 'nodeSelector' | 'tolerations' | 'computePool' | 'gpuVendor';

function placementArgs(raw: RawDecorator): Pick<RemoteDecorator, PlacementKey> {
  const out: Pick<RemoteDecorator, PlacementKey> = {};
  const names = [['node_selector', 'nodeSelector'], ['tolerations', 'tolerations'], ['compute_pool', 'computePool'], ['gpu_vendor', 'gpuVendor']] as const;
  for (const [name, key] of names) {
    const arg = raw.args[name];
    if (arg === undefined) continue;
    out[key] = arg.dynamic ? { kind: 'dynamic', line: arg.line, why: arg.why ?? 'it is computed' } : { kind: 'static', value: arg.value, line: arg.line };
  }
  return out;
}
