/** What `prebuilt prepull` pulls: each distinct image of a flow's steps, from the image map `prebuilt build` wrote. */
import { ConfigError, InputError, type ImageMap } from '@prebuilt/core';
import { checkedImageMapStep, missingStepsError, rebuildHint, shownValue } from './image-map-checks.js';
import { isObjectName } from './kubernetes-names.js';

export interface PrepullImage {
  /** The reference the nodes pull: the step's pinned image (`repo:tag@sha256:…`), or a disabled step's base image. */
  image: string;
  /** The steps that run on it, in flow order. */
  steps: string[];
  /** The step's interpreter in the image (what the init container runs). */
  python: string;
  /** The init container's name: `pull-<n>-<first step>`. */
  container: string;
}

/** `train_model` → `train-model`: a step name as part of a container name (a DNS label). */
function labelPart(name: string, max: number): string {
  return name.toLowerCase().replace(/[^a-z0-9]+/g, '-').slice(0, max).replace(/^-+|-+$/g, '') || 'step';
}

/**
 * One entry per distinct image of `flowSteps` (the flow file's steps, in order): steps that share
 * an image share its entry. Every step of the flow must be in the map with an image.
 * @throws InputError (exit 2) naming the steps that are not and `prebuilt build` as the fix ({@link missingStepsError}).
 */
export function prepullImages(imageMap: ImageMap, flowSteps: readonly string[], flowFile: string): PrepullImage[] {
  if (typeof imageMap.flow !== 'string') throw new InputError('The image map names no flow (its flow is not a string).', rebuildHint(flowFile));
  const missing = flowSteps.filter((step) => !imageMap.steps[step]?.image);
  if (missing.length > 0) throw missingStepsError(imageMap, missing, flowFile);
  const byImage = new Map<string, PrepullImage>();
  for (const step of flowSteps) {
    const { image, python } = checkedImageMapStep(imageMap, step, flowFile);
    const known = byImage.get(image);
    if (known) known.steps.push(step);
    else byImage.set(image, { image, steps: [step], python, container: `pull-${byImage.size + 1}-${labelPart(step, 50)}` });
  }
  return [...byImage.values()];
}

/**
 * The pull secrets the steps' pods name: the image map's pull config of each image (what the
 * selected registry's `pullConfig` gave at build time — METAFLOW_PREBUILT_PULL_SECRET, the secret
 * `prebuilt pull-secret` keeps — and what the Metaflow extension puts on the steps' pods), then
 * `extra`, without repeats. A name of the map that is not a secret name (it goes into the
 * DaemonSet and into the suggested `prebuilt pull-secret --name …` command) is an InputError
 * (exit 2) with the hint to rebuild with `flowFile`.
 */
export function prepullPullSecrets(imageMap: ImageMap, images: readonly PrepullImage[], extra: readonly string[], flowFile: string): string[] {
  const names = new Set<string>();
  const steps = new Set(images.flatMap((image) => image.steps));
  for (const image of Object.values(imageMap.images ?? {})) {
    if (!Array.isArray(image.steps) || !image.steps.some((step) => steps.has(step))) continue;
    for (const name of (image.pullConfig?.kubernetes?.imagePullSecrets ?? []) as unknown[]) {
      // A name goes into the DaemonSet and into the suggested `prebuilt pull-secret --name …` command.
      if (typeof name !== 'string' || !isObjectName(name)) {
        throw new InputError(`The image map of ${imageMap.flow} names the pull secret '${shownValue(String(name))}', which is not a Kubernetes secret name.`, rebuildHint(flowFile));
      }
      names.add(name);
    }
  }
  for (const name of extra) {
    if (!isObjectName(name)) throw new ConfigError(`--pull-secret ${name} is not a Kubernetes secret name.`, { hint: 'Name the secret prebuilt pull-secret keeps, e.g. --pull-secret prebuilt-pull.' });
    names.add(name);
  }
  return [...names];
}
