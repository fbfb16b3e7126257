/**
 * `prebuilt profile`: records the eStargz prefetch profile of a built flow — each selected step's
 * image run once on the local Docker daemon with the oci package's recorder and the step's imports
 * (or the user's code), the paths it read first written as one profile file for the next build.
 * Prints nothing: progress goes to `onProgress`, the result comes back as a value.
 */
import { basename, resolve } from 'node:path';
import { ExitCode, PrebuiltError, lastLines, writeFileAtomic, type ImageMap, type RegistryCredentials } from '@prebuilt/core';
import type { IsolatedRunResult } from '@prebuilt/docker';
import { importCode, importStatement, taskImports, type FlowFile } from '@prebuilt/metaflow';
import type { AppScope } from './app-scope.js';
import { checkedImageMapStep, missingStepsError } from './image-map-checks.js';
import { profileFilePath } from './prefetch-profile.js';

/** How long one recording run may take by default. */
export const DEFAULT_PROFILE_TIMEOUT_MS = 120_000;
/** How many distinct paths one recording may list by default (the realistic env's import reads ~5,000 files). */
export const DEFAULT_PROFILE_MAX_PATHS = 100_000;
/** The most a recording may print on stdout: the container is killed beyond it. */
export const PROFILE_MAX_OUTPUT_BYTES = 32 * 1024 * 1024;
export interface ProfileFlowOptions extends AppScope {
  /** The flow file as the user named it (for messages). */
  flowFile: string;
  flow: FlowFile;
  imageMap: ImageMap;
  /** The steps to record (each in the map with an image). */
  steps: readonly string[];
  /** Code run in place of each step's imports. */
  code?: string;
  /** Where to write the profile (default {@link profileFilePath}). */
  output?: string;
  timeoutMs: number;
  maxPaths: number;
  /** Credentials for pulling an image the daemon lacks (asked for only then). */
  credentials?: () => Promise<RegistryCredentials | undefined>;
  onProgress?: (event: ProfileProgress) => void;
}

export type ProfileProgress =
  | { type: 'recording'; steps: string[]; image: string; imports: string[] | null }
  | { type: 'pulling'; image: string }
  /** Said once per command: e.g. the pull's registry credentials go to the Docker daemon unencrypted (the build's note, word for word). */
  | { type: 'note'; message: string }
  | { type: 'recorded'; steps: string[]; image: string; paths: number; refused: number; ms: number };

/** One step: its env, image and the code its recording ran (`imports`: the statements, null with --code). */
export interface ProfileStep {
  step: string;
  envId: string;
  image: string;
  imports: string[] | null;
}

/** One env: its image, its recorded steps, and the paths its runs read, in first-read order. */
export interface ProfileEnv {
  envId: string;
  image: string;
  steps: string[];
  paths: string[];
}

export interface ProfileFlowResult {
  flow: string;
  /** The profile file written (absolute). */
  file: string;
  /** Paths in the file: every env's, in first-read order, each once. */
  paths: number;
  steps: ProfileStep[];
  envs: ProfileEnv[];
}

/** A recording run failed (the code raised, timed out, printed too much): exit 1. */
export class ProfileRunError extends PrebuiltError {
  constructor(message: string, hint: string) {
    super('profile-failed', message, ExitCode.failure, { hint });
    this.name = 'ProfileRunError';
  }
}

type RecordedPaths = (typeof import('@prebuilt/oci'))['recordedProfilePaths'];

interface Run {
  steps: string[];
  envId: string;
  image: string;
  python: string;
  code: string;
}

/** The runs to make: one per distinct (image, code) — steps sharing an env and their imports share a run. */
function plannedRuns(options: ProfileFlowOptions): { steps: ProfileStep[]; runs: Run[] } {
  const steps: ProfileStep[] = [];
  const runs = new Map<string, Run>();
  for (const step of options.steps) {
    const entry = options.imageMap.steps[step];
    if (!entry?.pinnedImage || entry.envId === null) {
      throw missingStepsError(options.imageMap, [step], options.flowFile);
    }
    // Checked before it reaches the terminal, the profile file's sections or a container run.
    const { image, python } = checkedImageMapStep(options.imageMap, step, options.flowFile);
    const imports = options.code === undefined ? taskImports(options.flow, step) : null;
    const code = options.code ?? importCode(imports!);
    steps.push({ step, envId: entry.envId, image, imports: imports?.map(importStatement) ?? null });
    const key = JSON.stringify([image, python, code]);
    const run = runs.get(key);
    if (run) run.steps.push(step);
    else runs.set(key, { steps: [step], envId: entry.envId, image, python, code });
  }
  return { steps, runs: [...runs.values()] };
}

/** The last lines of a failed run's stderr, indented, for the message. */
function stderrTail(text: string, lines = 15): string {
  const tail = lastLines(text, lines, '\n  ');
  return tail === '' ? '  (nothing on stderr)' : `  ${tail}`;
}

