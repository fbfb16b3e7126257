/**
 * Checks of the values an image map gives that commands put into other objects (a DaemonSet, a
 * container run) and onto the terminal: the map may come from a cloned repository or a shared file.
 */
import { errorMessage, InputError, oneLineText, parseImageRef, type ImageMap } from '@prebuilt/core';
import { fileArgument } from './shown-path.js';

/** A value of the image map as a message quotes it: core's {@link oneLineText}, at most 200 characters. */
export function shownValue(value: string): string {
  return oneLineText(value, 200);
}

/** The hint of an image map that is not what `prebuilt build` writes: write it again. */
export function rebuildHint(flowFile: string): { hint: string } {
  return { hint: `Run \`prebuilt build ${fileArgument(flowFile)}\` again to rewrite it.` };
}

/**
 * The error of an image map that lacks the image of steps of the flow: the flow changed since its
 * last build, their images failed to build, or `prebuilt run` wrote the map — it builds the images
 * of the steps that run remotely alone, where `prebuilt build` builds every step's. An InputError
 * (exit 2) naming the steps, with `prebuilt build` as the fix (prepull and profile).
 */
export function missingStepsError(imageMap: ImageMap, steps: readonly string[], flowFile: string): InputError {
  const one = steps.length === 1;
  return new InputError(
    `The image map of ${imageMap.flow} has no image for step${one ? '' : 's'} ${steps.join(', ')}: the flow changed since its last build, ${one ? 'that image' : 'those images'} failed to build, or \`prebuilt run\` wrote the map, with the images of the steps that run remotely alone.`,
    { hint: `Run \`prebuilt build ${fileArgument(flowFile)}\` first (it builds every step's image).` },
  );
}

/**
 * The step's image and interpreter as the image map gives them, checked: the map may come from a
 * cloned repository or a shared file, and its values go into a DaemonSet or a container run and onto the terminal.
 * @throws InputError (exit 2) naming the step, with the rebuild hint.
 */
export function checkedImageMapStep(imageMap: ImageMap, step: string, flowFile: string): { image: string; python: string } {
  const entry = imageMap.steps[step]!;
  const image: unknown = entry.pinnedImage ?? entry.image;
  let problem: string | undefined;
  if (typeof image !== 'string') problem = 'not a string';
  else {
    try {
      parseImageRef(image);
    } catch (error) {
      // parseImageRef's message quotes the reference as it is: only its reason is kept.
      const message = error instanceof Error ? error.message : errorMessage(error);
      const prefix = `invalid image reference '${image}': `;
      problem = `'${shownValue(image)}': ${shownValue(message.startsWith(prefix) ? message.slice(prefix.length) : message)}`;
    }
  }
  if (problem !== undefined) throw new InputError(`The image map of ${imageMap.flow} names an image for step ${step} that is not an image reference (${problem}).`, rebuildHint(flowFile));
  const python: unknown = entry.python;
  if (typeof python !== 'string' || python === '' || /[\u0000-\u001f\u007f-\u009f]/.test(python)) {
    const why = typeof python !== 'string' ? 'not a string' : python === '' ? 'it is empty' : `'${shownValue(python)}' holds control characters`;
    throw new InputError(`The image map of ${imageMap.flow} names no interpreter path for step ${step} (${why}).`, rebuildHint(flowFile));
  }
  return { image: image as string, python };
}
