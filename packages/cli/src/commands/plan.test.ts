import { describe, expect, it } from 'vitest';
import type { DeployImage } from '@prebuilt/core';
import { buildCommand, rebuildReasons } from './plan.js';

describe("plan's closing line: the build that makes the images it lists", () => {
  it('carries --prune when the presets came from the command line (they are part of the tags)', () => {
    expect(buildCommand('flow.py', { prune: ['headers', 'tests'], pruneSetting: '--prune' })).toBe('prebuilt build flow.py --prune headers,tests');
    // --prune '' overrides METAFLOW_PREBUILT_PRUNE with nothing: the build must say so too.
    expect(buildCommand('flow.py', { prune: [], pruneSetting: '--prune' })).toBe("prebuilt build flow.py --prune ''");
  });

  it('is the plain build when the presets came from METAFLOW_PREBUILT_PRUNE (the build reads it too) or there are none', () => {
    expect(buildCommand('flows/a.py', { prune: ['tests'], pruneSetting: 'METAFLOW_PREBUILT_PRUNE' })).toBe('prebuilt build flows/a.py');
    expect(buildCommand('flows/a.py', { prune: [], pruneSetting: 'METAFLOW_PREBUILT_PRUNE' })).toBe('prebuilt build flows/a.py');
  });

  it('names the flow file as one shell word, quoted when the shell would read it otherwise', () => {
    expect(buildCommand('my flow.py', { prune: [], pruneSetting: 'METAFLOW_PREBUILT_PRUNE' })).toBe("prebuilt build 'my flow.py'");
    expect(buildCommand('x.py; rm -rf ~', { prune: ['tests'], pruneSetting: '--prune' })).toBe("prebuilt build 'x.py; rm -rf ~' --prune tests");
  });

  it("names a flow file starting with '-' as ./-x.py, which the build reads as its flow, not as an option", () => {
    expect(buildCommand('-x.py', { prune: [], pruneSetting: 'METAFLOW_PREBUILT_PRUNE' })).toBe('prebuilt build ./-x.py');
    expect(buildCommand('--prune', { prune: ['tests'], pruneSetting: '--prune' })).toBe('prebuilt build ./--prune --prune tests');
  });
});

describe('plan: why present images would be rebuilt', () => {
  const image = (envId: string, status: DeployImage['status'], reason?: string) => ({ envId, status, ...(reason ? { reason } : {}) }) as DeployImage;

  it('one line per reason below the table, naming its images; none when nothing is rebuilt', () => {
    const erofs = 'built with EROFS layers; the docker build service makes tar layers';
    expect(rebuildReasons([image('aaa', 'missing', erofs), image('bbb', 'present'), image('ccc', 'missing'), image('ddd', 'missing', erofs), image('eee', 'missing', 'prefetch profile changed')])).toBe(
      `will rebuild: ${erofs} (env aaa, ddd)\nwill rebuild: prefetch profile changed (env eee)\n`,
    );
    expect(rebuildReasons([image('aaa', 'present'), image('bbb', 'missing')])).toBe('');
  });

  it('a reason quoting what the registry recorded cannot reach the terminal as an escape sequence', () => {
    expect(rebuildReasons([image('aaa', 'missing', 'built with EROFS layers of type \x1b]52;c;x\x07; this build …')])).toBe('will rebuild: built with EROFS layers of type \\x1b]52;c;x\\x07; this build … (env aaa)\n');
  });

  it('a reason quoting what the registry recorded stays on its line: a line break in the annotation cannot print a line of its own (a fake "Nothing to build.")', () => {
    expect(rebuildReasons([image('aaa', 'missing', 'built with EROFS layers of type x\n\nNothing to build.\n; this build …')])).toBe(
      'will rebuild: built with EROFS layers of type x\\n\\nNothing to build.\\n; this build … (env aaa)\n',
    );
  });
});
