/** What each step's image was built for, in Metaflow's terms, written into the image map for the extension's check. */
import type { ImageMap, LockEntry } from '@prebuilt/core';

/**
 * The image map with each step's `packages`: the packages its env was locked for, as Metaflow's
 * `get_environment` names them — Metaflow's pins first, the step's own (merged with the flow's
 * bases) over them (`{**pinned, **packages}`), conda and PyPI apart (the pins go where Metaflow
 * puts them: to PyPI for a step with @pypi). The Metaflow extension compares them with what
 * Metaflow asks for when it deploys the step. Disabled steps and steps without a usable image
 * are left as they are.
 */
export function withStepPackages(imageMap: ImageMap, locked: Readonly<Record<string, readonly LockEntry[] | null>>): ImageMap {
  const steps = Object.fromEntries(
    Object.entries(imageMap.steps).map(([name, step]) => {
      // Every platform of a step is locked from the same request and pins: the first says them.
      const entry = step.envId === null ? undefined : locked[name]?.[0];
      if (entry === undefined) return [name, step];
      const { request, resolvedWith } = entry;
      return [name, { ...step, packages: { conda: { ...resolvedWith.pins.conda, ...request.conda }, pypi: { ...resolvedWith.pins.pypi, ...request.pypi } } }];
    }),
  );
  return { ...imageMap, steps };
}
