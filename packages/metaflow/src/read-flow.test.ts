import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { EnvironmentError, ExitCode, InputError } from '@prebuilt/core';
import { readFlow } from './read-flow.js';

const dir = mkdtempSync(join(tmpdir(), 'prebuilt-readflow-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
// The real interpreter behind `python3` (version-manager shims are slow to start).
const python = execFileSync('python3', ['-c', 'import sys; print(sys.executable)'], { encoding: 'utf8' }).trim();

let counter = 0;
async function read(source: string) {
  const file = `flow${++counter}.py`;
  writeFileSync(join(dir, file), source);
  return await readFlow(file, { cwd: dir, python });
}
async function readError(source: string): Promise<InputError> {
  try {
    await read(source);
  } catch (error) {
    expect(error).toBeInstanceOf(InputError);
    return error as InputError;
  }
  throw new Error('expected an InputError');
}

describe.concurrent('readFlow', () => {
  it('reads star imports, dotted imports, f-string conversions and format specs, ** in decorator calls', async () => {
    const flow = await read(
      [
        'import metaflow.cards',
        'from metaflow import *',
        'V = 3.0',
        'ARGS = {"packages": {"a": f"{V:.1f}", "b": f"=={V!r}"}, "python": "3.11"}',
        '',
        '@metaflow.conda_base(**ARGS)',
        'class F(FlowSpec):',
        '    @conda(packages={"c": "1"})',
        '    @step',
        '    def start(self):',
        '        pass',
      ].join('\n'),
    );
    expect(flow.flow).toBe('F');
    expect(flow.condaBase).toMatchObject({ name: 'conda_base', line: 6, packages: { a: '3.0', b: '==3.0' }, python: '3.11' });
    expect(flow.steps).toEqual([
      { name: 'start', line: 10, imports: [], conda: { name: 'conda', line: 8, packages: { c: '1' }, argLines: { packages: 8 } } },
    ]);
    expect(flow.hostPython).toMatch(/^\d+\.\d+\.\d+$/);
  });

  it('lists the imports: module level and class bodies for the file, the function body (nested helpers included) for each step; relative ones left out, those inside a try optional', async () => {
    const flow = await read(
      [
        'from metaflow import FlowSpec, step',
        'import os, json as j',
        'import numpy.linalg',
        'from . import sibling',
        'try:',
        '    import yaml',
        'except ImportError:',
        '    yaml = None',
        'def util():',
        '    import not_at_load',
        'class F(FlowSpec):',
        '    import csv',
        '    @step',
        '    def start(self):',
        '        import pandas as pd',
        '        from sklearn.model_selection import train_test_split, KFold',
        '        from .local import thing',
        '        def helper():',
        '            import scipy',
        '        try:',
        '            import torch',
        '        except ImportError:',
        '            from tinyfallback import *',
        '        self.next(self.end)',
        '    @step',
        '    def end(self):',
        '        pass',
      ].join('\n'),
    );
    expect(flow.imports).toEqual([
      { module: 'metaflow', names: ['FlowSpec', 'step'], line: 1, optional: false },
      { module: 'os', line: 2, optional: false },
      { module: 'json', line: 2, optional: false },
      { module: 'numpy.linalg', line: 3, optional: false },
      { module: 'yaml', line: 6, optional: true },
      { module: 'csv', line: 12, optional: false },
    ]);
    expect(flow.steps.map((s) => [s.name, s.imports])).toEqual([
      [
        'start',
        [
          { module: 'pandas', line: 15, optional: false },
          { module: 'sklearn.model_selection', names: ['train_test_split', 'KFold'], line: 16, optional: false },
          { module: 'scipy', line: 19, optional: false },
          { module: 'torch', line: 21, optional: true },
          { module: 'tinyfallback', names: ['*'], line: 23, optional: true },
        ],
      ],
      ['end', []],
    ]);
  });

  it('marks an import inside if, for, with or match conditional (it may not run), not one inside a try (optional) or a class body', async () => {
    const flow = await read(
      [
        'from typing import TYPE_CHECKING',
        'from metaflow import FlowSpec, step',
        'if TYPE_CHECKING:',
        '    import pandas',
        '    try:',
        '        import yaml',
        '    except ImportError:',
        '        pass',
        'try:',
        '    import torch',
        'except ImportError:',
        '    pass',
        'for _ in range(1):',
        '    import csv',
        'with open(__file__):',
        '    import json',
        'class F(FlowSpec):',
        '    import os',
        '    @step',
        '    def start(self):',
        '        pass',
      ].join('\n'),
    );
    expect(flow.imports.map((i) => [i.module, i.optional, i.conditional ?? false])).toEqual([
      ['typing', false, false],
      ['metaflow', false, false],
      ['pandas', false, true],
      ['yaml', true, true],
      ['torch', true, false],
      ['csv', false, true],
      ['json', false, true],
      ['os', false, false],
    ]);
  });

  it('a syntax error names the line, and its hint the command that shows it for this file (quoted for a shell)', async () => {
    const error = await readError('from metaflow import FlowSpec\nclass F(FlowSpec)\n    pass\n');
    expect(error.message).toMatch(/^flow\d+\.py:2: Python syntax error: expected ':'$/);
    expect(error.hint).toMatch(/^Fix the syntax error \(`python3 -m py_compile flow\d+\.py` shows it too\)\.$/);
    writeFileSync(join(dir, "it's broken.py"), 'def (:\n');
    const spaced = (await readFlow("it's broken.py", { cwd: dir, python }).catch((caught: unknown) => caught)) as InputError;
    expect(spaced.hint).toBe("Fix the syntax error (`python3 -m py_compile 'it'\\''s broken.py'` shows it too).");
  });

  it("marks the flow's own modules local: a .py file or a folder beside the flow file, not a file of another name or a folder's file", async () => {
    const own = join(dir, 'own-modules');
    mkdirSync(join(own, 'mylib'), { recursive: true });
    mkdirSync(join(own, 'nsdir'));
    writeFileSync(join(own, 'helpers.py'), 'X = 1\n');
    writeFileSync(join(own, 'mylib', '__init__.py'), '');
    writeFileSync(join(own, 'notes.txt'), '');
    writeFileSync(join(own, 'pandas.txt'), '');
    writeFileSync(
      join(own, 'flow.py'),
      [
        'from metaflow import FlowSpec, step',
        'import helpers',
        'import pandas',
        'from mylib.util import double',
        'class F(FlowSpec):',
        '    @step',
        '    def start(self):',
        '        import nsdir.mod',
        '        from helpers import X',
        '        import notes',
        '        pass',
      ].join('\n'),
    );
    const flow = await readFlow('flow.py', { cwd: own, python });
    expect(flow.imports.map((i) => [i.module, i.local ?? false])).toEqual([
      ['metaflow', false],
      ['helpers', true],
      ['pandas', false],
      ['mylib.util', true],
    ]);
    expect(flow.steps[0]!.imports.map((i) => [i.module, i.local ?? false])).toEqual([
      ['nsdir.mod', true],
      ['helpers', true],
      ['notes', false],
    ]);
  });

  it('reads the image of a remote decorator, static or computed', async () => {
    const flow = await read(
      [
        'import os',
        'from metaflow import FlowSpec, step, kubernetes, batch',
        'class F(FlowSpec):',
        '    @kubernetes(image="reg/img:1", cpu=os.cpu_count())',
        '    @step',
        '    def start(self):',
        '        self.next(self.end)',
        '    @batch(image=os.environ["IMG"], gpu="2")',
        '    @step',
        '    def end(self):',
        '        pass',
      ].join('\n'),
    );
    expect(flow.steps[0]?.remote).toEqual({ name: 'kubernetes', line: 4, gpu: null, image: { kind: 'static', value: 'reg/img:1' } });
    expect(flow.steps[1]?.remote).toEqual({ name: 'batch', line: 8, gpu: 2, image: { kind: 'dynamic', line: 8 } });
  });

  it("reads @kubernetes' node_selector, tolerations, compute_pool and gpu_vendor (literals, constants; a computed one is marked with why, for prepull alone to refuse)", async () => {
    const flow = await read(
      [
        'import os',
        'from metaflow import FlowSpec, step, kubernetes, batch',
        'GPU_POOL = {"pool": "gpu"}',
        'TAINT = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}',
        'class F(FlowSpec):',
        '    @kubernetes(gpu=1, node_selector=GPU_POOL, tolerations=[TAINT], compute_pool="a100", gpu_vendor="amd")',
        '    @step',
        '    def start(self):',
        '        self.next(self.mid)',
        '    @kubernetes(node_selector="pool=cpu,zone=a", tolerations=os.environ["T"])',
        '    @step',
        '    def mid(self):',
        '        self.next(self.end)',
        '    @batch(node_selector=os.environ["X"])',
        '    @step',
        '    def end(self):',
        '        pass',
      ].join('\n'),
    );
    expect(flow.steps[0]?.remote).toMatchObject({
      gpu: 1,
      nodeSelector: { kind: 'static', value: { pool: 'gpu' }, line: 6 },
      tolerations: { kind: 'static', value: [{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }], line: 6 },
      computePool: { kind: 'static', value: 'a100', line: 6 },
      gpuVendor: { kind: 'static', value: 'amd', line: 6 },
    });
    expect(flow.steps[1]?.remote).toMatchObject({ nodeSelector: { kind: 'static', value: 'pool=cpu,zone=a' }, tolerations: { kind: 'dynamic', line: 10, why: expect.stringMatching(/not a literal, a constant or a simple expression/) } });
    // @batch has no placement of Kubernetes: its arguments are not read.
    expect(flow.steps[2]?.remote).toEqual({ name: 'batch', line: 14, gpu: null, image: { kind: 'absent' } });
  });

  it('refuses a step decorator written below @step (Metaflow refuses it when it loads the flow), naming both lines and the fix', async () => {
    for (const deco of ['@pypi(packages={"a": "1"})', '@kubernetes', '@resources(gpu=1)']) {
      const error = await readError(['from metaflow import FlowSpec, step, pypi, kubernetes, resources', 'class F(FlowSpec):', '    @step', `    ${deco}`, '    def start(self):', '        pass'].join('\n'));
      const name = deco.slice(1).split('(')[0]!;
      expect(error.message, deco).toMatch(new RegExp(`^flow\\d+\\.py:4: @${name} on step 'start' \\(line 4\\) is below @step \\(line 3\\); Metaflow refuses it when it loads the flow: move @${name} above @step$`));
      expect(error.line).toBe(4);
    }
    // Other decorators below @step are not ours to judge.
    const flow = await read(['from metaflow import FlowSpec, step', 'import functools', 'class F(FlowSpec):', '    @step', '    @functools.wraps(print)', '    def start(self):', '        pass'].join('\n'));
    expect(flow.steps.map((s) => s.name)).toEqual(['start']);
  });

  it("reads @resources' gpu (any other argument may be computed), and refuses a computed gpu as it does @kubernetes'", async () => {
    const flow = await read(
      [
        'import os',
        'from metaflow import FlowSpec, step, kubernetes, resources',
        'class F(FlowSpec):',
        '    @resources(gpu=2, memory=os.cpu_count() * 1024)',
        '    @step',
        '    def start(self):',
        '        self.next(self.end)',
        '    @kubernetes',
        '    @resources(cpu=4)',
        '    @step',
        '    def end(self):',
        '        pass',
      ].join('\n'),
    );
    expect(flow.steps[0]?.resources).toEqual({ line: 4, gpu: 2 });
    expect(flow.steps[0]?.remote).toBeUndefined();
    expect(flow.steps[1]?.resources).toEqual({ line: 9, gpu: null });
    const error = await readError(['import os', 'from metaflow import FlowSpec, step, resources', 'class F(FlowSpec):', '    @resources(gpu=int(os.environ["N"]))', '    @step', '    def start(self):', '        pass'].join('\n'));
    expect(error.message).toMatch(/:4: the 'gpu' argument of @resources on step 'start' cannot be read without running the flow/);
  });

  it('uses class-level constants defined before the step, and module ones otherwise', async () => {
    const flow = await read(
      [
        'from metaflow import FlowSpec, step, conda',
        'P = {"m": "1"}',
        'class F(FlowSpec):',
        '    C = {"c": "1"}',
        '    @conda(packages={**C, **P})',
        '    @step',
        '    def start(self):',
        '        pass',
        '    P = {"late": "1"}',
      ].join('\n'),
    );
    expect(flow.steps[0]?.conda?.packages).toEqual({ c: '1', m: '1' });
  });

  it('refuses a decorator value imported from a module that is not the flow\'s own (installed, standard library), bound twice, or imported in the class body, saying what to write', async () => {
    const flow = (imports: string[], packages: string, classLines: string[] = []) =>
      ['from metaflow import FlowSpec, step, conda', ...imports, 'class F(FlowSpec):', ...classLines, `    @conda(packages=${packages})`, '    @step', '    def start(self):', '        pass'].join('\n');
    const notOwn = "which is not one of the flow's own modules \\(a file or package under the flow's directory\\): prebuilt reads values from those only, not from installed libraries or the standard library, whose code it would have to run; write the value in the flow file or in a module beside it$";
    const cases: [string, string[], string, string[], RegExp][] = [
      ['from-import', ['from helpers import PKGS'], 'PKGS', [], new RegExp(`'PKGS' is imported from helpers \\(line 2\\), ${notOwn}`)],
      ['as', ['from settings.env import BASE as B'], '{**B}', [], /'B' is imported from settings\.env \(line 2\)/],
      ['import', ['import helpers'], 'helpers', [], /'helpers' is imported from helpers \(line 2\)/],
      ['attribute of the standard library', ['import sys'], '{"python": sys.version}', [], new RegExp(`'sys' is imported from sys \\(line 2\\), ${notOwn}`)],
      ['metaflow', ['from metaflow import current'], 'current.pkgs', [], /'current' is imported from metaflow \(line 2\)/],
      ['in the class body', [], 'P', ['    from helpers import P'], /'P' is imported in the class body \(line 3\); prebuilt follows imports at the top level of a module: move the import to the top of the file$/],
      ['imported later', [], 'P', [], /'P' is only imported later \(line 7\)/],
    ];
    for (const [title, imports, packages, classLines, message] of cases) {
      const source = flow(imports, packages, classLines) + (title === 'imported later' ? '\nfrom helpers import P' : '');
      const error = await readError(source);
      expect(error.message, title).toMatch(message);
    }
    // Changed by code after its assignment: X.update(...) at the top level, X[k] = v in a loop.
    for (const [change, lines] of [['PKGS.update({"b": "2"})', '2, 3'], ['for k in ["b"]:\n    PKGS[k] = "2"', '2, 4']]) {
      const changed = await readError(flow(['PKGS = {"a": "1"}', change!], 'PKGS'));
      expect(changed.message, change).toMatch(`'PKGS' is bound or changed more than once (lines ${lines})`);
    }
    // Bound by an import and also assigned: bound twice.
    const both = await readError(flow(['from helpers import PKGS', 'PKGS = {}'], 'PKGS'));
    expect(both.message).toMatch(/'PKGS' is bound or changed more than once \(lines 2, 3\), not only by `PKGS = value`: .*give each value its own name \(`ALL = \{\*\*BASE, "x": "1"\}`\)$/);
  });

  it('names a constant assigned only after its use', async () => {
    const error = await readError(
      ['from metaflow import FlowSpec, step, conda', 'class F(FlowSpec):', '    @conda(packages=LATE)', '    @step', '    def start(self):', '        pass', 'LATE = {}'].join('\n'),
    );
    expect(error.message).toMatch(/^flow\d+\.py:3: the 'packages' argument of @conda on step 'start' .*'LATE' is only assigned later \(line 7\)/);
    expect(error.line).toBe(3);
    expect(error.exitCode).toBe(ExitCode.usage);
  });

  it('names a Metaflow Config (an attribute, an item, config_expr, the Config itself) as what cannot be read, with a hint that says what to write instead', async () => {
    const flow = (decorator: string) =>
      [
        'import metaflow as mf',
        'from metaflow import FlowSpec, Config, config_expr, step, pypi',
        'class F(FlowSpec):',
        '    cfg = Config("settings", default="cfg.json")',
        '    other = {"a": "1"}',
        `    ${decorator}`,
        '    @step',
        '    def start(self):',
        '        pass',
      ].join('\n');
    const cases: [string, RegExp][] = [
      ['@pypi(packages=cfg.packages)', /'cfg\.packages' is a value of the Metaflow Config 'settings' \(line 4\), known only when Metaflow runs the flow$/],
      ['@pypi(packages=cfg["env"]["packages"])', /'cfg\['env'\]\['packages'\]' is a value of the Metaflow Config 'settings' \(line 4\)/],
      ['@pypi(python=config_expr("settings.python"))', /'config_expr\('settings\.python'\)' is config_expr\(\.\.\.\), a value of a Metaflow Config/],
      ['@pypi(**cfg)', /'cfg' \(line 4\): 'Config\('settings', default='cfg\.json'\)' is a Metaflow Config/],
      ['@pypi(packages=mf.Config("inline"))', /is a Metaflow Config, known only/],
    ];
    for (const [decorator, message] of cases) {
      const error = await readError(flow(decorator));
      expect(error.message, decorator).toMatch(/^flow\d+\.py:6: the '(packages|python|\*\*)' argument of @pypi on step 'start' cannot be read without running the flow: /);
      expect(error.message, decorator).toMatch(message);
      expect(error.hint, decorator).toMatch(/cannot follow a Metaflow Config \(its files, --config, --config-value\): write the env decorators' packages and python in the flow file/);
    }
    // Anything else computed keeps the general message and hint.
    const other = await readError(flow('@pypi(packages=other.copy())'));
    expect(other.message).toMatch(/'other\.copy\(\)' is a call/);
    expect(other.hint).toMatch(/^prebuilt reads decorators without running the flow: use literals/);
  });

  it('refuses a value built to exhaust memory or time, at once and naming the line, without running anything', async () => {
    const flow = (values: string[], packages: string) =>
      ['from metaflow import FlowSpec, step, conda', ...values, 'class F(FlowSpec):', `    @conda(packages=${packages})`, '    @step', '    def start(self):', '        pass'].join('\n');
    // Each of these took gigabytes (a 3 GB package name made the reader hold 6 GB and print it all) or minutes.
    const doubling = (first: string) => [`V0 = ${first}`, ...Array.from({ length: 40 }, (_, i) => `V${i + 1} = V${i} + V${i}`)];
    const cases: [string, string[], string, RegExp][] = [
      ['a format width', ['W = f"{1:>3000000000}"'], '{W: "1"}', /'W' \(line 2\).*larger than/],
      // Doubled by names that each repeat the one before: the steps run out before the size does.
      ['a string doubled 40 times', doubling('"x"'), '{V40: "1"}', /too many steps/],
      ['a string doubled by f-strings', ['T0 = "' + 'z'.repeat(4096) + '"', ...Array.from({ length: 12 }, (_, i) => `T${i + 1} = f"{T${i}}{T${i}}"`)], '{T12: "1"}', /larger than/],
      ['a list of references doubled', [`S = "${'y'.repeat(1000)}"`, ...doubling('[S]')], 'dict(a=V40)', /larger than|too many steps/],
      ['a number multiplied up', ['N0 = 99999999999', ...Array.from({ length: 40 }, (_, i) => `N${i + 1} = N${i} * N${i}`)], '{"a": str(N40)}', /larger than/],
      ['a sum evaluated 2^40 times', doubling('1'), '{"a": str(V40)}', /too many steps/],
    ];
    for (const [what, values, packages, message] of cases) {
      const started = Date.now();
      const error = await readError(flow(values, packages));
      expect(error.message, what).toMatch(message);
      expect(Date.now() - started, what).toBeLessThan(20_000);
    }
    // Each argument within the bound, 40 of them together over what a file's arguments may weigh (16 MiB).
    const steps = Array.from({ length: 40 }, (_, i) => [`    @conda(packages={BIG: "${i}"})`, '    @step', `    def s${i}(self):`, '        pass']).flat();
    const many = await readError(['from metaflow import FlowSpec, step, conda', `BIG = "${'b'.repeat(600 * 1024)}"`, 'class F(FlowSpec):', ...steps].join('\n'));
    expect(many.message).toMatch(/arguments of this file are larger than 16777216 characters together/);
  });

  it("refuses an expression nested too deeply for Python's own parser (a traceback, MemoryError, before), naming the file and what to do", async () => {
    const error = await readError(['from metaflow import FlowSpec, step, conda', `X = ${'-'.repeat(200_000)}1`, 'class F(FlowSpec):', '    @conda(packages={"a": X})', '    @step', '    def start(self):', '        pass'].join('\n'));
    expect(error.message).toMatch(/^flow\d+\.py: the flow file has an expression nested too deeply for Python to parse/);
    expect(error.hint).toMatch(/^Python cannot parse an expression nested that deeply either \(`python3 -m py_compile flow\d+\.py` fails too\)/);
    expect(error.exitCode).toBe(ExitCode.usage);
  });

  it('follows reassignments in order, as Python does', async () => {
    const flow = await read(
      [
        'from metaflow import FlowSpec, step, conda',
        'A = {"x": "1"}',
        'A = {**A, "y": "2"}',
        'class F(FlowSpec):',
        '    @conda(packages=A)',
        '    @step',
        '    def start(self):',
        '        pass',
        'A = {"z": "3"}',
      ].join('\n'),
    );
    expect(flow.steps[0]?.conda?.packages).toEqual({ x: '1', y: '2' });
  });

  it('treats annotated constants as constants and names bound by compound statements as unknown', async () => {
    const lines = [
      'from metaflow import FlowSpec, step, conda',
      'X: dict',
      'X = {"a": "1"}',
      'Y: dict = {"b": "2"}',
      'with open(__file__) as handle:',
      '    Z = {"z": handle.name}',
      'class F(FlowSpec):',
      '    @conda(packages={**X, **Y})',
      '    @step',
      '    def start(self):',
      '        pass',
    ];
    expect((await read(lines.join('\n'))).steps[0]?.conda?.packages).toEqual({ a: '1', b: '2' });
    const error = await readError([...lines.slice(0, 7), '    @conda(packages=Z)', ...lines.slice(8)].join('\n'));
    expect(error.message).toMatch(/:8: .*'Z' is bound at line 6 by code \(a def, class, loop, if, with, try.*assign the value once at the top level$/);
  });

  it('refuses a run class whose FlowSpec base lives in a module outside the flow\'s directory (an installed library), naming the base, its module and what to do', async () => {
    const error = await readError(
      ['from metaflow import step', 'from mybase import BaseFlow', 'class F(BaseFlow):', '    pass', 'if __name__ == "__main__":', '    F()'].join('\n'),
    );
    expect(error.message).toMatch(
      /:6: class F, run under `if __name__ == "__main__"`, derives from BaseFlow, imported from mybase \(line 2\), which is not a module under the flow's directory: prebuilt reads base flows from the flow's own modules only, so it cannot see the steps and decorators of a base flow defined in an installed library$/,
    );
    expect(error.hint).toMatch(/^Define the base flow in the flow file or in a module under its directory/);
    const dotted = await readError(['import flows.base as fb', 'class F(fb.BaseFlow):', '    pass', 'if __name__ == "__main__":', '    F()'].join('\n'));
    expect(dotted.message).toMatch(/derives from fb\.BaseFlow, imported from flows\.base \(line 1\)/);
    // A base the file neither defines nor imports keeps the general message.
    const unknown = await readError(['class F(Somewhere):', '    pass', 'if __name__ == "__main__":', '    F()'].join('\n'));
    expect(unknown.message).toMatch(/:4: class F, run under .* is not a subclass of metaflow's FlowSpec/);
  });

  it('refuses a file that runs two flows', async () => {
    const error = await readError(
      [
        'from metaflow import FlowSpec, step',
        'class A(FlowSpec):',
        '    @step',
        '    def start(self): pass',
        'class B(FlowSpec):',
        '    @step',
        '    def start(self): pass',
        'if __name__ == "__main__":',
        '    A()',
        '    B()',
      ].join('\n'),
    );
    expect(error.message).toMatch(/runs more than one FlowSpec class.*A \(line 9\), B \(line 10\)/);
  });

  it('refuses a flow with both @kubernetes and @batch on one step', async () => {
    const error = await readError(
      ['from metaflow import FlowSpec, step, kubernetes, batch', 'class F(FlowSpec):', '    @kubernetes', '    @batch', '    @step', '    def start(self): pass'].join('\n'),
    );
    expect(error.message).toMatch(/:4: step 'start' has both @kubernetes and @batch/);
  });

  it('refuses python=3.10 written as a number (Python reads it as 3.1), and reads python=3.11 as "3.11"', async () => {
    const flow = (python: string) =>
      ['from metaflow import FlowSpec, step, conda', 'class F(FlowSpec):', `    @conda(python=${python})`, '    @step', '    def start(self): pass'].join('\n');
    const error = await readError(flow('3.10'));
    expect(error.message).toMatch(/:3: 'python' of @conda on step 'start' is the number 3\.1: a float drops trailing zeros \(3\.10 reads as 3\.1\); write the version as a string, e\.g\. python="3\.10"/);
    expect(error.exitCode).toBe(ExitCode.usage);
    expect((await read(flow('3.11'))).steps[0]!.conda!.python).toBe('3.11');
    expect((await read(flow('"3.10"'))).steps[0]!.conda!.python).toBe('3.10');
  });

  it('runs the reader isolated and without site (-I -S: the standard library only, no .pth file runs)', async () => {
    const argsFile = join(dir, 'python-args.txt');
    const recorder = join(dir, 'recording-python');
    writeFileSync(recorder, `#!/bin/sh\nprintf '%s\\n' "$@" > '${argsFile}'\nexec '${python}' "$@"\n`);
    chmodSync(recorder, 0o755);
    writeFileSync(join(dir, 'recorded.py'), 'from metaflow import FlowSpec, step\nclass F(FlowSpec):\n    @step\n    def start(self): pass\n');
    expect((await readFlow('recorded.py', { cwd: dir, python: recorder })).flow).toBe('F');
    expect(readFileSync(argsFile, 'utf8').split('\n').slice(0, 2)).toEqual(['-I', '-S']);
  });

  it('reports a missing interpreter as an EnvironmentError saying what to install', async () => {
    writeFileSync(join(dir, 'ok.py'), 'pass\n');
    const error = await readFlow('ok.py', { cwd: dir, env: { METAFLOW_PREBUILT_PYTHON: join(dir, 'no-python') } }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(EnvironmentError);
    expect((error as EnvironmentError).message).toMatch(/no-python' \(from METAFLOW_PREBUILT_PYTHON\) was not found/);
    expect((error as EnvironmentError).hint).toMatch(/Install Python 3\.8 or newer/);
  });
});
