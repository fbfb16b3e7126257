import { createHash } from 'node:crypto';
import type { LockedEnv, LockedPackage } from '../env-model.js';
import { spdxLicense, type SpdxLicense } from './spdx-license.js';

/** The media type of an SPDX JSON document (the SBOM layer and the artifact's `artifactType`). */
export const SPDX_JSON_MEDIA_TYPE = 'application/spdx+json';

export interface SbomInput {
  /** What the SBOM describes: the image's pull tag (or an env id). */
  name: string;
  /** The locked env of each platform the image holds (one for an image, one per platform for an index). */
  envs: readonly LockedEnv[];
  /** The licence a package declares (conda `index.json` `license`, a wheel's `License-Expression`/`License`), when known. */
  licenses?: ReadonlyMap<string, string | undefined>;
  /** `creationInfo.created`, in seconds since 1970 (the project's `SOURCE_DATE_EPOCH`; default 0): never the wall clock. */
  createdEpoch?: number;
}

export interface Sbom {
  /** The document's bytes: the same lock and licences give the same bytes. */
  bytes: Uint8Array;
  /** `sha256:…` of `bytes`. */
  digest: string;
  document: Record<string, unknown>;
}

/** The key under which `SbomInput.licenses` holds a package's licence: its file's sha256. */
export function licenseKey(pkg: Pick<LockedPackage, 'sha256'>): string {
  return pkg.sha256;
}

/** The conda channel of a package URL: the URL without `/<subdir>/<filename>`. */
function condaChannel(pkg: LockedPackage): string {
  const cut = pkg.url.lastIndexOf(`/${pkg.subdir ?? ''}/${pkg.filename}`);
  return cut > 0 && pkg.subdir ? pkg.url.slice(0, cut) : pkg.url.slice(0, pkg.url.lastIndexOf('/'));
}

/** The package URL (purl) of a locked package: `pkg:conda/…` or `pkg:pypi/…`. */
export function packageUrl(pkg: LockedPackage): string {
  const version = encodeURIComponent(pkg.version);
  if (pkg.kind === 'pypi') return `pkg:pypi/${pkg.name.toLowerCase().replace(/[-_.]+/g, '-')}@${version}`;
  const type = pkg.filename.endsWith('.conda') ? 'conda' : 'tar.bz2';
  const qualifiers = [
    ['build', pkg.build],
    ['channel', condaChannel(pkg)],
    ...(pkg.subdir ? [['subdir', pkg.subdir]] : []),
    ['type', type],
  ].map(([key, value]) => `${key}=${encodeURIComponent(value!)}`);
  return `pkg:conda/${encodeURIComponent(pkg.name.toLowerCase())}@${version}?${qualifiers.join('&')}`;
}

function spdxId(text: string): string {
  return text.replace(/[^A-Za-z0-9.-]+/g, '-');
}

function packageEntry(pkg: LockedPackage, env: LockedEnv, license: SpdxLicense): Record<string, unknown> {
  return {
    name: pkg.name,
    SPDXID: `SPDXRef-Package-${spdxId(`${env.platform}-${pkg.kind}-${pkg.name}-${pkg.sha256.slice(0, 12)}`)}`,
    versionInfo: pkg.build ? `${pkg.version}-${pkg.build}` : pkg.version,
    packageFileName: pkg.filename,
    downloadLocation: pkg.url,
    filesAnalyzed: false,
    checksums: [{ algorithm: 'SHA256', checksumValue: pkg.sha256 }],
    licenseConcluded: 'NOASSERTION',
    licenseDeclared: license.expression,
    copyrightText: 'NOASSERTION',
    externalRefs: [{ referenceCategory: 'PACKAGE-MANAGER', referenceType: 'purl', referenceLocator: packageUrl(pkg) }],
    ...(pkg.kind === 'conda' && pkg.subdir ? { comment: `conda ${pkg.subdir} package` } : { comment: 'Python wheel' }),
  };
}

/**
 * An SPDX 2.3 JSON document of an image's env(s), made from the lock alone: a root package per
 * platform's env, and every conda package and wheel it contains (name, version, sha256, download
 * URL, purl, declared licence). Reproducible: no wall-clock time, packages in lock order, and the
 * `documentNamespace` is derived from the rest of the document's content.
 */
export function createSbom(input: SbomInput): Sbom {
  const packages: Record<string, unknown>[] = [];
  const relationships: Record<string, unknown>[] = [];
  const extracted = new Map<string, { licenseId: string; extractedText: string; name: string }>();
  for (const env of input.envs) {
    const root = `SPDXRef-Env-${spdxId(env.platform)}`;
    packages.push({
      name: `${input.name} (${env.platform})`,
      SPDXID: root,
      versionInfo: env.specHash,
      downloadLocation: 'NOASSERTION',
      filesAnalyzed: false,
      licenseConcluded: 'NOASSERTION',
      licenseDeclared: 'NOASSERTION',
      copyrightText: 'NOASSERTION',
      primaryPackagePurpose: 'CONTAINER',
      comment: `python ${env.pythonVersion}, platform ${env.platform}`,
    });
    relationships.push({ spdxElementId: 'SPDXRef-DOCUMENT', relationshipType: 'DESCRIBES', relatedSpdxElement: root });
    for (const pkg of env.packages) {
      const license = spdxLicense(input.licenses?.get(licenseKey(pkg)));
      if (license.extracted) extracted.set(license.extracted.licenseId, license.extracted);
      const entry = packageEntry(pkg, env, license);
      packages.push(entry);
      relationships.push({ spdxElementId: root, relationshipType: 'CONTAINS', relatedSpdxElement: entry['SPDXID'] });
    }
  }
  const body = {
    spdxVersion: 'SPDX-2.3',
    dataLicense: 'CC0-1.0',
    SPDXID: 'SPDXRef-DOCUMENT',
    name: input.name,
    documentNamespace: '',
    creationInfo: { created: new Date((input.createdEpoch ?? 0) * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z'), creators: ['Tool: prebuilt'] },
    packages,
    relationships,
    ...(extracted.size > 0 ? { hasExtractedLicensingInfos: [...extracted.values()].sort((a, b) => (a.licenseId < b.licenseId ? -1 : 1)) } : {}),
  };
  const contentHash = createHash('sha256').update(JSON.stringify(body)).digest('hex');
  const document = { ...body, documentNamespace: `urn:prebuilt:spdx:${contentHash}` };
  const bytes = Buffer.from(`${JSON.stringify(document, null, 2)}\n`);
  return { bytes, digest: `sha256:${createHash('sha256').update(bytes).digest('hex')}`, document };
}
