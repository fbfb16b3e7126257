import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runPythonScript } from './host-python.js';

const dir = mkdtempSync(join(tmpdir(), 'prebuilt-host-python-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
// The real interpreter behind `python3` (version-manager shims are slow to start).
const python = execFileSync('python3', ['-c', 'import sys; print(sys.executable)'], { encoding: 'utf8' }).trim();
const script = join(dir, 'flags.py');
writeFileSync(script, 'import sys\nprint(sys.flags.isolated, sys.flags.no_site, "site" in sys.modules)\n');

describe('runPythonScript', () => {
  it('runs isolated and with site by default; site: false runs with -S (no site-packages, no .pth files)', async () => {
    expect((await runPythonScript(script, [], { python })).trim()).toBe('1 0 True');
    expect((await runPythonScript(script, [], { python, site: false })).trim()).toBe('1 1 False');
    expect((await runPythonScript(script, [], { python, isolated: false, site: false })).trim()).toBe('0 1 False');
  });
});