/** The run's paths, or the ProfileRunError saying why there are none. */
function checkedPaths(run: Run, result: IsolatedRunResult, options: ProfileFlowOptions, recordedProfilePaths: RecordedPaths): { paths: string[]; refused: number } {
  const which = `step${run.steps.length === 1 ? '' : 's'} ${run.steps.join(', ')}`;
  const hintCode = options.code === undefined ? `the imports of ${which} in ${options.flowFile} (or give --code)` : '--code';
  if (result.timedOut) {
    throw new ProfileRunError(`The recording of ${which} in ${run.image} did not finish within ${options.timeoutMs / 1000}s.`, `Give it longer with --timeout, or make ${hintCode} do less.\nIts stderr ended with:\n${stderrTail(result.stderrTail)}`);
  }
  if (result.stdoutOverflow) {
    throw new ProfileRunError(`The recording of ${which} in ${run.image} printed more than ${PROFILE_MAX_OUTPUT_BYTES} bytes of paths.`, 'The recorder lists the files the code opened; something in the image printed on its stdout. Record less (--code), or check the image.');
  }
  if (result.exitCode !== 0) {
    throw new ProfileRunError(
      `The recording of ${which} failed in ${run.image} (exit ${result.exitCode}):\n${stderrTail(result.stderrTail)}`,
      `Check ${hintCode}: ${run.python} ran them with no network, no mounts and none of this machine's environment variables.`,
    );
  }
  const recorded = recordedProfilePaths(result.stdout, { maxPaths: options.maxPaths });
  if (recorded.truncated) {
    throw new ProfileRunError(`The recording of ${which} in ${run.image} read more than ${options.maxPaths} files.`, 'Raise --max-paths, or record less (--code).');
  }
  if (recorded.paths.length === 0) throw new ProfileRunError(`The recording of ${which} in ${run.image} printed no path.`, 'Check that the image is one prebuilt built (its interpreter must run the recorder).');
  return recorded;
}

/**
 * The profile file's text: a comment naming what was recorded, then one section per env
 * (`[env <envId>]`, then the paths its steps read first, in order): the envs share the image
 * prefix, so each env's image is laid out with its own paths only, and a change in one env's
 * paths rebuilds only that env's image.
 */
function profileText(options: ProfileFlowOptions, envs: readonly ProfileEnv[]): string {
  const header = [
    `# Prefetch profile of ${options.flow.flow} (${basename(options.flow.path)}), written by prebuilt profile: the files each step read first, in order.`,
    `# prebuilt build ${basename(options.flow.path)} uses it (the images laid out otherwise are rebuilt); METAFLOW_PREBUILT_OCI_PREFETCH overrides it.`,
  ];
  const sections = envs.flatMap((env) => [`# ${env.steps.join(', ')}: ${env.image}`, `[env ${env.envId}]`, ...env.paths]);
  return `${[...header, ...sections].join('\n')}\n`;
}

/** Records the profile of the selected steps and writes it atomically; see the module comment. */
export async function profileFlow(options: ProfileFlowOptions): Promise<ProfileFlowResult> {
  const { steps, runs } = plannedRuns(options);
  // Imported here: every command loads the app layer, only this one runs images.
  const [{ runIsolatedContainer }, { PREFETCH_RECORDER_PY, recordedProfilePaths }] = await Promise.all([import('@prebuilt/docker'), import('@prebuilt/oci')]);
  const envs = new Map<string, ProfileEnv & { seen: Set<string> }>();
  // Each run has its own daemon connection, each saying its note once: the command says it once.
  const noted = new Set<string>();
  const note = (message: string): void => {
    if (noted.has(message)) return;
    noted.add(message);
    options.onProgress?.({ type: 'note', message });
  };
  for (const run of runs) {
    options.onProgress?.({ type: 'recording', steps: run.steps, image: run.image, imports: steps.find((s) => s.step === run.steps[0])!.imports });
    const started = Date.now();
    const result = await runIsolatedContainer({
      image: run.image,
      command: [run.python, '-u', '-c', PREFETCH_RECORDER_PY, run.code], // -u: the stderr tail of a killed run has all it printed
      timeoutMs: options.timeoutMs,
      maxStdoutBytes: PROFILE_MAX_OUTPUT_BYTES,
      env: options.env,
      signal: options.signal,
      ...(options.credentials ? { credentials: options.credentials } : {}),
      onPull: (image) => options.onProgress?.({ type: 'pulling', image }),
      note,
    });
    const { paths, refused } = checkedPaths(run, result, options, recordedProfilePaths);
    options.onProgress?.({ type: 'recorded', steps: run.steps, image: run.image, paths: paths.length, refused, ms: Date.now() - started });
    const env = envs.get(run.envId) ?? { envId: run.envId, image: run.image, steps: [], paths: [], seen: new Set<string>() };
    envs.set(run.envId, env);
    env.steps.push(...run.steps);
    for (const path of paths) {
      if (env.seen.has(path)) continue;
      env.seen.add(path);
      env.paths.push(path);
    }
  }
  const all = [...new Set([...envs.values()].flatMap((env) => env.paths))];
  const file = options.output === undefined ? profileFilePath(options.flow.path) : resolve(options.cwd, options.output);
  const result = [...envs.values()].map(({ seen: _seen, ...env }) => env);
  await writeFileAtomic(file, profileText(options, result));
  return { flow: options.flow.flow, file, paths: all.length, steps, envs: result };
}
