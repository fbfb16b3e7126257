import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CancelledError, EnvironmentError } from '@prebuilt/core';
import { EXTENSION_PYTHONPATH, IMAGE_MAP_ENV } from './extension-files.js';
import { runFlow } from './run-flow.js';

// A stand-in interpreter: prints its arguments and environment, exits with the code in EXIT_CODE,
// or waits for a signal and reports which one arrived. Asked for its site directories (whether the
// extension is installed in it) it fails, as a python without that answer: the extension then goes
// on PYTHONPATH.
const dir = mkdtempSync(join(tmpdir(), 'prebuilt-run-flow-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const fakePython = join(dir, 'python');
writeFileSync(
  fakePython,
  `#!/bin/sh
case "$*" in *python_site.py*) echo "no site here" >&2; exit 1 ;; esac
echo "args:$*"
echo "pythonpath:$PYTHONPATH"
echo "map:$${IMAGE_MAP_ENV}"
echo "to stderr" >&2
if [ -n "$WAIT_FOR_SIGNAL" ]; then
  trap 'echo got-TERM; exit 42' TERM
  trap 'echo got-INT; exit 41' INT
  echo waiting
  while :; do sleep 0.05; done
fi
exit "\${EXIT_CODE:-0}"
`,
);
chmodSync(fakePython, 0o755);

function capture(): { write(text: string): void; text: string } {
  return {
    text: '',
    write(text: string) {
      this.text += text;
    },
  };
}

describe('runFlow', () => {
  it('runs the flow with the extension on PYTHONPATH, the map set, --environment=prebuilt added and args untouched', async () => {
    const out = capture();
    const err = capture();
    const result = await runFlow({
      flowFile: 'flow.py',
      args: ['run', '--with', 'kubernetes:image=a b', '--tag', "it's"],
      imageMap: '/tmp/images.json',
      python: fakePython,
      env: { PATH: process.env.PATH, PYTHONPATH: '/user/lib' },
      stdout: out,
      stderr: err,
    });
    expect(result.code).toBe(0);
    expect(result.command).toEqual([fakePython, 'flow.py', '--environment=prebuilt', 'run', '--with', 'kubernetes:image=a b', '--tag', "it's"]);
    expect(out.text).toContain("args:flow.py --environment=prebuilt run --with kubernetes:image=a b --tag it's");
    expect(out.text).toContain(`pythonpath:${EXTENSION_PYTHONPATH}${delimiter}/user/lib`);
    expect(out.text).toContain('map:/tmp/images.json');
    expect(err.text).toBe('to stderr\n');
  });

  it('passes the exit code back', async () => {
    const result = await runFlow({ flowFile: 'f.py', args: ['run'], python: fakePython, env: { PATH: process.env.PATH, EXIT_CODE: '3' }, stdout: capture(), stderr: capture() });
    expect(result.code).toBe(3);
  });

  it('forwards SIGTERM and SIGINT to the child', async () => {
    for (const [signal, expected] of [['SIGTERM', 42], ['SIGINT', 41]] as const) {
      const controller = new AbortController();
      const out = capture();
      const done = runFlow({
        flowFile: 'f.py',
        args: [],
        python: fakePython,
        env: { PATH: process.env.PATH, WAIT_FOR_SIGNAL: '1' },
        stdout: { write: (text) => {
          out.write(text);
          if (text.includes('waiting')) controller.abort(new CancelledError('interrupted', { signal }));
        } },
        stderr: capture(),
        signal: controller.signal,
      });
      const result = await done;
      expect(result.code, signal).toBe(expected);
      expect(out.text).toContain(signal === 'SIGTERM' ? 'got-TERM' : 'got-INT');
    }
  });

  it('a missing interpreter is an EnvironmentError', async () => {
    await expect(runFlow({ flowFile: 'f.py', args: [], python: join(dir, 'nope'), stdout: capture(), stderr: capture() })).rejects.toThrow(EnvironmentError);
  });
});
