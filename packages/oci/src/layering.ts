import { createHash } from 'node:crypto';

/**
 * How a COPY of the materialized prefix is cut into layers:
 * - `grouped` (default): big packages alone, the others in a few groups chosen by their size tier
 *   and a hash of their name — at most {@link GROUPING.maxSolo} + {@link GROUPING.groups} package
 *   layers; an env with no more packages than that gets one layer per package, as with `per-package`.
 * - `per-package`: one layer per package, however many.
 * - `single`: the whole prefix in one layer.
 * Each adds the small layer of the files no package owns (`conda-meta/history`, …), except `single`;
 * a package's own conda-meta record is in its package's layer.
 */
export type LayeringPolicy = 'grouped' | 'per-package' | 'single';

export const LAYERING_POLICIES: readonly LayeringPolicy[] = ['grouped', 'per-package', 'single'];

/**
 * Limits of the `grouped` policy. Chosen by measurement on the realistic env (bench B2/B3, 82
 * packages, 522 MiB): a pull pays per layer, a one-package rebuild re-pushes the changed package's
 * layer. Packages of at least `soloBytes` are big (the largest `maxSolo` of them get a layer each:
 * scipy, botocore, OpenBLAS, ICU, numpy, …). The others go into one of `groups` layers by a hash of
 * their kind and name — not their version, so a new version stays in its group and two envs with
 * the same packages share the group's layer — in two tiers: packages under `smallBytes` (the pure
 * Python packages, the user's own, the small libraries: the ones that change often) into the first
 * `smallGroups` groups, the bigger ones into the rest. A small package's change then re-pushes a
 * group of small packages (on the realistic env ~1 MiB, 0.5 % of the bytes), not one that also
 * holds a 17 MiB library.
 */
export const GROUPING: GroupingLimits = { maxSolo: 12, groups: 7, smallGroups: 4, soloBytes: 8 << 20, smallBytes: 512 << 10 };

/** The limits of the `grouped` policy (see {@link GROUPING}). */
export interface GroupingLimits {
  readonly maxSolo: number;
  readonly groups: number;
  readonly smallGroups: number;
  readonly soloBytes: number;
  readonly smallBytes: number;
}

/** A package as the policy sees it: its key for grouping and the bytes of its files. */
export interface SizedPackage {
  kind: string;
  name: string;
  bytes: number;
}

/** The first 4 bytes of sha256(`kind/name`), mod `groups`. */
export function groupOf(pkg: { kind: string; name: string }, groups: number = GROUPING.groups): number {
  return createHash('sha256').update(`${pkg.kind}/${pkg.name}`).digest().readUInt32BE(0) % groups;
}

/**
 * The group (0 … groups-1) of a package that is not alone: a small one (under `smallBytes`) in
 * 0 … smallGroups-1, a bigger one in smallGroups … groups-1, each by {@link groupOf} in its tier.
 */
export function tieredGroupOf(pkg: SizedPackage, limits: GroupingLimits = GROUPING): number {
  const big = limits.groups - limits.smallGroups;
  if (pkg.bytes < limits.smallBytes || big <= 0) return groupOf(pkg, limits.smallGroups);
  return limits.smallGroups + groupOf(pkg, big);
}

/**
 * The layers of `packages` (in lock order) under a policy, as lists of indices into `packages`:
 * under `grouped`, first the big packages alone (lock order), then the non-empty groups (by group
 * number, see {@link tieredGroupOf}; each in lock order). Deterministic: depends only on the
 * packages' kinds, names, sizes and order.
 */
export function layerGroups(packages: readonly SizedPackage[], policy: LayeringPolicy, limits: GroupingLimits = GROUPING): number[][] {
  const all = packages.map((_, i) => i);
  if (policy === 'single') return packages.length === 0 ? [] : [all];
  if (policy === 'per-package' || packages.length <= limits.maxSolo + limits.groups) return all.map((i) => [i]);
  const solo = new Set(
    all
      .filter((i) => packages[i]!.bytes >= limits.soloBytes)
      .sort((a, b) => packages[b]!.bytes - packages[a]!.bytes || compareKeys(packages[a]!, packages[b]!))
      .slice(0, limits.maxSolo),
  );
  const groups: number[][] = Array.from({ length: limits.groups }, () => []);
  for (const i of all) if (!solo.has(i)) groups[tieredGroupOf(packages[i]!, limits)]!.push(i);
  return [...all.filter((i) => solo.has(i)).map((i) => [i]), ...groups.filter((g) => g.length > 0)];
}

function compareKeys(a: SizedPackage, b: SizedPackage): number {
  const ka = `${a.kind}/${a.name}`;
  const kb = `${b.kind}/${b.name}`;
  return ka < kb ? -1 : ka > kb ? 1 : 0;
}
