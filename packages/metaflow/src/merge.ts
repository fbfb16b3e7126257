/**
 * Per-step env merge, following Metaflow 2.19 (plugins/pypi/conda_decorator.py, pypi_decorator.py,
 * conda_environment.py `get_environment`):
 *
 * - Every step carries an implicit `@conda`; `@pypi_base` attaches `@pypi` to every step.
 * - On each decorator, `libraries` (deprecated) is folded under `packages`: `{**libraries, **packages}`.
 * - Step over base: `packages = {**base.packages, **step.packages}`, `python = step.python or base.python`,
 *   `disabled = step.disabled if not None else base.disabled`.
 * - The env's python is the @pypi one if set, else the @conda one, else the default (the deploy
 *   interpreter's version).
 * - A step is disabled when its @conda or its @pypi is disabled: it runs with the image's python.
 * - Metaflow adds its pins under @pypi's packages whenever @pypi applies, so a step with @pypi
 *   (or @pypi_base) and any conda package is refused, even when @pypi lists no packages itself.
 */
import { InputError } from '@prebuilt/core';
import type { EnvDecorator, FlowFile, FlowStep } from './read-flow.js';

export interface StepEnv {
  step: string;
  /** null only when disabled. */
  python: string | null;
  /** Merged user request (Metaflow's pins not included); empty when disabled. */
  conda: Record<string, string>;
  pypi: Record<string, string>;
  disabled: boolean;
  /** True when @pypi or @pypi_base applies to the step (Metaflow then puts its pins under PyPI). */
  usesPypi: boolean;
  remote: 'kubernetes' | 'batch' | null;
  /** The remote decorator asks for at least one GPU. */
  gpu: boolean;
}

interface Layer {
  packages: Record<string, string>;
  python: string | null;
  disabled: boolean | null;
}

function layer(deco: EnvDecorator | undefined): Layer {
  return {
    packages: { ...(deco?.libraries ?? {}), ...(deco?.packages ?? {}) },
    python: deco?.python || null,
    disabled: deco?.disabled ?? null,
  };
}

function overlay(base: EnvDecorator | undefined, step: EnvDecorator | undefined): Layer {
  const b = layer(base);
  const s = layer(step);
  return {
    packages: { ...b.packages, ...s.packages },
    python: s.python || b.python,
    disabled: s.disabled !== null ? s.disabled : b.disabled,
  };
}

const PYTHON_VERSION = /^\d+(\.\d+){0,2}(\.\*)?$/;
/** A free-threaded CPython, as Metaflow's @conda writes it (`3.13t`). */
const FREE_THREADED = /^\d+\.\d+(\.\d+)?t$/;

