import { describe, expect, it } from 'vitest';
import type { GcResult } from '../app/index.js';
import { renderGc } from './gc.js';

const result = (notes: string[]): GcResult => ({
  registry: 'local',
  repository: '127.0.0.1:5100/team/envs',
  plan: { items: [], deletions: [], kept: [], reclaimedBytes: 0, reclaimedPartial: false, pushTimeUnknown: false },
  minAgeMs: 3_600_000,
  notes,
  deleted: false,
});

describe("gc's text output", () => {
  it("keeps each note on its line: a note quoting a cloned repository's .prebuilt/<flow> directory name, newlines in it, forges no line of its own", () => {
    const flow = 'Other\ndry run: nothing deleted; pass --yes to delete\nnote: every image is kept';
    const text = renderGc(result([`the image map .prebuilt/${flow}/images.json (${flow}) is no keep source, and 3 images it names are among the deletions`]));
    const lines = text.trimEnd().split('\n');
    expect(lines.filter((line) => line.startsWith('note: '))).toHaveLength(1);
    expect(lines.filter((line) => line.startsWith('dry run: '))).toHaveLength(1);
    expect(text).toContain('Other\\ndry run');
  });
});
