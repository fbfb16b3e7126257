import { InputError, closestName, pinnedImageRef, registryClientFor, type ImageMap, type RegistryClient } from '@prebuilt/core';
import { readFlow, type FlowFile } from '@prebuilt/metaflow';
import type { CliContext } from '../cli-context.js';
import { checkStateFileSetting, createSelectedBackend, fileArgument, readImageMap, shownPath, stateFilePath } from '../app/index.js';
import { rebuildHint, shownValue } from '../app/image-map-checks.js';

export interface FlowImageMap {
  stateFile: string;
  imageMap: ImageMap;
  /** The flow file's steps, in source order (a step the map lacks was added since the build). */
  flowSteps: string[];
  /** The flow file as read. */
  flow: FlowFile;
}

/**
 * The image map `prebuilt build` wrote for a flow (its state file); none yet is an InputError naming
 * the fix, and METAFLOW_PREBUILT_STATE_FILE naming no regular file the ConfigError a build gives.
 */
export async function loadFlowImageMap(file: string, context: CliContext): Promise<FlowImageMap> {
  await checkStateFileSetting(context.env, context.cwd);
  const flow = await readFlow(file, { env: context.env, cwd: context.cwd, signal: context.signal });
  const stateFile = stateFilePath(file, flow.flow, context.env, context.cwd);
  const shown = shownPath(context.cwd, stateFile);
  const imageMap = await readImageMap(stateFile, { shown, ...rebuildHint(file) });
  if (imageMap === undefined) {
    throw new InputError(`${flow.flow} has no image map at ${shown}: its images have not been built here.`, {
      hint: `Run \`prebuilt build ${fileArgument(file)}\` first (or point METAFLOW_PREBUILT_STATE_FILE at the image map it wrote).`,
    });
  }
  // Another flow's map (a cloned repository's, or one METAFLOW_PREBUILT_STATE_FILE shared by flows) would
  // have prepull replace that flow's DaemonSet and the reports speak of its images as this flow's.
  if (imageMap.flow !== flow.flow) {
    const of = typeof imageMap.flow === 'string' ? `${shownValue(imageMap.flow)}'s` : 'of no flow';
    throw new InputError(`The image map ${shown} is ${of}, not ${flow.flow}'s.`, {
      hint: `Run \`prebuilt build ${fileArgument(file)}\` to write the image map of ${flow.flow} (METAFLOW_PREBUILT_STATE_FILE, when set, names one file for one flow).`,
    });
  }
  // The steps are the map's own keys (report, profile and sbom go through them all, printing them,
  // and profile writes them into its file's comments): a cloned repository's map may name any.
  const odd = Object.keys(imageMap.steps).find((step) => !STEP_NAME.test(step));
  if (odd !== undefined) {
    throw new InputError(`The image map ${shown} names a step '${shownValue(odd)}', which is no step name (a Python identifier).`, rebuildHint(file));
  }
  return { stateFile, imageMap: withPinnedImages(imageMap), flowSteps: flow.steps.map((step) => step.name), flow };
}

/** A Metaflow step name: the name of a method of the flow, a Python identifier (Unicode letters too). */
const STEP_NAME = /^[\p{L}\p{Nl}_][\p{L}\p{Nl}\p{Mn}\p{Mc}\p{Nd}\p{Pc}]*$/u;

const DIGEST = /^sha256:[0-9a-f]{64}$/;

/**
 * The map with every step that has an image pinned: a map written before `pinnedImage` existed
 * names only the tag, and its image's `digest` — such a step is pinned with that digest, as the
 * Metaflow extension pins it (`pinned_image`), or names the tag alone when the map has no digest.
 * report, sbom and profile passed over such steps, so an older map gave an empty report (exit 0).
 */
function withPinnedImages(imageMap: ImageMap): ImageMap {
  const steps = Object.fromEntries(
    Object.entries(imageMap.steps).map(([name, entry]) => {
      if (typeof entry !== 'object' || entry === null || entry.envId === null || entry.pinnedImage || typeof entry.image !== 'string') return [name, entry];
      const digest: unknown = (imageMap.images as Record<string, { digest?: unknown } | undefined> | undefined)?.[entry.envId]?.digest;
      const pinned = typeof digest === 'string' && DIGEST.test(digest) ? pinnedImageRef(entry.image, digest) : entry.image;
      return [name, { ...entry, pinnedImage: pinned }];
    }),
  );
  return { ...imageMap, steps };
}

/** The steps to look at: `--step` names (each must be a step of the map), else every step with an image. */
export function selectSteps(imageMap: ImageMap, only: readonly string[] | undefined): string[] {
  const all = Object.keys(imageMap.steps);
  const unknown = (only ?? []).filter((step) => !all.includes(step));
  if (unknown.length > 0) {
    // A misspelt --step (fech) is named with the step meant, as a misspelt backend name is.
    const meant = unknown.length === 1 ? closestName(unknown[0]!, all) : undefined;
    throw new InputError(`The image map of ${imageMap.flow} has no step ${unknown.join(', ')}.`, { hint: `${meant === undefined ? '' : `Did you mean --step ${meant}? `}Its steps: ${all.join(', ')}.` });
  }
  return (only && only.length > 0 ? all.filter((step) => only.includes(step)) : all).filter((step) => imageMap.steps[step]!.envId !== null && imageMap.steps[step]!.pinnedImage);
}

/** A registry client with the selected registry's credentials (and the Docker config's for others). */
export async function selectedRegistryClient(context: CliContext): Promise<RegistryClient> {
  return registryClientFor((await createSelectedBackend('image-registry', context)).backend, { env: context.env, signal: context.signal });
}

/** Collects a repeatable option's values. */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}
