import type { PullConfig } from '../contracts.js';
import type { CondaPlatform } from '../env-model.js';

/**
 * The image map: which image and interpreter each step uses. It is what `prebuilt build --json`
 * prints, what the state file holds, and what the Metaflow extension reads.
 */
export interface ImageMapImage {
  /** The tag the runner pulls. */
  image: string;
  /** Manifest digest of the pushed image, verified by HEAD after the push. */
  digest: string;
  /**
   * `image@digest` (`repo:tag@sha256:…`): what deployed specs name, so a moved, overwritten or
   * re-pushed tag never changes what a scheduled workflow runs.
   */
  pinnedImage: string;
  /** Absolute interpreter path inside the image. */
  python: string;
  status: 'built' | 'present';
  /** Steps that use this image, in flow order. */
  steps: string[];
  pullConfig: PullConfig;
  /**
   * Set when `image` is a multi-platform image index: each platform's own image (its envId, pull
   * tag and manifest digest). The runner pulls `image`; its container runtime picks the platform.
   */
  platforms?: Partial<Record<CondaPlatform, { envId: string; image: string; digest: string; sbom?: ImageMapSbom }>>;
  /** The SPDX SBOM that refers to the image (set by `prebuilt build` after the deploy). */
  sbom?: ImageMapSbom;
}

/** An image's SBOM: the digest of the OCI artifact that refers to the image, and of its SPDX document. */
export interface ImageMapSbom {
  digest: string;
  documentDigest: string;
}

export interface ImageMapStep {
  /** null for a disabled step, which runs on the base image's own python. */
  envId: string | null;
  image: string;
  /** The step's image pinned by its digest (`repo:tag@sha256:…`); absent for a disabled step. */
  pinnedImage?: string;
  python: string;
  /**
   * The packages the image was built for, as Metaflow's `get_environment` names them: the step's own
   * (merged with the flow's bases) over Metaflow's pins (`requests`, the datastore's), conda and PyPI
   * apart. The Metaflow extension compares them with what Metaflow asks for before it deploys the step
   * (a `--with pypi:…`, another `--datastore`): a map without them is not checked. Absent for a disabled step.
   */
  packages?: StepPackages;
}

/** A step's packages, name → version spec (`""` for any), as Metaflow's `get_environment` names them. */
export interface StepPackages {
  conda: Record<string, string>;
  pypi: Record<string, string>;
}

export interface ImageMap {
  flow: string;
  images: Record<string, ImageMapImage>;
  steps: Record<string, ImageMapStep>;
}

/**
 * Where the env lives inside its image: one env per image, at the same path in every image, so a
 * package's files are the same bytes in every env that has it (prefix replacement writes the same
 * path) and a daemonless build reuses its layer across envs. Never under the task's working
 * directory (Metaflow's task command does `mkdir metaflow` there).
 */
export const ENV_PREFIX = '/opt/prebuilt/env';

/** The env prefix of an image (the same for every env; the envId names the image, not the path). */
export function envPrefix(_envId?: string): string {
  return ENV_PREFIX;
}

/** The interpreter of an image's env. */
export function envPython(envId?: string): string {
  return `${envPrefix(envId)}/bin/python`;
}

/** `repo:tag@sha256:…`: a pull reference that names the tag for people and the digest for the runtime. */
export function pinnedImageRef(image: string, digest: string): string {
  return image.includes('@') ? image : `${image}@${digest}`;
}
