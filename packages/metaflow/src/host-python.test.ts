import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { ConfigError } from '@prebuilt/core';
import { afterAll, describe, expect, it } from 'vitest';
import { hostPython, runPythonScript } from './host-python.js';
import { runFlow } from './run-flow.js';

const dir = mkdtempSync(join(tmpdir(), 'prebuilt-host-python-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
// The real interpreter behind `python3` (version-manager shims are slow to start).
const python = execFileSync('python3', ['-c', 'import sys; print(sys.executable)'], { encoding: 'utf8' }).trim();
const script = join(dir, 'flags.py');
writeFileSync(script, 'import sys\nprint(sys.flags.isolated, sys.flags.no_site, "site" in sys.modules)\n');

describe('hostPython (the interpreter, and where the choice came from)', () => {
  it('takes METAFLOW_PREBUILT_PYTHON without the spaces around it, and a blank one as unset, as the resolver\'s pip does', () => {
    expect(hostPython({ env: { METAFLOW_PREBUILT_PYTHON: ' /opt/py/bin/python3\n' } })).toEqual({ command: '/opt/py/bin/python3', source: 'METAFLOW_PREBUILT_PYTHON' });
    expect(hostPython({ env: { METAFLOW_PREBUILT_PYTHON: '  ' } })).toEqual({ command: 'python3', source: 'PATH' });
    expect(hostPython({ python: '/usr/bin/python3', env: { METAFLOW_PREBUILT_PYTHON: '/opt/py/bin/python3' } })).toEqual({ command: '/usr/bin/python3', source: "option 'python'" });
  });
});

describe('runPythonScript', () => {
  it('runs isolated and with site by default; site: false runs with -S (no site-packages, no .pth files)', async () => {
    expect((await runPythonScript(script, [], { python })).trim()).toBe('1 0 True');
    expect((await runPythonScript(script, [], { python, site: false })).trim()).toBe('1 1 False');
    expect((await runPythonScript(script, [], { python, isolated: false, site: false })).trim()).toBe('0 1 False');
  });

  it('never runs a python3 found only through an empty or relative PATH entry (a checked-out flow\'s directory): a ConfigError', async () => {
    const checkout = join(dir, 'checkout');
    const marker = join(dir, 'ran');
    execFileSync('mkdir', ['-p', checkout]);
    writeFileSync(join(checkout, 'python3'), `#!/bin/sh\n: > '${marker}'\n`);
    chmodSync(join(checkout, 'python3'), 0o755);
    const here = relative(process.cwd(), checkout);
    const env = { PATH: `/nonexistent:${here}` };
    const error = await runPythonScript(script, [], { env }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).message).toContain(`the Python interpreter 'python3' (from PATH) was found only in '${here}', a PATH entry relative to the current directory`);
    const flowError = await runFlow({ flowFile: join(dir, 'flow.py'), args: ['run'], imageMap: join(dir, 'map.json'), env, stdout: { write: () => undefined }, stderr: { write: () => undefined } }).catch((e: unknown) => e);
    expect(flowError).toBeInstanceOf(ConfigError);
    expect(existsSync(marker)).toBe(false);
  });
});

