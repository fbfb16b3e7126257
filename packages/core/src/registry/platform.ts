import { InputError } from '../errors.js';

/** An OCI content descriptor, as manifests and indexes list them. */
export interface OciDescriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: OciPlatform;
  annotations?: Record<string, string>;
}

export interface OciPlatform {
  os: string;
  architecture: string;
  variant?: string;
  'os.version'?: string;
}

/** A Docker v2 / OCI image manifest. */
export interface ImageManifest {
  schemaVersion: number;
  mediaType?: string;
  config: OciDescriptor;
  layers: OciDescriptor[];
  annotations?: Record<string, string>;
}

/** A Docker manifest list / OCI image index. */
export interface ImageIndex {
  schemaVersion: number;
  mediaType?: string;
  manifests: OciDescriptor[];
  annotations?: Record<string, string>;
}

/** Default variants, as container runtimes assume them when a platform names none. */
const DEFAULT_VARIANT: Record<string, string> = { arm64: 'v8', arm: 'v7' };

/** Parses a Docker platform such as `linux/amd64` or `linux/arm64/v8`. */
export function parsePlatform(platform: string): OciPlatform {
  const parts = platform.trim().split('/');
  const [os, architecture, variant] = parts;
  if (parts.length < 2 || parts.length > 3 || !os || !architecture || (parts.length === 3 && !variant)) {
    throw new InputError(`invalid platform '${platform}': expected os/architecture[/variant]`, { hint: 'Write it like linux/amd64 or linux/arm64.' });
  }
  return variant ? { os, architecture, variant } : { os, architecture };
}

/** `os/architecture[/variant]`, as Docker writes a platform. */
export function formatPlatform(p: OciPlatform): string {
  return [p.os, p.architecture, p.variant].filter(Boolean).join('/');
}

function variantOf(p: OciPlatform): string | undefined {
  return p.variant ?? DEFAULT_VARIANT[p.architecture];
}

/** True when `actual` (from an index entry or an image config) is the platform `wanted` names. */
export function platformMatches(actual: OciPlatform, wanted: string): boolean {
  const w = parsePlatform(wanted);
  return actual.os === w.os && actual.architecture === w.architecture && variantOf(actual) === variantOf(w);
}

/**
 * The entry of a manifest list / image index that matches `platform` (os, architecture and variant,
 * where `arm64` means `arm64/v8`). Throws InputError listing the platforms the index offers.
 */
export function selectPlatformManifest(index: ImageIndex, platform: string, imageName: string): OciDescriptor {
  parsePlatform(platform);
  const match = index.manifests.find((entry) => entry.platform !== undefined && platformMatches(entry.platform, platform));
  if (match) return match;
  const offered = index.manifests
    .map((entry) => entry.platform)
    .filter((p): p is OciPlatform => p !== undefined && p.os !== 'unknown')
    .map(formatPlatform);
  throw new InputError(`image ${imageName} has no manifest for platform ${platform}; it offers ${offered.length ? offered.join(', ') : 'no platforms'}`, {
    hint: 'Choose a base image built for that platform, or build for one of the platforms it offers.',
  });
}
