import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { CancelledError, ConfigError, EnvironmentError } from '@prebuilt/core';
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

  it('a --python that does not run says to correct that path (not to install Python or set METAFLOW_PREBUILT_PYTHON); the setting\'s says to install or set', async () => {
    const missing = join(dir, 'no-such-venv', 'bin', 'python');
    const named = await runPythonScript(script, [], { python: missing, env: { PATH: process.env['PATH'] } }).catch((e: unknown) => e);
    expect(named).toBeInstanceOf(EnvironmentError);
    expect((named as EnvironmentError).message).toBe(`No usable Python interpreter: '${missing}' (from option 'python') was not found.`);
    expect((named as EnvironmentError).hint).toBe('Pass --python the path of an interpreter that runs (the one you run flows with, e.g. .venv/bin/python), or leave --python out for METAFLOW_PREBUILT_PYTHON, else python3 on PATH.');
    const set = await runPythonScript(script, [], { env: { PATH: process.env['PATH'], METAFLOW_PREBUILT_PYTHON: missing } }).catch((e: unknown) => e);
    expect((set as EnvironmentError).message).toBe(`No usable Python interpreter: '${missing}' (from METAFLOW_PREBUILT_PYTHON) was not found. prebuilt reads flow files with the host python3.`);
    expect((set as EnvironmentError).hint).toMatch(/^Install Python 3\.8 or newer/);
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

  it('says how a script failed (its last stderr lines), that it ran past its timeout, or that it was cancelled', async () => {
    const failing = join(dir, 'failing.py');
    writeFileSync(failing, 'import sys\nfor i in range(100000): sys.stderr.write("noise %d\\n" % i)\nsys.stderr.write("the reason\\n")\nsys.exit(3)\n');
    const failed = (await runPythonScript(failing, [], { python }).catch((e: unknown) => e)) as EnvironmentError;
    expect(failed).toBeInstanceOf(EnvironmentError);
    expect(failed.message).toMatch(/failed running failing\.py \(exit 3\):\nnoise 99996\nnoise 99997\nnoise 99998\nnoise 99999\nthe reason$/);
    const sleeping = join(dir, 'sleeping.py');
    writeFileSync(sleeping, 'import time\ntime.sleep(30)\n');
    const late = await runPythonScript(sleeping, [], { python, timeoutMs: 300 }).catch((e: unknown) => e);
    expect(late).toBeInstanceOf(EnvironmentError);
    expect((late as Error).message).toContain('did not finish sleeping.py within 300 ms');
    const abort = new AbortController();
    setTimeout(() => abort.abort(), 300);
    expect(await runPythonScript(sleeping, [], { python, signal: abort.signal }).catch((e: unknown) => e)).toBeInstanceOf(CancelledError);
  });

  it('refuses an answer larger than 64 MiB rather than read it half', async () => {
    const loud = join(dir, 'loud.py');
    writeFileSync(loud, 'import sys\nline = "x" * 1023 + "\\n"\nfor _ in range(80 * 1024): sys.stdout.write(line)\n');
    const error = await runPythonScript(loud, [], { python }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(EnvironmentError);
    expect((error as Error).message).toContain('printed more than 64 MiB running loud.py');
  }, 60_000);
});
