import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { createCliContext } from '../cli-context.js';
import { unknownSettingsNotes } from './ignored-settings-note.js';
import { KNOWN_SETTINGS } from './known-settings.js';

/** Every file below `dir` whose name passes `keep`, skipping tests, fixtures, dist and node_modules. */
function sources(dir: string, keep: (name: string) => boolean): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (['node_modules', 'dist', '__fixtures__', 'python_tests'].includes(name)) return [];
    if (statSync(path).isDirectory()) return sources(path, keep);
    return keep(name) && !/\.test\.ts$|^test_/.test(name) ? [path] : [];
  });
}

it("KNOWN_SETTINGS is exactly the METAFLOW_PREBUILT_* names the packages' sources and the Metaflow extension name (a new setting must be added, or it would be called unknown)", () => {
  const packages = new URL('../../../', import.meta.url).pathname;
  const files = readdirSync(packages).flatMap((pkg) => {
    const dirs = [join(packages, pkg, 'src'), join(packages, pkg, 'python')].filter((d) => statSync(d, { throwIfNoEntry: false })?.isDirectory());
    return dirs.flatMap((d) => sources(d, (name) => /\.(ts|py)$/.test(name)));
  });
  expect(files.length).toBeGreaterThan(100);
  const named = new Set<string>();
  for (const file of files) {
    if (file.endsWith('known-settings.ts')) continue; // the list itself
    for (const match of readFileSync(file, 'utf8').matchAll(/METAFLOW_PREBUILT_[A-Z0-9_]*[A-Z0-9](?![A-Za-z0-9_…])/g)) named.add(match[0]);
  }
  // A backend's prefix written alone in a comment (`METAFLOW_PREBUILT_OCI_…`) is no setting.
  for (const prefix of ['METAFLOW_PREBUILT_DOCKER', 'METAFLOW_PREBUILT_DOCKERHUB', 'METAFLOW_PREBUILT_ECR', 'METAFLOW_PREBUILT_GCR', 'METAFLOW_PREBUILT_OCI']) named.delete(prefix);
  expect([...KNOWN_SETTINGS].sort()).toEqual([...named].sort());
});

it("the notes: a misspelling with the setting it means; an unknown name under a first-party backend's prefix (the CLI's catalogue) even with a third-party backend selected", () => {
  const notes = (env: Record<string, string>) => unknownSettingsNotes(createCliContext(new AbortController().signal, { env }));
  expect(notes({ METAFLOW_PREBUILT_OCI_LAYER_COMPRESSON: 'zstd', METAFLOW_PREBUILT_BUILD_SERVICE: 'oci' })).toEqual([
    'METAFLOW_PREBUILT_OCI_LAYER_COMPRESSON is not a setting prebuilt knows, ignored: did you mean METAFLOW_PREBUILT_OCI_LAYER_COMPRESSION?',
  ]);
  expect(notes({ METAFLOW_PREBUILT_KANIKO_GPUS_PER_NODE: '1', METAFLOW_PREBUILT_ACME_ZONE: 'eu', METAFLOW_PREBUILT_BUILD_SERVICE: 'acme' })).toEqual([
    "METAFLOW_PREBUILT_KANIKO_GPUS_PER_NODE is not a setting prebuilt knows, ignored (the README's Configuration table and each backend's README list the settings).",
  ]);
});

it("the README's Configuration table names every setting of KNOWN_SETTINGS (one there is no longer read, or one read is missing from it)", () => {
  const readme = readFileSync(new URL('../../../../README.md', import.meta.url), 'utf8');
  const start = readme.indexOf('## Configuration');
  const table = readme.slice(start, readme.indexOf('\n\n', readme.indexOf('| variable |', start)));
  const inTable = new Set([...table.matchAll(/^\| (`[A-Z0-9_]+`(?:, `[A-Z0-9_]+`)*) \|/gm)].flatMap((row) => row[1]!.split(', ').map((name) => name.slice(1, -1))));
  expect(inTable.size).toBeGreaterThan(60);
  expect(KNOWN_SETTINGS.filter((name) => !inTable.has(name))).toEqual([]);
  expect([...inTable].filter((name) => name.startsWith('METAFLOW_PREBUILT_') && !KNOWN_SETTINGS.includes(name))).toEqual([]);
});
