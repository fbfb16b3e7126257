/**
 * The extraction worker starts in every build: the modules it loads (extract-worker.ts and what it
 * imports, followed here through the sources) take core's small face, `@prebuilt/core/extraction`,
 * never the `@prebuilt/core` barrel, which would compile ~90 more modules on that thread.
 */
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const here = dirname(fileURLToPath(import.meta.url));
const IMPORT = /^\s*(?:import|export)\s+(?:type\s+)?(?:[^'";]*?\sfrom\s+)?'([^']+)'/gm;

/** Every source module the worker loads (type-only imports are erased, so not followed) and the packages each imports. */
function workerGraph(entry: string): Map<string, string[]> {
  const seen = new Map<string, string[]>();
  const visit = (file: string): void => {
    if (seen.has(file)) return;
    const source = readFileSync(file, 'utf8');
    const packages: string[] = [];
    seen.set(file, packages);
    for (const match of source.matchAll(IMPORT)) {
      if (/^\s*(?:import|export)\s+type\s/.test(match[0])) continue;
      const spec = match[1]!;
      if (spec.startsWith('.')) visit(resolve(dirname(file), spec.replace(/\.js$/, '.ts')));
      else packages.push(spec);
    }
  };
  visit(entry);
  return seen;
}

describe('the extraction worker module graph', () => {
  it('loads core through @prebuilt/core/extraction only', () => {
    const graph = workerGraph(join(here, 'extract-worker.ts'));
    expect(graph.size).toBeGreaterThan(5);
    const barrel = [...graph].filter(([, packages]) => packages.includes('@prebuilt/core')).map(([file]) => file);
    expect(barrel).toEqual([]);
    expect([...graph.values()].flat()).toContain('@prebuilt/core/extraction');
  });
});
