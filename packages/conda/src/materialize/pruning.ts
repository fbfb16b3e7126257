import { isPruned, normalisePrunePresets, type PrunePreset } from '@prebuilt/core';

/** What a materialize left out of the prefix (core's prune presets). */
export interface PruneSummary {
  /** The presets, sorted; [] when nothing was to be pruned. */
  presets: PrunePreset[];
  /** Files and links of the packages left out (directories not counted; nor the pycs a pruned module never gets). */
  files: number;
  /** Their bytes as the packages declare them (links count 0). */
  bytes: number;
}

/**
 * The prune presets of one materialize and what they left out. The installers ask it about each
 * entry's path in the prefix (as conda-meta records it) before they write it: a pruned entry is
 * never written, so nothing is removed afterwards and no path is followed to remove it.
 */
export class Pruning {
  readonly presets: PrunePreset[];
  #files = 0;
  #bytes = 0;

  constructor(presets: readonly PrunePreset[] = []) {
    this.presets = normalisePrunePresets(presets);
  }

  /** Whether the directory at `rel` is left out (not counted). */
  skipsDirectory(rel: string): boolean {
    return this.presets.length > 0 && isPruned(rel, this.presets);
  }

  /** Whether the file or link at `rel` is left out; counted, with `size` bytes, when it is. */
  skips(rel: string, size: number): boolean {
    if (!this.skipsDirectory(rel)) return false;
    this.#files += 1;
    this.#bytes += size;
    return true;
  }

  summary(): PruneSummary {
    return { presets: [...this.presets], files: this.#files, bytes: this.#bytes };
  }
}
