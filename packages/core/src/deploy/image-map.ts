import type { PullConfig } from '../contracts.js';

/**
 * The image map: which image and interpreter each step uses. It is what `prebuilt build --json`
 * prints, what the state file holds, and what the Metaflow extension reads.
 */
export interface ImageMapImage {
  /** The tag the runner pulls. */
  image: string;
  /** Manifest digest of the pushed image, verified by HEAD after the push. */
  digest: string;
  /** Absolute interpreter path inside the image. */
  python: string;
  status: 'built' | 'present';
  /** Steps that use this image, in flow order. */
  steps: string[];
  pullConfig: PullConfig;
}

export interface ImageMapStep {
  /** null for a disabled step, which runs on the base image's own python. */
  envId: string | null;
  image: string;
  python: string;
}

export interface ImageMap {
  flow: string;
  images: Record<string, ImageMapImage>;
  steps: Record<string, ImageMapStep>;
}

/** Where an env lives inside its image. Never under the task's working directory. */
export const ENV_ROOT = '/opt/prebuilt/envs';

export function envPrefix(envId: string): string {
  return `${ENV_ROOT}/${envId}`;
}

export function envPython(envId: string): string {
  return `${envPrefix(envId)}/bin/python`;
}