/** Merges one step's decorators with the flow's, as Metaflow does. `defaultPython` fills an unset python. */
export function mergeStepEnv(flow: Pick<FlowFile, 'file' | 'condaBase' | 'pypiBase'>, step: FlowStep, defaultPython: string): StepEnv {
  const conda = overlay(flow.condaBase, step.conda);
  const usesPypi = step.pypi !== undefined || flow.pypiBase !== undefined;
  const pypi = usesPypi ? overlay(flow.pypiBase, step.pypi) : undefined;
  const disabled = conda.disabled === true || pypi?.disabled === true;
  const remote = step.remote?.name ?? null;
  const gpu = stepGpus(step) > 0;

  if (disabled) {
    return { step: step.name, python: null, conda: {}, pypi: {}, disabled, usesPypi, remote, gpu };
  }

  const python = pypi?.python || conda.python || defaultPython;
  if (!PYTHON_VERSION.test(python)) {
    const source = sourceOf(flow, step, 'python', pypi?.python ? ['pypi', 'pypi_base'] : ['conda', 'conda_base']);
    const file = source?.file ?? flow.file;
    const at = { file, ...(source ? { line: source.line } : {}) };
    if (FREE_THREADED.test(python)) {
      // Metaflow 2.19's @conda asks micromamba for python==3.13 and python-freethreading.
      throw new InputError(
        `${source ? `${file}:${source.line}` : file}: step '${step.name}' asks for the free-threaded python '${python}', which prebuilt does not build.`,
        { ...at, hint: `Ask for the python without the 't' ("${python.slice(0, -1)}"): prebuilt builds CPython's standard (GIL) interpreter.` },
      );
    }
    throw new InputError(`${source ? `${file}:${source.line}` : file}: step '${step.name}' asks for python '${python}', which is not a version.`, {
      ...at,
      hint: 'Write the python version as "3.11" or "3.11.9".',
    });
  }

  if (pypi && Object.keys(conda.packages).length > 0) {
    const condaSource = sourceOf(flow, step, 'packages', ['conda', 'conda_base']) ?? sourceOf(flow, step, 'libraries', ['conda', 'conda_base']);
    const pypiSource = step.pypi ?? flow.pypiBase;
    const file = condaSource ? (condaSource.file ?? flow.file) : (step.file ?? flow.file);
    const pypiAt = pypiSource === undefined ? 'line ?' : (pypiSource.file ?? flow.file) === file ? `line ${pypiSource.line}` : `${pypiSource.file ?? flow.file}:${pypiSource.line}`;
    throw new InputError(
      `${file}:${condaSource?.line ?? step.line}: step '${step.name}' asks for conda packages ` +
        `(${Object.keys(conda.packages).join(', ')}, from @${condaSource?.name ?? 'conda'}) and uses ` +
        `@${pypiSource?.name ?? 'pypi'} (${pypiAt}); Metaflow does not support mixing conda and PyPI packages in one step.`,
      {
        file,
        line: condaSource?.line ?? step.line,
        hint: `Use only @conda or only @pypi for step '${step.name}' (move the packages to one of them).`,
      },
    );
  }

  return {
    step: step.name,
    python,
    conda: conda.packages,
    pypi: pypi?.packages ?? {},
    disabled: false,
    usesPypi,
    remote,
    gpu,
  };
}

/**
 * The GPUs a remote step asks for, as Metaflow 2.19 sets them: @kubernetes takes @resources' gpu
 * when given (over its own), @batch the larger of the two. A step with no static remote decorator
 * gets @kubernetes from `--with kubernetes` or Argo Workflows (@batch from Step Functions: the same
 * unless both say a number, which only a static decorator can).
 */
export function stepGpus(step: Pick<FlowStep, 'remote' | 'resources'>): number {
  const own = step.remote?.gpu ?? null;
  const resources = step.resources?.gpu ?? null;
  if (step.remote?.name === 'batch') return Math.max(own ?? 0, resources ?? 0);
  return resources ?? own ?? 0;
}

/** The decorator (step first, then flow) that wrote an argument, for error locations. */
function sourceOf(
  flow: Pick<FlowFile, 'condaBase' | 'pypiBase'>,
  step: FlowStep,
  arg: string,
  names: readonly ['conda' | 'pypi', 'conda_base' | 'pypi_base'],
): { name: string; line: number; file?: string } | undefined {
  const stepDeco = names[0] === 'conda' ? step.conda : step.pypi;
  const flowDeco = names[1] === 'conda_base' ? flow.condaBase : flow.pypiBase;
  for (const deco of [stepDeco, flowDeco]) {
    if (deco === undefined) continue;
    const line = deco.argLines[arg];
    const value = arg === 'python' ? deco.python : arg === 'packages' ? deco.packages : deco.libraries;
    const present = arg === 'python' ? Boolean(value) : value !== undefined && Object.keys(value as object).length > 0;
    if (line !== undefined && present) return { name: deco.name, line, ...(deco.file === undefined ? {} : { file: deco.file }) };
  }
  return undefined;
}

/** Merges every step of a flow. */
export function mergeFlowEnvs(flow: FlowFile, defaultPython: string): StepEnv[] {
  return flow.steps.map((step) => mergeStepEnv(flow, step, defaultPython));
}
