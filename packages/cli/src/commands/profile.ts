import { resolve } from 'node:path';
import { InputError, ConfigError } from '@prebuilt/core';
import { Option, type Command } from 'commander';
import type { CliContext } from '../cli-context.js';
import { DEFAULT_PROFILE_MAX_PATHS, DEFAULT_PROFILE_TIMEOUT_MS, LAYER_COMPRESSION_SETTING, PREFETCH_SETTING, profileUnusedBy, PROFILE_MAX_OUTPUT_BYTES, createSelectedBackend, fileArgument, missingStepsError, profileFilePath, shellWord, shownPath, profileFlow, type ProfileFlowResult, type ProfileProgress } from '../app/index.js';
import { parseDuration } from '../duration.js';
import { collect, loadFlowImageMap, selectSteps } from '../lifecycle/flow-image-map.js';
import { noteLine, writeJsonResult } from '../output.js';

interface ProfileOptions {
  step?: string[];
  code?: string;
  output?: string;
  timeout: number;
  maxPaths: number;
  json?: boolean;
}

const PROFILE_HELP = `
Records what each step's task reads first, for the eStargz / zstd:chunked prefetch of the next
oci build: runs each selected step's image (the one prebuilt build wrote to the image map) once on
the local Docker daemon, with the env's interpreter running the oci package's recorder around the
step's imports — those of the flow file's module level and of the step's function body, read
statically (relative imports, metaflow and __future__ left out: the task takes Metaflow from its
code package; an import inside a try may fail) — or around --code. The files the run opened and
mapped (the interpreter, libraries, pycs and sources) are written, in first-read order, as one
profile for the whole flow (steps sharing an env and their imports share a run).

The image holds code anyone who published one of its packages wrote: the container has no
network, no mounts, none of this machine's environment variables or credentials, drops every
capability, is removed afterwards, and is killed after --timeout; its output is bounded
(${PROFILE_MAX_OUTPUT_BYTES / (1024 * 1024)} MiB, --max-paths paths), and each path is checked (absolute, normalised, no
control characters, not under /proc, /sys or /dev) before it is written. An image the daemon
lacks is pulled (with the selected registry's credentials), and stays on the daemon; when those
credentials go to the daemon unencrypted (plain TCP to another host), a note says so once, as
prebuilt build's does.

The profile goes to <flow>.prebuilt.prefetch beside the flow file (beside its lock file
<flow>.prebuilt.lock), or to -o; the same images and code give the same file, one section per
env. The next \`prebuilt build flow.py\` picks it up by itself (oci service, eStargz or
zstd:chunked layers) and rebuilds only the images whose profile part changed (each image's
manifest records the profile it was laid out with); ${PREFETCH_SETTING} (static, off, or
another file) overrides it.

Exit codes: 0 written, 1 a recording failed (an import raised, the time limit, too much output;
the stderr tail says what), the image could not be pulled or the Docker daemon stopped answering,
2 no image map (run prebuilt build first), a step without an image, the Docker daemon not
reachable, bad options, 130/143 interrupted.

Environment:
  DOCKER_HOST                       the Docker daemon that runs the images (default unix:///var/run/docker.sock)
  METAFLOW_PREBUILT_STATE_FILE      image map path (default .prebuilt/<Flow>/images.json beside the flow)
  METAFLOW_PREBUILT_IMAGE_REGISTRY  registry whose credentials pull the images (default dockerhub)
  METAFLOW_PREBUILT_NETWORK_IDLE_TIMEOUT  seconds the Docker daemon may send nothing before a call
                                    fails (default 60; the run itself is bounded by --timeout)

Examples (the whole loop, with METAFLOW_PREBUILT_BUILD_SERVICE=oci and
METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION=estargz set: build, record, build again with the profile):
  $ prebuilt build flow.py
  $ prebuilt profile flow.py && prebuilt build flow.py
  $ prebuilt profile flow.py --step train --code 'import pandas, sklearn; pandas.read_csv("/dev/null")' -o train.prefetch
  $ prebuilt profile flow.py --json`;

function renderProgress(context: CliContext, event: ProfileProgress): void {
  const steps = 'steps' in event ? `${event.steps.join(', ')}: ` : '';
  if (event.type === 'note') context.stderr.write(noteLine(event.message));
  else if (event.type === 'pulling') context.stderr.write(`pulling ${event.image}\n`);
  else if (event.type === 'recording') {
    const what = event.imports === null ? '--code' : event.imports.length === 0 ? 'no import (the interpreter alone)' : `${event.imports.length} import${event.imports.length === 1 ? '' : 's'}`;
    context.stderr.write(`${steps}recording ${what} in ${event.image}\n`);
  } else {
    const refused = event.refused > 0 ? ` (${event.refused} line${event.refused === 1 ? '' : 's'} of its output refused: not a path in the image)` : '';
    context.stderr.write(`${steps}${event.paths} paths in ${(event.ms / 1000).toFixed(1)}s${refused}\n`);
  }
}

