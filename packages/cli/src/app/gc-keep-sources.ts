/**
 * `prebuilt gc`'s keep sources on this machine: image map files (`--keep-map`) and flows, whose
 * current images are planned as `prebuilt plan` would (from their lock files, never resolved or
 * built here) and whose state file names what was built last.
 */
import { readdir } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { collectImageRefs, imageRefTarget, InputError, type GcKeepRef } from '@prebuilt/core';
import type { AppScope } from './app-scope.js';
import { deployFlow } from './deploy-flow.js';
import { shownPath as shownFile } from './shown-path.js';
import { rebuildHint } from './image-map-checks.js';
import { checkStateFileSetting, readImageMap, stateFilePath, stateFileSetting } from './state-file.js';

/** Keys of a deploy plan's images that name an image (tags for people, digests for runtimes). */
const PLAN_KEYS: ReadonlySet<string> = new Set(['pushTag', 'pullTag', 'image', 'pinnedImage', 'digest']);

/** The env repository gc lists: its host (shown) and path (what a tag reference is matched on). */
export interface GcRepository {
  host: string;
  path: string;
}

/**
 * Refuses a keep source that names no image of the env repository — an image map whose `steps` is
 * empty or that was built for another repository, a flow whose every step's env is disabled: it
 * keeps nothing, so `gc --yes` would delete every image nothing else keeps. A digest reference may
 * name an image of any repository, so it counts.
 */
function checkNamesRepository(source: string, refs: readonly string[], repository: GcRepository, file: string, why: string): void {
  const ours = refs.filter((ref) => {
    const target = imageRefTarget(ref);
    return target !== undefined && ('digest' in target || target.repository === repository.path);
  });
  if (ours.length > 0) return;
  const others = refs.length === 0 ? why : `it names ${refs.length} image${refs.length === 1 ? '' : 's'} of other repositories`;
  throw new InputError(`${source} names no image of the env repository ${repository.host}/${repository.path}: as a keep source it keeps nothing, so gc would delete every image nothing else keeps (${others}).`, {
    file,
    hint:
      'Check the source is the one meant (built for this registry and METAFLOW_PREBUILT_IMAGE_NAMESPACE), or leave it out. ' +
      "gc has no option to delete every image: to empty the repository, delete it with the registry's own tools.",
  });
}

/**
 * The images each image map file names (`prebuilt build --json` output or a state file). A missing
 * or broken file is exit 2, and so is one that names no image of `repository` (when given).
 */
export async function keepFromImageMaps(files: readonly string[], scope: Pick<AppScope, 'cwd'>, repository?: GcRepository): Promise<GcKeepRef[]> {
  const shownPath = (file: string) => shownFile(scope.cwd, file);
  // A flow swallowed by --keep-map (which takes every file after it) is said first, before any map is read.
  const flow = files.find((file) => /\.py$/.test(file));
  if (flow !== undefined) {
    throw new InputError(`--keep-map ${shownPath(flow)} is a flow file, not an image map.`, {
      file: resolve(scope.cwd, flow),
      hint: 'Name flows before the options (prebuilt gc flow.py --keep-map images.json): --keep-map takes every file after it.',
    });
  }
  const keep: GcKeepRef[] = [];
  for (const file of files) {
    const [path, shown] = [resolve(scope.cwd, file), shownPath(file)];
    const hint = 'Pass an image map prebuilt build wrote (.prebuilt/<Flow>/images.json) or printed (build --json), as a regular file: save printed output to one first (a pipe or <(…) is not read).';
    const map = await readImageMap(path, { shown, hint });
    if (map === undefined) throw new InputError(`The image map ${shown} does not exist.`, { file: path, hint });
    const refs = collectImageRefs(map);
    if (repository) checkNamesRepository(`The image map ${shown}`, refs, repository, path, 'its steps name no image');
    keep.push(...refs.map((ref) => ({ ref, reason: `kept map ${shown}` })));
  }
  return keep;
}

