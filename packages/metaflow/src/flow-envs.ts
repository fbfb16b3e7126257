/**
 * `prebuilt envs`: a flow file → each step's merged env and its request identity. No network.
 */
import {
  ConfigError,
  requestDefaults,
  specHash,
  type EnvRequest,
  type RequestDefaultsOptions,
} from '@prebuilt/core';
import { mergeFlowEnvs, type StepEnv } from './merge.js';
import { readFlow, type FlowFile, type ReadFlowOptions } from './read-flow.js';

export interface FlowEnvsOptions extends ReadFlowOptions, Omit<RequestDefaultsOptions, 'env'> {
  /** Python for steps that name none. Default: METAFLOW_PREBUILT_DEFAULT_PYTHON, else the host python3's version. */
  defaultPython?: string;
}

export interface StepEnvWithRequest extends StepEnv {
  /** The effective request; null when disabled. */
  request: EnvRequest | null;
  specHash: string | null;
}

export interface FlowEnvs {
  flow: string;
  file: string;
  /** In step order. */
  steps: StepEnvWithRequest[];
  /** The flow file as read. */
  source: FlowFile;
}

/** The `--json` shape of `prebuilt envs`. */
export interface FlowEnvsJson {
  flow: string;
  file: string;
  steps: Record<
    string,
    {
      python: string | null;
      conda: Record<string, string>;
      pypi: Record<string, string>;
      disabled: boolean;
      remote: 'kubernetes' | 'batch' | null;
      gpu: boolean;
      specHash: string | null;
    }
  >;
}

const VERSION = /^\d+\.\d+(\.\d+)?$/;

/** The python a step gets when it names none. */
export function defaultPython(options: { defaultPython?: string; env?: Record<string, string | undefined> }, hostPython: string): string {
  const explicit = options.defaultPython || (options.env ?? process.env).METAFLOW_PREBUILT_DEFAULT_PYTHON;
  if (explicit) {
    const value = explicit.trim();
    if (!VERSION.test(value)) {
      throw new ConfigError(`Default python '${value}' is not a version like 3.11 or 3.11.9.`, {
        setting: options.defaultPython ? 'defaultPython' : 'METAFLOW_PREBUILT_DEFAULT_PYTHON',
        hint: 'Set METAFLOW_PREBUILT_DEFAULT_PYTHON to a version such as 3.11.9, or unset it to use the host python3\'s version.',
      });
    }
    return value;
  }
  return hostPython;
}

/** Reads a flow, merges every step's env as Metaflow does, and computes each request's specHash. */
export async function flowEnvs(file: string, options: FlowEnvsOptions = {}): Promise<FlowEnvs> {
  const defaults = requestDefaults({ ...options, ...(options.env ? { env: options.env } : {}) });
  const source = await readFlow(file, options);
  const python = defaultPython(options, source.hostPython);
  const steps = mergeFlowEnvs(source, python).map((env): StepEnvWithRequest => {
    if (env.disabled || env.python === null) return { ...env, request: null, specHash: null };
    const request: EnvRequest = { python: env.python, conda: env.conda, pypi: env.pypi, ...defaults };
    return { ...env, request, specHash: specHash(request) };
  });
  return { flow: source.flow, file, steps, source };
}

/** The JSON contract of `prebuilt envs --json`. */
export function flowEnvsJson(envs: FlowEnvs): FlowEnvsJson {
  const steps: FlowEnvsJson['steps'] = {};
  for (const s of envs.steps) {
    steps[s.step] = {
      python: s.python,
      conda: s.conda,
      pypi: s.pypi,
      disabled: s.disabled,
      remote: s.remote,
      gpu: s.gpu,
      specHash: s.specHash,
    };
  }
  return { flow: envs.flow, file: envs.file, steps };
}
