/**
 * `prebuilt run` and `prebuilt metaflow …` through main(), without Metaflow: argument handling,
 * exit codes, what is (not) built, the extension install into a virtualenv. The runs against real
 * Metaflow are in test/e2e/metaflow.test.ts.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT_CODE_MEANINGS } from '@prebuilt/core';
import { main } from '../main.js';

const run = promisify(execFile);

function capture(): { write(text: string): void; text: string } {
  return {
    text: '',
    write(text: string) {
      this.text += text;
    },
  };
}

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'prebuilt-run-cli-'));
  writeFileSync(
    join(dir, 'local_flow.py'),
    `from metaflow import FlowSpec, step


class LocalFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    LocalFlow()
`,
  );
  // A FAKE metaflow package: \`prebuilt run\` checks that the interpreter finds one before it builds.
  mkdirSync(join(dir, 'metaflow'));
  writeFileSync(join(dir, 'metaflow', '__init__.py'), '');
  // Prints what it was started with instead of running Metaflow (the flow reader is the host python3).
  writeFileSync(
    join(dir, 'sitecustomize.py'),
    `import os, sys
if os.environ.get("PREBUILT_TEST_ECHO_ARGV") and sys.argv[0].endswith("_flow.py"):  # the flow, not prebuilt's own probes
    print("argv:" + " ".join(sys.argv[1:]))
    print("map:" + os.environ.get("METAFLOW_PREBUILT_IMAGE_MAP", "-"))
    print("cli:" + os.environ.get("PREBUILT_CLI", "-"))
    sys.stdout.flush()
    os._exit(int(os.environ.get("PREBUILT_TEST_ECHO_EXIT", "0")))
`,
  );
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function env(extra: Record<string, string> = {}): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  for (const [key, value] of Object.entries(process.env)) if (!/^(METAFLOW_|PREBUILT_|DEBUG$|PYTHONPATH$)/.test(key)) out[key] = value;
  // Nothing may be built for a flow without remote steps: a registry that cannot load proves it.
  return { ...out, METAFLOW_PREBUILT_IMAGE_REGISTRY: 'no-such-registry-backend', METAFLOW_PREBUILT_DEFAULT_PYTHON: '3.11.9', ...extra };
}

async function cli(args: string[], extra: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const stdout = capture();
  const stderr = capture();
  const code = await main(args, { cwd: dir, env: env(extra), stdout, stderr });
  return { code, stdout: stdout.text, stderr: stderr.text };
}

describe('prebuilt run', () => {
  it('--help in place of the flow: the usage, its options (--verbose, --help), settings and exit codes; exit 0', async () => {
    for (const flag of ['--help', '-h']) {
      const result = await cli(['run', flag]);
      expect(result.code).toBe(0);
      expect(result.stdout).toContain('Usage: prebuilt run [flow] [args...]');
      expect(result.stdout).toMatch(/Options \(prebuilt's own[^)]*\):\n {2}--verbose .*\n {2}-h, --help /);
      expect(result.stdout).toContain('METAFLOW_PREBUILT_PYTHON');
      expect(result.stdout).toContain('Exit code:');
      // The Arguments section ends in a blank line before the text, as in every other command's help.
      expect(result.stdout).toMatch(/\n {2}args {2}Metaflow's arguments[^\n]*\n(?: {8}[^\n]*\n)*\nBuilds the images the run needs/);
    }
  });

  it('without a flow: usage, exit 2', async () => {
    const result = await cli(['run']);
    expect(result.code).toBe(2);
    expect(result.stdout).toContain('Usage: prebuilt run [flow] [args...]');
    expect(result.stderr).toContain('prebuilt run needs the flow file');
  });

  it('passes every argument after the flow to Metaflow, --help included, and builds nothing for local steps', async () => {
    const result = await cli(['run', 'local_flow.py', '--no-pylint', 'run', '--with', 'retry', '--help', '--tag', 'a b'], {
      PYTHONPATH: dir,
      PREBUILT_TEST_ECHO_ARGV: '1',
    });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain('argv:--environment=prebuilt --no-pylint run --with retry --help --tag a b');
    expect(result.stdout).toContain('map:-'); // nothing built, no map
    expect(result.stdout).toMatch(/cli:\S+node\S* \S+bin\/prebuilt\.js/); // the extension can still call this CLI
    expect(result.stderr).toContain('LocalFlow: no step runs remotely; nothing to build.');
  });

  it("exits with the flow's exit code", async () => {
    const result = await cli(['run', 'local_flow.py', 'run'], { PYTHONPATH: dir, PREBUILT_TEST_ECHO_ARGV: '1', PREBUILT_TEST_ECHO_EXIT: '7' });
    expect(result.code).toBe(7);
    expect(result.stderr).toContain('exited with code 7');
  });

  it('keeps an --environment the user chose, with a warning', async () => {
    const result = await cli(['run', 'local_flow.py', '--environment=conda', 'run'], { PYTHONPATH: dir, PREBUILT_TEST_ECHO_ARGV: '1' });
    expect(result.stdout).toContain('argv:--environment=conda run');
    expect(result.stderr).toContain('warning: --environment=conda given');
  });

  it('an interpreter without Metaflow: exit 2 with the fix, before anything is built or run', async () => {
    const result = await cli(['run', 'local_flow.py', 'run', '--with', 'kubernetes'], { PREBUILT_TEST_ECHO_ARGV: '1' }); // no PYTHONPATH: no FAKE metaflow
    expect(result.code).toBe(2);
    expect(result.stdout).not.toContain('argv:');
    expect(result.stderr).toMatch(/^error: Metaflow is not importable with python3 \(from PATH: \S+\), so the flow cannot run\.\nhint: Install Metaflow into that Python \(\S+ -m pip install metaflow\), or set METAFLOW_PREBUILT_PYTHON/);
    expect(result.stderr).not.toContain('no-such-registry-backend'); // checked before the build, which would fail on the registry
  });

  it("a flow file whose name Metaflow's remote task commands cannot carry (a space): exit 2 naming it before anything is built, when a step runs remotely; a local run goes ahead", async () => {
    writeFileSync(join(dir, 'my local_flow.py'), readFileSync(join(dir, 'local_flow.py')));
    for (const args of [['run', '--with', 'kubernetes'], ['argo-workflows', 'create']]) {
      const result = await cli(['run', 'my local_flow.py', ...args], { PYTHONPATH: dir, PREBUILT_TEST_ECHO_ARGV: '1' });
      expect(result.code, result.stderr).toBe(2);
      expect(result.stdout).not.toContain('argv:');
      expect(result.stderr).toContain('error: Metaflow cannot run "my local_flow.py" remotely: it writes the flow file\'s name unquoted into the shell command of every remote task (python my local_flow.py … step …), where a space breaks it');
      expect(result.stderr).toContain('hint: Rename the flow file to letters, digits and . _ - (for example my_local_flow.py).');
      expect(result.stderr).not.toContain('no-such-registry-backend'); // refused before the build
    }
    const local = await cli(['run', 'my local_flow.py', 'run'], { PYTHONPATH: dir, PREBUILT_TEST_ECHO_ARGV: '1' });
    expect(local.code, local.stderr).toBe(0);
    expect(local.stdout).toContain('argv:--environment=prebuilt run');
  });

  it("a module the flow file imports when it loads that the interpreter does not find: exit 2 naming it and its line before anything is built; one guarded by try or if, or the flow's own, is not asked for", async () => {
    const flow = readFileSync(join(dir, 'local_flow.py'), 'utf8');
    writeFileSync(join(dir, 'own_helpers.py'), 'X = 1\n');
    writeFileSync(
      join(dir, 'imports_flow.py'),
      flow.replace(
        'from metaflow import FlowSpec, step\n',
        [
          'import json, os.path',
          'from typing import TYPE_CHECKING',
          'from metaflow import FlowSpec, step',
          'import own_helpers',
          'if TYPE_CHECKING:',
          '    import prebuilt_no_such_typing_module',
          'try:',
          '    import prebuilt_no_such_optional_module',
          'except ImportError:',
          '    pass',
          '',
        ].join('\n'),
      ),
    );
    const fine = await cli(['run', 'imports_flow.py', 'run'], { PYTHONPATH: dir, PREBUILT_TEST_ECHO_ARGV: '1' });
    expect(fine.code, fine.stderr).toBe(0);
    expect(fine.stdout).toContain('argv:--environment=prebuilt run');
    writeFileSync(join(dir, 'missing_flow.py'), flow.replace('from metaflow import FlowSpec, step\n', 'from metaflow import FlowSpec, step\nimport os\nimport prebuilt_no_such_module.sub as m\n'));
    const result = await cli(['run', 'missing_flow.py', 'run', '--with', 'kubernetes'], { PYTHONPATH: dir, PREBUILT_TEST_ECHO_ARGV: '1' });
    expect(result.code).toBe(2);
    expect(result.stdout).not.toContain('argv:');
    expect(result.stderr).toMatch(
      /^error: missing_flow\.py:3: the flow file imports prebuilt_no_such_module when it loads, and python3 \(from PATH: \S+\) does not find it\. Metaflow loads the flow file with that Python to run or deploy it, so it would stop there with ModuleNotFoundError\.\nhint: Install the package that provides prebuilt_no_such_module into that Python, or import prebuilt_no_such_module inside the steps that use it \(they run in their images/,
    );
    expect(result.stderr).not.toContain('no-such-registry-backend'); // before the build
  });

  it('a Metaflow command that starts no remote step (show, check, dump, --help, argo-workflows trigger…) builds nothing, even with remote steps, and runs', async () => {
    writeFileSync(join(dir, 'my local_flow.py'), readFileSync(join(dir, 'local_flow.py')));
    for (const [file, args, command] of [
      ['local_flow.py', ['--with', 'kubernetes', 'show'], 'show'],
      ['local_flow.py', ['--with', 'kubernetes'], 'check'],
      ['local_flow.py', ['--with', 'kubernetes', 'run', '--help'], 'run --help'],
      ['local_flow.py', ['--with', 'kubernetes', 'dump', 'LocalFlow/1'], 'dump'],
      ['local_flow.py', ['argo-workflows', 'trigger'], 'argo-workflows trigger'],
      // No task command is written: the file's name does not matter.
      ['my local_flow.py', ['--with', 'kubernetes', 'show'], 'show'],
    ] as const) {
      const result = await cli(['run', file, ...args], { PYTHONPATH: dir, PREBUILT_TEST_ECHO_ARGV: '1' });
      expect({ args, code: result.code, stderr: result.stderr }).toEqual({ args, code: 0, stderr: `LocalFlow: \`${command}\` starts no remote step; no image built.\n` });
      expect(result.stdout).toContain(`argv:--environment=prebuilt ${args.join(' ')}`);
      expect(result.stdout).toContain('map:-');
    }
  });

  it('a remote step needs a registry: its misconfiguration is exit 2 before Metaflow starts', async () => {
    const result = await cli(['run', 'local_flow.py', 'run', '--with', 'kubernetes'], { PYTHONPATH: dir, PREBUILT_TEST_ECHO_ARGV: '1' });
    expect(result.code).toBe(2);
    expect(result.stdout).not.toContain('argv:');
    expect(result.stderr).toContain('no-such-registry-backend');
  });

  it('the top-level --datastore is the one the images pin packages for: one Metaflow refuses is exit 2 naming it, before any backend is loaded or anything built', async () => {
    const refused = await cli(['run', 'local_flow.py', '--datastore=ftp', 'run', '--with', 'kubernetes'], { PYTHONPATH: dir, PREBUILT_TEST_ECHO_ARGV: '1' });
    expect(refused.code).toBe(2);
    expect(refused.stdout).not.toContain('argv:');
    expect(refused.stderr).toContain("error: Metaflow datastore 'ftp' (from --datastore) is not one of local, s3, azure, gs.");
    expect(refused.stderr).not.toContain('no-such-registry-backend');
    // A datastore Metaflow knows goes on to the build (here, to the registry that cannot load), over an empty setting Metaflow would refuse.
    const s3 = await cli(['run', 'local_flow.py', '--datastore', 's3', 'run', '--with', 'kubernetes'], { PYTHONPATH: dir, PREBUILT_TEST_ECHO_ARGV: '1', METAFLOW_DEFAULT_DATASTORE: '' });
    expect(s3.code).toBe(2);
    expect(s3.stderr).toContain('no-such-registry-backend');
    expect(s3.stderr).not.toContain('datastore');
    const unset = await cli(['run', 'local_flow.py', 'run', '--with', 'kubernetes'], { PYTHONPATH: dir, PREBUILT_TEST_ECHO_ARGV: '1', METAFLOW_DEFAULT_DATASTORE: '' });
    expect(unset.stderr).toContain("error: Metaflow datastore '' (from METAFLOW_DEFAULT_DATASTORE) is not one of local, s3, azure, gs.");
  });

  it("METAFLOW_DEFAULT_DECOSPECS in Metaflow's configuration file sends every step to Kubernetes, as Metaflow reads it (an empty one in the environment turns it off); a step then sent to both is exit 2", async () => {
    const home = join(dir, 'metaflow-home');
    mkdirSync(home, { recursive: true });
    writeFileSync(join(home, 'config.json'), JSON.stringify({ METAFLOW_DEFAULT_DECOSPECS: 'kubernetes:cpu=2' }));
    try {
      const remote = await cli(['run', 'local_flow.py', 'run'], { PYTHONPATH: dir, PREBUILT_TEST_ECHO_ARGV: '1', METAFLOW_HOME: home });
      expect(remote.code).toBe(2);
      expect(remote.stdout).not.toContain('argv:');
      expect(remote.stderr).toContain('no-such-registry-backend');
      const off = await cli(['run', 'local_flow.py', 'run'], { PYTHONPATH: dir, PREBUILT_TEST_ECHO_ARGV: '1', METAFLOW_HOME: home, METAFLOW_DEFAULT_DECOSPECS: '' });
      expect(off.code, off.stderr).toBe(0);
      expect(off.stdout).toContain('argv:--environment=prebuilt run');
      const both = await cli(['run', 'local_flow.py', 'run', '--with', 'batch'], { PYTHONPATH: dir, PREBUILT_TEST_ECHO_ARGV: '1', METAFLOW_HOME: home });
      expect(both.code).toBe(2);
      expect(both.stdout).not.toContain('argv:');
      expect(both.stderr).toContain(`local_flow.py:6: step 'start' gets @batch from --with batch, and METAFLOW_DEFAULT_DECOSPECS in ${join(home, 'config.json')} (kubernetes:cpu=2) gives it @kubernetes too, which Metaflow refuses`);
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  });
});

describe('prebuilt metaflow install | status | uninstall (a FAKE metaflow package on PYTHONPATH stands in for Metaflow)', () => {
  let python: string;
  let fakeMetaflow: string;
  beforeAll(async () => {
    await run('python3', ['-m', 'venv', '--without-pip', join(dir, 'venv')]);
    python = join(dir, 'venv', 'bin', 'python');
    // FAKE Metaflow: just what the status probe imports (its version and its environments).
    fakeMetaflow = join(dir, 'fake-metaflow');
    mkdirSync(join(fakeMetaflow, 'metaflow'), { recursive: true });
    writeFileSync(join(fakeMetaflow, 'metaflow', '__init__.py'), '');
    writeFileSync(join(fakeMetaflow, 'metaflow', 'metaflow_version.py'), 'def get_version():\n    return "2.99.0-fake"\n');
    writeFileSync(join(fakeMetaflow, 'metaflow', 'plugins.py'), 'ENVIRONMENTS = []\n');
  }, 120_000);

  it('installs for the given interpreter, reports it, and removes it', async () => {
    const withMetaflow = { PYTHONPATH: fakeMetaflow };
    const installed = await cli(['metaflow', 'install', '--python', python, '--json'], withMetaflow);
    expect(installed.code, installed.stderr).toBe(0);
    const manifest = JSON.parse(installed.stdout) as { target: string; cli: string[]; replaced: boolean };
    expect(manifest.target).toMatch(/venv\/lib\/python3\.\d+\/site-packages\/metaflow_extensions\/prebuilt$/);
    expect(manifest.cli[1]).toMatch(/bin\/prebuilt\.js$/);
    expect(manifest.replaced).toBe(false);

    const status = await cli(['metaflow', 'status', '--python', python], withMetaflow);
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toContain(`installed: ${manifest.target}`);
    expect(status.stdout).toContain('metaflow:  2.99.0-fake');

    const removed = await cli(['metaflow', 'uninstall', '--python', python]);
    expect(removed.code).toBe(0);
    expect(removed.stdout).toContain(`removed ${manifest.target}`);
    expect((await cli(['metaflow', 'uninstall', '--python', python])).stdout).toContain('not installed');
  });

  it('install refuses (exit 2, with the fix) a Python without Metaflow, and installs nothing', async () => {
    const refused = await cli(['metaflow', 'install', '--python', python]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('cannot import Metaflow');
    expect(refused.stderr).toContain('-m pip install metaflow');
    expect((await cli(['metaflow', 'uninstall', '--python', python])).stdout).toContain('not installed');
  });

  it('status exits 2 when Metaflow is not importable (the status is still printed; --json has ok: false)', async () => {
    const status = await cli(['metaflow', 'status', '--python', python]);
    expect(status.code).toBe(2);
    expect(status.stdout).toContain('metaflow:  not importable');
    expect(status.stderr).toContain('Metaflow is not importable');
    // Exit 2 is the table's "a tool it needs missing" (error code environment); the hint says how to install it.
    expect(status.stderr).toContain(`hint: Install Metaflow into that Python (${python} -m pip install metaflow)`);
    const json = await cli(['metaflow', 'status', '--python', python, '--json']);
    expect(json.code).toBe(2);
    expect(JSON.parse(json.stdout)).toMatchObject({ ok: false, metaflow: null, error: { code: 'environment', hint: expect.stringContaining('-m pip install metaflow') } });
    expect(EXIT_CODE_MEANINGS[2]).toContain('Metaflow not importable: metaflow status');
    const help = await cli(['metaflow', 'status', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('2 Metaflow does not import with it (the status is still printed; the hint\ngives the pip command that installs it');
  });

  it('an interpreter that does not exist is exit 2', async () => {
    const result = await cli(['metaflow', 'install', '--python', join(dir, 'nope', 'python')]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('was not found');
  });
});