/**
 * The images each flow needs now (its lock file's envs on the current base image, tags as `build`
 * computes them, digests where the registry has them) and those its state file names. The lock
 * must exist (as `plan --frozen`): gc never resolves. A flow that names no image of `repository`
 * (when given) — every step's env disabled, and no state file naming one — is exit 2, as an
 * image map that names none.
 */
export async function keepFromFlows(files: readonly string[], scope: AppScope, keptMaps: Set<string> = new Set(), repository?: GcRepository): Promise<GcKeepRef[]> {
  const keep: GcKeepRef[] = [];
  if (files.length > 0) await checkStateFileSetting(scope.env, scope.cwd);
  for (const file of files) {
    // The user gave no --frozen: the error says it is gc that takes the lock as it is.
    const planned = await deployFlow(file, scope, { plan: true, frozen: true, frozenBy: 'gc keeps the images of the lock file as it is (it never resolves)' });
    const flow = planned.lock.envs.flow;
    const plannedRefs = collectImageRefs(planned.images, PLAN_KEYS);
    keep.push(...plannedRefs.map((ref) => ({ ref, reason: `flow ${flow} (${file})` })));
    const stateFile = stateFilePath(file, flow, scope.env, scope.cwd);
    keptMaps.add(stateFile);
    const shown = shownFile(scope.cwd, stateFile);
    const map = await readImageMap(stateFile, { shown, ...rebuildHint(file) });
    const mapRefs = map === undefined ? [] : collectImageRefs(map);
    keep.push(...mapRefs.map((ref) => ({ ref, reason: `flow ${flow}'s image map ${shown}` })));
    if (repository) {
      checkNamesRepository(`The flow ${shownFile(scope.cwd, file)}`, [...plannedRefs, ...mapRefs], repository, resolve(scope.cwd, file), 'every step\'s env is disabled, so it has no image');
    }
  }
  return keep;
}

/** An image map beside a flow given to gc that no keep source names, and the images it names. */
export interface UnkeptImageMap {
  /** The map as shown (relative to the current directory, or absolute). */
  shown: string;
  /** The flow it was built for (its `.prebuilt/<Flow>` directory). */
  flow: string;
  refs: string[];
}

/**
 * The image maps `prebuilt build` wrote for other flows beside the flows given
 * (`.prebuilt/<OtherFlow>/images.json`, the default state file), that neither a flow given nor
 * `--keep-map` names: gc keeps only the images of the flows it is given, so a project of two flows
 * gc'd with one of them loses the other's. None when METAFLOW_PREBUILT_STATE_FILE is set (the
 * flows' maps are not there). A map that cannot be read is passed over: this is for a note.
 */
export async function unkeptImageMaps(files: readonly string[], keptMaps: ReadonlySet<string>, keepMapFiles: readonly string[], scope: Pick<AppScope, 'cwd' | 'env'>): Promise<UnkeptImageMap[]> {
  if (stateFileSetting(scope.env) !== undefined) return [];
  const kept = new Set([...keptMaps, ...keepMapFiles.map((file) => resolve(scope.cwd, file))]);
  const stateDirs = [...new Set(files.map((file) => join(dirname(resolve(scope.cwd, file)), '.prebuilt')))];
  const found: UnkeptImageMap[] = [];
  for (const stateDir of stateDirs) {
    const entries = await readdir(stateDir, { withFileTypes: true }).catch(() => []);
    for (const entry of entries.filter((e) => e.isDirectory()).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const path = join(stateDir, entry.name, 'images.json');
      if (kept.has(path)) continue;
      const shown = shownFile(scope.cwd, path);
      const map = await readImageMap(path, { shown, hint: '' }).catch(() => undefined);
      if (map !== undefined) found.push({ shown, flow: entry.name, refs: collectImageRefs(map) });
    }
  }
  return found;
}
