import { describe, expect, it } from 'vitest';
import { shownPath } from './shown-path.js';

describe('shownPath: a file as messages name it', () => {
  it('relative to the current directory when inside it', () => {
    expect(shownPath('/work/repo', '/work/repo/examples/.prebuilt/F/images.json')).toBe('examples/.prebuilt/F/images.json');
    expect(shownPath('/work/repo', 'examples/flow.prebuilt.lock')).toBe('examples/flow.prebuilt.lock');
    expect(shownPath('/work/repo', './a/../maps/x.json')).toBe('maps/x.json');
    expect(shownPath('/work/repo', '..repo-like/x.json')).toBe('..repo-like/x.json');
  });

  it('absolute when outside it, never ../../', () => {
    expect(shownPath('/work/repo', '/tmp/maps/prod.json')).toBe('/tmp/maps/prod.json');
    expect(shownPath('/work/repo', '../other/images.json')).toBe('/work/other/images.json');
    expect(shownPath('/work/repo', '/work/repo')).toBe('/work/repo');
    expect(shownPath('/work/repo', '..')).toBe('/work');
  });
});
