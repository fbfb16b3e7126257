// `prebuilt profile` before it records anything: what it says about a flow whose image map lacks a step.
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../main.js';

const exampleFlow = new URL('../../../../examples/hello_flow.py', import.meta.url);
/** A flow file name a shell would split (and run the part after `;`): suggested commands quote it. */
const FLOW = 'my flow; rm -rf ~.py';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'prebuilt-profile-'));
  await copyFile(exampleFlow, join(dir, FLOW));
  // HelloFlow has start, fetch, report and end; the map was written before fetch and report were added.
  const step = { envId: null, image: 'python:3.11', python: 'python' };
  await writeFile(join(dir, 'images.json'), JSON.stringify({ flow: 'HelloFlow', images: {}, steps: { start: step, end: step } }));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('prebuilt profile', () => {
  it('a step the image map lacks: exit 2, the build to run suggested with the flow file quoted as one shell word', async () => {
    let err = '';
    const code = await main(['profile', FLOW], {
      cwd: dir,
      env: { HOME: dir, PATH: process.env['PATH'], METAFLOW_PREBUILT_STATE_FILE: 'images.json' },
      stdout: { write: () => true },
      stderr: { write: (text: string) => ((err += text), true) },
    });
    expect(code, err).toBe(2);
    // As prepull says it: a map `prebuilt run` wrote names the steps that run remotely alone.
    expect(err).toContain(
      'The image map of HelloFlow has no image for steps fetch, report: the flow changed since its last build, those images failed to build, or `prebuilt run` wrote the map, with the images of the steps that run remotely alone.',
    );
    expect(err).toContain("hint: Run `prebuilt build 'my flow; rm -rf ~.py'` first (it builds every step's image).\n");
  });
});