function renderResult(context: CliContext, file: string, result: ProfileFlowResult): string {
  const shown = shownPath(context.cwd, result.file);
  const envs = result.envs.map((env) => `  ${env.steps.join(', ')}: ${env.paths.length} paths (${env.image})`);
  // The default file is picked up by the build of the flow; another one is named through the setting.
  const beside = result.file === profileFilePath(resolve(context.cwd, file));
  const unused = profileUnusedBy(context.env);
  // A build that would not read it (the default docker service, oci's gzip or zstd layers) is told how to, rather than told it picks the profile up.
  const settings = unused === undefined ? '' : `METAFLOW_PREBUILT_BUILD_SERVICE=oci ${LAYER_COMPRESSION_SETTING}=estargz `;
  const build = beside && unused === undefined ? `prebuilt build ${fileArgument(file)} (it picks up ${shown} and rebuilds the images laid out otherwise)` : `${settings}${beside ? '' : `${PREFETCH_SETTING}=${shellWord(shown)} `}prebuilt build ${fileArgument(file)}`;
  const why = unused === undefined ? '' : `  (as set now, a build would not use it: ${unused}; zstd:chunked layers use it too)\n`;
  return `${result.flow}: wrote ${result.paths} paths to ${shown}\n${envs.join('\n')}\nbuild with it: ${build}\n${why}`;
}

async function runProfile(file: string, context: CliContext, options: ProfileOptions): Promise<void> {
  if (options.code !== undefined && options.code.trim() === '') throw new InputError('--code is empty.', { hint: "Give the Python code to run, e.g. --code 'import pandas'." });
  const { imageMap, flowSteps, flow } = await loadFlowImageMap(file, context);
  const unbuilt = flowSteps.filter((step) => !(step in imageMap.steps) && (options.step === undefined || options.step.includes(step)));
  if (unbuilt.length > 0) {
    throw missingStepsError(imageMap, unbuilt, file);
  }
  const steps = selectSteps(imageMap, options.step);
  if (steps.length === 0) throw new InputError(`${imageMap.flow}: no ${options.step ? 'selected ' : ''}step has an env image to record.`, { hint: 'Record the steps with @conda or @pypi (disabled steps run on the base image).' });
  const result = await profileFlow({
    ...context, flowFile: file, flow, imageMap, steps, timeoutMs: options.timeout, maxPaths: options.maxPaths,
    ...(options.code !== undefined ? { code: options.code } : {}),
    ...(options.output !== undefined ? { output: options.output } : {}),
    credentials: async () => (await createSelectedBackend('image-registry', context)).backend.pushCredentials({ signal: context.signal }),
    onProgress: (event) => renderProgress(context, event),
  });
  if (options.json) writeJsonResult(context, { ...result });
  else context.stdout.write(renderResult(context, file, result));
}

function parseMaxPaths(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new ConfigError(`--max-paths ${value} is not a whole number of at least 1.`, { hint: `The default is ${DEFAULT_PROFILE_MAX_PATHS}.` });
  return n;
}

/** `prebuilt profile <flow> [--step S]… [--code PY] [-o FILE] [--timeout 2m] [--max-paths N] [--json]`. */
export function registerProfileCommand(program: Command, context: CliContext): void {
  program
    .command('profile')
    .description("record the prefetch profile of a built flow: run each step's image once with its imports and list the files it reads first")
    .argument('<flow>', 'the flow file, e.g. flow.py')
    .option('--step <name>', 'only this step (repeatable; default: every step with an env)', collect)
    .option('--code <python>', "Python code to run in place of each step's imports (e.g. a warm-up that does what the task does)")
    .option('-o, --output <file>', 'where to write the profile (default: <flow>.prebuilt.prefetch beside the flow file)')
    .addOption(new Option('--timeout <duration>', 'how long one recording may run, e.g. 90s, 5m').argParser((v) => parseDuration(v, '--timeout')).default(DEFAULT_PROFILE_TIMEOUT_MS, '2m'))
    .addOption(new Option('--max-paths <n>', 'fail when one recording reads more files than this').argParser(parseMaxPaths).default(DEFAULT_PROFILE_MAX_PATHS))
    .option('--json', 'print one JSON object for machines')
    .addHelpText('after', PROFILE_HELP)
    .action(async (file: string, options: ProfileOptions) => {
      context.json.requested = options.json === true;
      await runProfile(file, context, options);
    });
}
