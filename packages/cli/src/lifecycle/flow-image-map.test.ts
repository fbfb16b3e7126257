// The image map the reading commands (report, sbom, prepull, profile) load for a flow.
import { execFile } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, InputError } from '@prebuilt/core';
import { createCliContext } from '../cli-context.js';
import { loadFlowImageMap, selectSteps } from './flow-image-map.js';

const exec = promisify(execFile);
const exampleFlow = new URL('../../../../examples/hello_flow.py', import.meta.url);

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'prebuilt-flow-image-map-'));
  await copyFile(exampleFlow, join(dir, 'flow.py'));
  await exec('mkfifo', [join(dir, 'fifo')]);
  await mkdir(join(dir, 'maps'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

const context = (env: Record<string, string>) => createCliContext(new AbortController().signal, { cwd: dir, env: { PATH: process.env['PATH'], ...env } });

describe('loadFlowImageMap', () => {
  it.each([
    ['/dev/zero', 'a device'],
    ['fifo', 'a FIFO'],
  ])('METAFLOW_PREBUILT_STATE_FILE=%s: the ConfigError build gives, naming the setting, not a hint to build again (which refuses it)', async (file, kind) => {
    const error = await loadFlowImageMap('flow.py', context({ METAFLOW_PREBUILT_STATE_FILE: file })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).message).toContain(`METAFLOW_PREBUILT_STATE_FILE='${file}' is ${kind}, not a regular file`);
    expect((error as ConfigError).hint).toMatch(/^Set METAFLOW_PREBUILT_STATE_FILE to a file path/);
    expect((error as ConfigError).hint).not.toContain('prebuilt build');
  });

  it('METAFLOW_PREBUILT_STATE_FILE naming a directory: the same', async () => {
    const error = await loadFlowImageMap('flow.py', context({ METAFLOW_PREBUILT_STATE_FILE: 'maps' })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).message).toBe("METAFLOW_PREBUILT_STATE_FILE='maps' is a directory; the image map is a file.");
  });

  it('a regular file that is no image map: an InputError naming it, with the build that rewrites it', async () => {
    await writeFile(join(dir, 'broken.json'), 'not json');
    const error = await loadFlowImageMap('flow.py', context({ METAFLOW_PREBUILT_STATE_FILE: 'broken.json' })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InputError);
    expect((error as InputError).message).toMatch(/^The image map broken\.json is not valid/);
    expect((error as InputError).hint).toBe('Run `prebuilt build flow.py` again to rewrite it.');
  });

  it('the image map of another flow (a cloned repository\'s, or METAFLOW_PREBUILT_STATE_FILE shared by flows): an InputError naming both — prepull would replace that flow\'s DaemonSet', async () => {
    await writeFile(join(dir, 'other.json'), JSON.stringify({ flow: 'ProdFlow', images: {}, steps: { start: { envId: null, image: 'python:3.11', python: 'python' } } }));
    const error = await loadFlowImageMap('flow.py', context({ METAFLOW_PREBUILT_STATE_FILE: 'other.json' })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InputError);
    expect((error as InputError).message).toBe("The image map other.json is ProdFlow's, not HelloFlow's.");
    expect((error as InputError).hint).toBe('Run `prebuilt build flow.py` to write the image map of HelloFlow (METAFLOW_PREBUILT_STATE_FILE, when set, names one file for one flow).');
  });
  it("a map naming a step that is no step name (a Python identifier) — a cloned repository's, whose step names report, profile and sbom print and profile writes into its file's section comments —: an InputError showing it escaped", async () => {
    const hostile = 'start\u001b]52;c;Y3VybCBldmlsIHwgc2g=\u0007\n[env x]\n/etc/hostname';
    await writeFile(join(dir, 'hostile-step.json'), JSON.stringify({ flow: 'HelloFlow', images: {}, steps: { [hostile]: { envId: 'x', image: 'r/x:env-x-amd64', pinnedImage: `r/x:env-x-amd64@sha256:${'a'.repeat(64)}`, python: '/p' } } }));
    const error = await loadFlowImageMap('flow.py', context({ METAFLOW_PREBUILT_STATE_FILE: 'hostile-step.json' })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InputError);
    expect((error as InputError).message).toBe("The image map hostile-step.json names a step 'start\\x1b]52;c;Y3VybCBldmlsIHwgc2g=\\x07\\n[env x]\\n/etc/hostname', which is no step name (a Python identifier).");
    expect((error as InputError).hint).toBe('Run `prebuilt build flow.py` again to rewrite it.');
    // Step names as Metaflow has them pass, Unicode letters too.
    await writeFile(join(dir, 'unicode-step.json'), JSON.stringify({ flow: 'HelloFlow', images: {}, steps: { étape_2: { envId: null, image: 'python:3.11', python: 'python' }, _start: { envId: null, image: 'python:3.11', python: 'python' } } }));
    expect(Object.keys((await loadFlowImageMap('flow.py', context({ METAFLOW_PREBUILT_STATE_FILE: 'unicode-step.json' }))).imageMap.steps)).toEqual(['étape_2', '_start']);
  });

  it('a map written before pinnedImage existed: each step pinned with its image\'s digest (the tag alone without one), so report, sbom and profile still see its steps', async () => {
    const D = `sha256:${'a'.repeat(64)}`;
    await writeFile(
      join(dir, 'older.json'),
      JSON.stringify({
        flow: 'HelloFlow',
        images: { x: { image: 'r/x:env-x-amd64', digest: D, python: '/opt/prebuilt/env/bin/python', status: 'built', steps: ['start', 'report'] }, y: { image: 'r/x:env-y-amd64', python: '/p', status: 'built', steps: ['fetch'] } },
        steps: {
          start: { envId: 'x', image: 'r/x:env-x-amd64', python: '/opt/prebuilt/env/bin/python' },
          report: { envId: 'x', image: 'r/x:env-x-amd64', pinnedImage: `r/x:env-x-amd64@sha256:${'b'.repeat(64)}`, python: '/opt/prebuilt/env/bin/python' },
          fetch: { envId: 'y', image: 'r/x:env-y-amd64', python: '/p' },
          end: { envId: null, image: 'python:3.11', python: 'python' },
        },
      }),
    );
    const { imageMap } = await loadFlowImageMap('flow.py', context({ METAFLOW_PREBUILT_STATE_FILE: 'older.json' }));
    expect(imageMap.steps['start']!.pinnedImage).toBe(`r/x:env-x-amd64@${D}`);
    expect(imageMap.steps['report']!.pinnedImage).toBe(`r/x:env-x-amd64@sha256:${'b'.repeat(64)}`);
    expect(imageMap.steps['fetch']!.pinnedImage).toBe('r/x:env-y-amd64');
    expect(imageMap.steps['end']!.pinnedImage).toBeUndefined();
    expect(selectSteps(imageMap, undefined)).toEqual(['start', 'report', 'fetch']);
  });
});

describe('selectSteps', () => {
  const step = { envId: 'e1', image: 'r/e:1', pinnedImage: `r/e:1@sha256:${'a'.repeat(64)}`, python: '/opt/prebuilt/env/bin/python' };
  const imageMap = { flow: 'HelloFlow', images: {}, steps: { start: step, fetch: step, end: step } };

  it('a misspelt --step: an InputError naming it, the step meant and every step', () => {
    const error = (() => {
      try {
        selectSteps(imageMap, ['fech']);
      } catch (caught) {
        return caught;
      }
      return undefined;
    })();
    expect(error).toBeInstanceOf(InputError);
    expect((error as InputError).message).toBe('The image map of HelloFlow has no step fech.');
    expect((error as InputError).hint).toBe('Did you mean --step fetch? Its steps: start, fetch, end.');
    expect(() => selectSteps(imageMap, ['zzzzzz'])).toThrow(expect.objectContaining({ hint: 'Its steps: start, fetch, end.' }));
    expect(selectSteps(imageMap, ['fetch'])).toEqual(['fetch']);
  });
});
