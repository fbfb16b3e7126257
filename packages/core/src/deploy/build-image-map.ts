import type { DeployImage, DeployOptions } from '../contracts.js';
import { pinnedImageRef, type ImageMap, type ImageMapImage } from './image-map.js';
import { baseImageOf, type DeployPlan } from './plan.js';

const usable = (image: DeployImage): boolean => image.status === 'present' || image.status === 'built';

/**
 * Which result each step pulls: a step of an image index pulls the index; any other step pulls its
 * one image (which may also be a platform of another step's index).
 */
function pulledImages(results: readonly DeployImage[]): Map<string, DeployImage> {
  const pulled = new Map<string, DeployImage>();
  for (const image of results) for (const step of image.platforms ? image.steps : []) pulled.set(step, image);
  for (const image of results) for (const step of image.platforms ? [] : image.steps) if (!pulled.has(step)) pulled.set(step, image);
  return pulled;
}

/**
 * The image map: what each step pulls (a platform's image, or the index over its platforms), with
 * its digest-pinned reference, interpreter and pull config. A disabled step runs on its base
 * image's python; a step whose image failed is left out.
 */
export async function buildImageMap(options: DeployOptions, plan: DeployPlan, results: readonly DeployImage[]): Promise<ImageMap> {
  const imageMap: ImageMap = { flow: options.flow, images: {}, steps: {} };
  const pulled = pulledImages(results);
  for (const image of results) {
    const steps = image.steps.filter((step) => pulled.get(step) === image);
    if (!usable(image) || steps.length === 0) continue;
    const entry: ImageMapImage = {
      image: image.pullTag,
      digest: image.digest as string,
      pinnedImage: pinnedImageRef(image.pullTag, image.digest as string),
      python: image.python,
      status: image.status as ImageMapImage['status'],
      steps,
      pullConfig: await options.registry.pullConfig(image.pullTag),
    };
    if (image.platforms) {
      entry.platforms = Object.fromEntries(image.platforms.map((m) => [m.platform, { envId: m.envId, image: m.image, digest: m.digest as string }]));
    }
    imageMap.images[image.envId] = entry;
  }
  for (const step of options.steps) {
    if (plan.locks.get(step.name) === null) {
      imageMap.steps[step.name] = { envId: null, image: baseImageOf(options, step), python: 'python' };
      continue;
    }
    const image = pulled.get(step.name);
    if (image && usable(image)) {
      imageMap.steps[step.name] = { envId: image.envId, image: image.pullTag, pinnedImage: pinnedImageRef(image.pullTag, image.digest as string), python: image.python };
    }
  }
  return imageMap;
}
