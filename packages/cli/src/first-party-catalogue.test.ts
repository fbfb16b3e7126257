import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

const packagesDir = fileURLToPath(new URL('../..', import.meta.url));

interface Manifest {
  name?: string;
  private?: boolean;
  prebuilt?: { kind?: string; name?: string };
  prebuiltBackends?: Record<string, Record<string, string>>;
}

function manifest(dir: string): Manifest | undefined {
  try {
    return JSON.parse(readFileSync(join(packagesDir, dir, 'package.json'), 'utf8')) as Manifest;
  } catch {
    return undefined;
  }
}

it('the CLI\'s catalogue of first-party backends is exactly the workspace packages that declare a "prebuilt" field', () => {
  const declared = readdirSync(packagesDir)
    .map(manifest)
    .filter((m): m is Manifest => m?.name?.startsWith('@prebuilt/') === true && typeof m.prebuilt?.kind === 'string')
    .map((m) => `${m.prebuilt!.kind} ${m.prebuilt!.name} ${m.name}`)
    .sort();
  const catalogue = manifest('cli')?.prebuiltBackends ?? {};
  const listed = Object.entries(catalogue)
    .flatMap(([kind, names]) => Object.entries(names).map(([name, packageName]) => `${kind} ${name} ${packageName}`))
    .sort();
  expect(listed).toEqual(declared);
  expect(listed.length).toBeGreaterThanOrEqual(9);
});
