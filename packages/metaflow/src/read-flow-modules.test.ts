/**
 * Base flows in the flow's own modules: `from base import TeamFlow` (and packages, `import x` +
 * `x.Base`, relative imports inside a package) is followed to the file Python would import for
 * `python flow.py` and read like the flow file; steps and env decorators are inherited in Python's
 * method resolution order, as Metaflow collects them.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ExitCode, InputError } from '@prebuilt/core';
import { flowEnvs } from './flow-envs.js';
import { READ_FLOW_SCRIPT as READ_FLOW_SCRIPT_PATH, readFlow } from './read-flow.js';

const root = mkdtempSync(join(tmpdir(), 'prebuilt-readflow-modules-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const python = execFileSync('python3', ['-c', 'import sys; print(sys.executable)'], { encoding: 'utf8' }).trim();

let counter = 0;
/** Writes `files` (path → lines) into a fresh project folder; returns it. */
function project(files: Record<string, string[]>): string {
  const dir = join(root, `p${++counter}`);
  for (const [path, lines] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), `${lines.join('\n')}\n`);
  }
  return dir;
}
async function readError(cwd: string, file: string): Promise<InputError> {
  const error = await readFlow(file, { cwd, python }).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(InputError);
  expect((error as InputError).exitCode).toBe(ExitCode.usage);
  return error as InputError;
}

const TEAM_BASE = [
  'import json',
  'from metaflow import FlowSpec, conda_base, step',
  'PKGS = {"pandas": "2.1.4"}',
  '@conda_base(python="3.11", packages=PKGS)',
  'class TeamFlow(FlowSpec):',
  '    @step',
  '    def start(self):',
  '        import numpy',
  '        self.next(self.train)',
  '    @step',
  '    def end(self):',
  '        pass',
];
const TRAIN = (importLine: string, base: string) => [
  importLine,
  'from metaflow import conda, step',
  `class Train(${base}):`,
  '    @conda(packages={"scikit-learn": "1.4.0"})',
  '    @step',
  '    def train(self):',
  '        self.next(self.end)',
  'if __name__ == "__main__":',
  '    Train()',
];

describe.concurrent('readFlow: base flows from the flow\'s own modules', () => {
  it('follows `from base import TeamFlow` to base.py beside the flow: its @conda_base, its steps (first, in source order) and its imports, each naming its file', async () => {
    const dir = project({ 'flows/base.py': TEAM_BASE, 'flows/train.py': TRAIN('from base import TeamFlow', 'TeamFlow') });
    const flow = await readFlow(join('flows', 'train.py'), { cwd: dir, python });
    expect(flow.flow).toBe('Train');
    expect(flow.condaBase).toMatchObject({ name: 'conda_base', line: 4, file: join('flows', 'base.py'), python: '3.11', packages: { pandas: '2.1.4' } });
    expect(flow.steps.map((s) => [s.name, s.line, s.file])).toEqual([
      ['start', 7, join('flows', 'base.py')],
      ['end', 11, join('flows', 'base.py')],
      ['train', 6, undefined],
    ]);
    expect(flow.steps[2]!.conda).toMatchObject({ packages: { 'scikit-learn': '1.4.0' }, line: 4 });
    expect(flow.steps[2]!.conda!.file).toBeUndefined();
    // The step's imports name their file; the module's imports run when the flow file loads.
    expect(flow.steps[0]!.imports).toEqual([{ module: 'numpy', line: 8, file: join('flows', 'base.py'), optional: false }]);
    expect(flow.imports.map((i) => [i.module, i.line, i.file, i.local])).toEqual([
      ['base', 1, undefined, true],
      ['metaflow', 2, undefined, undefined],
      ['json', 1, join('flows', 'base.py'), undefined],
      ['metaflow', 2, join('flows', 'base.py'), undefined],
    ]);
    const envs = await flowEnvs(join('flows', 'train.py'), { cwd: dir, python, env: { METAFLOW_PREBUILT_DEFAULT_PYTHON: '3.11.9' } });
    expect(envs.steps.map((s) => [s.step, s.python, s.conda])).toEqual([
      ['start', '3.11', { pandas: '2.1.4' }],
      ['end', '3.11', { pandas: '2.1.4' }],
      ['train', '3.11', { pandas: '2.1.4', 'scikit-learn': '1.4.0' }],
    ]);
  });

  it('follows packages as Python imports them: a re-export in __init__.py, `import a.b` + `a.b.Base`, `import a.b as x`, relative imports inside the package, a namespace package', async () => {
    const dir = project({
      'teamlib/__init__.py': ['from .flows import TeamFlow'],
      'teamlib/flows.py': ['from metaflow import FlowSpec', 'from .steps import Shared', 'class TeamFlow(Shared, FlowSpec):', '    pass'],
      'teamlib/steps.py': ['from metaflow import pypi_base, step', 'from . import consts', 'class Shared:', '    @step', '    def start(self):', '        self.next(self.train)', '    @step', '    def end(self):', '        pass'],
      'teamlib/consts.py': ['V = 1'],
      'nspkg/deep/base.py': TEAM_BASE,
      'a.py': TRAIN('from teamlib import TeamFlow', 'TeamFlow'),
      'b.py': TRAIN('import teamlib.flows', 'teamlib.flows.TeamFlow'),
      'c.py': TRAIN('import teamlib.flows as tf', 'tf.TeamFlow'),
      'd.py': TRAIN('from nspkg.deep.base import TeamFlow', 'TeamFlow'),
      'e.py': TRAIN('from teamlib.flows import *', 'TeamFlow'),
    });
    for (const file of ['a.py', 'b.py', 'c.py', 'e.py']) {
      const flow = await readFlow(file, { cwd: dir, python });
      expect(flow.steps.map((s) => [s.name, s.file]), file).toEqual([
        ['start', join('teamlib', 'steps.py')],
        ['end', join('teamlib', 'steps.py')],
        ['train', undefined],
      ]);
    }
    const namespaced = await readFlow('d.py', { cwd: dir, python });
    expect(namespaced.condaBase?.file).toBe(join('nspkg', 'deep', 'base.py'));
    expect(namespaced.steps.map((s) => s.name)).toEqual(['start', 'end', 'train']);
  });

  it("takes steps and flow decorators in Python's method resolution order across several bases and modules, as Metaflow does", async () => {
    const dir = project({
      'left.py': [
        'from metaflow import FlowSpec, conda, pypi_base, step',
        '@pypi_base(packages={"left": "1"})',
        'class Left(FlowSpec):',
        '    @step',
        '    def start(self):',
        '        self.next(self.end)',
        '    @conda(packages={"from-left": "1"})',
        '    @step',
        '    def end(self):',
        '        pass',
      ],
      'right.py': [
        'from metaflow import FlowSpec, conda, step',
        'class Right(FlowSpec):',
        '    @conda(packages={"from-right": "1"})',
        '    @step',
        '    def end(self):',
        '        pass',
        '    @step',
        '    def extra(self):',
        '        pass',
        '    def start(self):',
        '        pass',
      ],
      'both.py': ['from left import Left', 'from right import Right', 'class Both(Left, Right):', '    pass'],
      'swapped.py': ['from left import Left', 'from right import Right', 'class Swapped(Right, Left):', '    pass'],
    });
    // Both(Left, Right): MRO Both, Left, Right, FlowSpec — Left's start and end, Right's extra.
    const both = await readFlow('both.py', { cwd: dir, python });
    expect(both.pypiBase).toMatchObject({ file: 'left.py', packages: { left: '1' } });
    expect(both.steps.map((s) => [s.name, s.file, s.conda?.packages])).toEqual([
      ['end', 'left.py', { 'from-left': '1' }],
      ['extra', 'right.py', undefined],
      ['start', 'left.py', undefined],
    ]);
    // Swapped(Right, Left): Right's plain `start` method hides Left's step, as getattr finds it first.
    const swapped = await readFlow('swapped.py', { cwd: dir, python });
    expect(swapped.steps.map((s) => [s.name, s.file, s.conda?.packages])).toEqual([
      ['end', 'right.py', { 'from-right': '1' }],
      ['extra', 'right.py', undefined],
    ]);
  });

  it('refuses @conda_base applied in two base flows (Metaflow allows it once), naming both files', async () => {
    const dir = project({
      'base.py': TEAM_BASE,
      'flow.py': ['from base import TeamFlow', 'from metaflow import conda_base', '@conda_base(python="3.12")', 'class Train(TeamFlow):', '    pass'],
    });
    const error = await readError(dir, 'flow.py');
    expect(error.message).toBe('flow.py:3: @conda_base is applied more than once to the flow (base.py line 4 and line 3); Metaflow allows it once');
  });

  it('reports what a base module cannot give at its own file and line, with the chain of imports that reached it', async () => {
    const dir = project({
      'pkg/__init__.py': ['from .base import TeamFlow'],
      'pkg/base.py': ['from metaflow import FlowSpec, conda_base, step', 'import random', '@conda_base(packages={"x": str(random.random())})', 'class TeamFlow(FlowSpec):', '    @step', '    def start(self): pass'],
      'flow.py': ['from pkg import TeamFlow', 'class Train(TeamFlow):', '    pass'],
    });
    const error = await readError(dir, 'flow.py');
    expect(error.message).toMatch(
      new RegExp(`^${join('pkg', 'base.py').replace('.', '\\.')}:3: the 'packages' argument of @conda_base on the flow class cannot be read without running the flow: .* \\(module pkg\\.base, imported at flow\\.py:1 → ${join('pkg', '__init__.py').replace('.', '\\.')}:1\\)$`),
    );
    expect(error.file).toBe(join('pkg', 'base.py'));
    expect(error.line).toBe(3);
    // A syntax error in the module: its file and line.
    const broken = project({ 'base.py': ['class TeamFlow(:'], 'flow.py': ['from base import TeamFlow', 'class F(TeamFlow):', '    pass'] });
    expect((await readError(broken, 'flow.py')).message).toMatch(/^base\.py:1: module base \(base\.py\): Python syntax error: .* \(module base, imported at flow\.py:1\)$/);
    // Reached again by the flow class after another class of the file met it: still its syntax error.
    writeFileSync(join(broken, 'twice.py'), ['from metaflow import FlowSpec', 'from base import TeamFlow', 'class Helper(TeamFlow):', '    pass', 'class F(TeamFlow, FlowSpec):', '    pass', 'if __name__ == "__main__":', '    F()'].join('\n'));
    expect((await readError(broken, 'twice.py')).message).toMatch(/^base\.py:1: module base \(base\.py\): Python syntax error: .* \(module base, imported at twice\.py:2\)$/);
  });

  it('the env merge names the base module when its decorator is what is wrong', async () => {
    const dir = project({
      'base.py': ['from metaflow import FlowSpec, conda_base, step', '@conda_base(python="3.13t")', 'class TeamFlow(FlowSpec):', '    @step', '    def start(self): pass'],
      'flow.py': ['from base import TeamFlow', 'class Train(TeamFlow):', '    pass'],
    });
    const error = await flowEnvs('flow.py', { cwd: dir, python }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InputError);
    expect((error as InputError).message).toBe("base.py:2: step 'start' asks for the free-threaded python '3.13t', which prebuilt does not build.");
  });

  it('refuses a relative import in the flow file (Metaflow runs it as a script) and one above the top-level package', async () => {
    const dir = project({
      'base.py': TEAM_BASE,
      'flow.py': TRAIN('from .base import TeamFlow', 'TeamFlow'),
      'pkg/__init__.py': [],
      'pkg/base.py': ['from ..base import TeamFlow as Base', 'class PkgFlow(Base):', '    pass'],
      'above.py': TRAIN('from pkg.base import PkgFlow', 'PkgFlow'),
    });
    const error = await readError(dir, 'flow.py');
    expect(error.message).toBe(
      "flow.py:1: 'from .base import ...' is a relative import: Metaflow runs the flow file as a script (python flow.py), where Python refuses it (ImportError: attempted relative import with no known parent package)",
    );
    expect(error.hint).toMatch(/`from base import TeamFlow`/);
    const above = await readError(dir, 'above.py');
    expect(above.message).toMatch(/^pkg\/base\.py:1: 'from \.\.base import \.\.\.' goes above the top-level package pkg .* \(module pkg\.base, imported at above\.py:1\)$/);
  });

  it('refuses a module that is a symlink out of the flow\'s directory (the code package would not carry it), an import cycle, and a base the module does not define', async () => {
    const outside = project({ 'base.py': TEAM_BASE });
    const dir = project({
      'flow.py': TRAIN('from base import TeamFlow', 'TeamFlow'),
      'a.py': ['from b import B', 'class A(B):', '    pass'],
      'b.py': ['from metaflow import FlowSpec', 'from a import A', 'class B(A):', '    pass'],
      'cyclic.py': TRAIN('from a import A', 'A'),
      'self_base.py': ['from metaflow import FlowSpec', 'class Base(FlowSpec):', '    pass'],
      'to_flow.py': ['from back import Base', 'class F(Base):', '    pass', 'if __name__ == "__main__":', '    F()'],
      'back.py': ['from to_flow import F', 'class Base(F):', '    pass'],
      'missing.py': TRAIN('from self_base import Nope', 'Nope'),
    });
    symlinkSync(join(outside, 'base.py'), join(dir, 'base.py'));
    const error = await readError(dir, 'flow.py');
    expect(error.message).toMatch(/^flow\.py:1: module base \(base\.py\) is a symlink to .*base\.py, outside the flow's directory .*: Metaflow's code package carries only the files under the flow's directory/);
    expect(error.hint).toMatch(/not symlinks out of it/);
    expect((await readError(dir, 'cyclic.py')).message).toMatch(/^b\.py:2: the imports of the flow's base classes form a cycle \(a\.py -> b\.py -> a\.py\): Python stops there/);
    expect((await readError(dir, 'to_flow.py')).message).toMatch(/^back\.py:1: the imports of the flow's base classes form a cycle \(to_flow\.py -> back\.py -> to_flow\.py\)/);
    expect((await readError(dir, 'missing.py')).message).toBe('missing.py:1: module self_base (self_base.py) defines no class Nope (ImportError: cannot import name)');
  });

  it('bounds what it reads: the chain of imports, the number of modules, the size of a file', async () => {
    const chain: Record<string, string[]> = { 'm0.py': ['from metaflow import FlowSpec, step', 'class C0(FlowSpec):', '    @step', '    def start(self): pass'] };
    for (let i = 1; i <= 20; i++) chain[`m${i}.py`] = [`from m${i - 1} import C${i - 1}`, `class C${i}(C${i - 1}):`, '    pass'];
    chain['flow.py'] = ['from m20 import C20', 'class F(C20):', '    pass'];
    chain['short.py'] = ['from m10 import C10', 'class F(C10):', '    pass'];
    const dir = project(chain);
    expect((await readFlow('short.py', { cwd: dir, python })).steps.map((s) => s.file)).toEqual(['m0.py']);
    expect((await readError(dir, 'flow.py')).message).toMatch(/the chain of imports to the flow's base classes passes through more than 16 modules/);
    // 33 modules of mixins: one more than it reads.
    const mixins: Record<string, string[]> = {};
    for (let i = 0; i < 33; i++) mixins[`mix${i}.py`] = [`class M${i}:`, '    pass'];
    const names = Object.keys(mixins).map((_, i) => `M${i}`);
    mixins['flow.py'] = ['from metaflow import FlowSpec, step', ...names.map((name, i) => `from mix${i} import ${name}`), `class F(${names.join(', ')}, FlowSpec):`, '    @step', '    def start(self): pass'];
    mixins['fewer.py'] = mixins['flow.py'].map((line) => line.replace(', M32,', ',')).filter((line) => !line.includes('mix32'));
    const many = project(mixins);
    expect((await readFlow('fewer.py', { cwd: many, python })).steps.map((s) => s.name)).toEqual(['start']);
    expect((await readError(many, 'flow.py')).message).toBe("flow.py:34: reading the flow's base classes needs more than 32 modules (at mix32)");
    const big = project({ 'base.py': [...TEAM_BASE, `X = "${'x'.repeat(4 << 20)}"`], 'flow.py': TRAIN('from base import TeamFlow', 'TeamFlow') });
    expect((await readError(big, 'flow.py')).message).toMatch(/^base\.py: module base \(base\.py\) is larger than 4194304 bytes \(module base, imported at flow\.py:1\)$/);
  });

  it('keeps a base from an installed library (not under the flow\'s directory) refused, naming the module and where it is imported', async () => {
    const dir = project({
      'base.py': ['from teamflows.core import TeamFlow', 'class Mid(TeamFlow):', '    pass'],
      'flow.py': TRAIN('from base import Mid', 'Mid'),
    });
    const error = await readError(dir, 'flow.py');
    expect(error.message).toBe(
      'flow.py:9: class Train, run under `if __name__ == "__main__"`, derives from TeamFlow, imported from teamflows.core (in base.py, line 1), which is not a module under the flow\'s directory: prebuilt reads base flows from the flow\'s own modules only, so it cannot see the steps and decorators of a base flow defined in an installed library',
    );
  });
});

/** A flow whose `start` step has `@conda(packages=<packages>, python=<python>)`, after `imports`. */
const CONSTANT_FLOW = (imports: string[], packages: string, python = '"3.11"') => [
  'from metaflow import FlowSpec, conda, step',
  ...imports,
  'class F(FlowSpec):',
  `    @conda(packages=${packages}, python=${python})`,
  '    @step',
  '    def start(self):',
  '        pass',
];
const SETTINGS = ['PYTHON = "3.11"', 'TORCH = {"torch": "2.3.1", "numpy": "1.26.4"}', 'BASE = {"pandas": "2.2.2"}'];

describe.concurrent("readFlow: decorator values from the flow's own modules", () => {
  it('reads constants through `from m import X [as Y]`, `import m [as n]` + `m.X`, in the flow file and in a base flow\'s module', async () => {
    const dir = project({
      'settings.py': SETTINGS,
      'flow.py': CONSTANT_FLOW(['from settings import PYTHON, TORCH as T', 'import settings as cfg', 'import settings'], '{**T, **cfg.BASE, "x": settings.PYTHON}', 'PYTHON'),
      'base.py': ['from metaflow import FlowSpec, conda_base, step', 'from settings import BASE', '@conda_base(packages=BASE)', 'class TeamFlow(FlowSpec):', '    @step', '    def start(self): pass'],
      'child.py': TRAIN('from base import TeamFlow', 'TeamFlow'),
    });
    const flow = await readFlow('flow.py', { cwd: dir, python });
    expect(flow.steps[0]!.conda).toMatchObject({ python: '3.11', packages: { torch: '2.3.1', numpy: '1.26.4', pandas: '2.2.2', x: '3.11' } });
    // settings.py runs when the flow file loads: its imports are the flow's (none here), and it is local.
    expect(flow.imports.filter((i) => i.module === 'settings').map((i) => i.local)).toEqual([true, true, true]);
    const child = await readFlow('child.py', { cwd: dir, python });
    expect(child.condaBase).toMatchObject({ file: 'base.py', packages: { pandas: '2.2.2' } });
  });

  it("follows packages as Python does: __init__ re-exports (`from .pins import *`, `from .versions import X as Y`), relative imports, `import a.b` + `a.b.X`, a submodule imported from a package that is still running", async () => {
    const dir = project({
      'conf/__init__.py': ['from .pins import *', 'from .versions import PANDAS as PANDAS_VERSION'],
      'conf/versions.py': ['PANDAS = "2.2.2"', 'NUMPY = "1.26.4"'],
      // `from . import versions` runs while conf/__init__.py is still at its line 1: Python imports the submodule.
      'conf/pins.py': ['from . import versions', 'SCIENCE = {"numpy": versions.NUMPY}', 'from .late import LATE'],
      // A circular import Python accepts: pins binds SCIENCE before it imports late.
      'conf/late.py': ['from .pins import SCIENCE', 'LATE = {**SCIENCE, "late": "1"}'],
      'a.py': CONSTANT_FLOW(['from conf import SCIENCE, PANDAS_VERSION'], '{**SCIENCE, "pandas": PANDAS_VERSION}'),
      'b.py': CONSTANT_FLOW(['import conf.pins'], '{**conf.pins.SCIENCE, "pandas": conf.versions.PANDAS}'),
      'c.py': CONSTANT_FLOW(['from conf import *'], '{**SCIENCE, "pandas": PANDAS_VERSION}'),
      'd.py': CONSTANT_FLOW(['from conf.late import LATE', 'from conf import versions as v'], '{**LATE, "pandas": v.PANDAS}'),
    });
    const expected = { numpy: '1.26.4', pandas: '2.2.2' };
    for (const file of ['a.py', 'b.py', 'c.py']) expect((await readFlow(file, { cwd: dir, python })).steps[0]!.conda?.packages, file).toEqual(expected);
    expect((await readFlow('d.py', { cwd: dir, python })).steps[0]!.conda?.packages).toEqual({ ...expected, late: '1' });
    // What Python computes for the same files.
    const printed = execFileSync(python, ['-c', 'import conf.late, conf; print(conf.late.LATE, conf.SCIENCE, conf.PANDAS_VERSION)'], { cwd: dir, encoding: 'utf8' });
    expect(printed.trim()).toBe("{'numpy': '1.26.4', 'late': '1'} {'numpy': '1.26.4'} 2.2.2");
  });

  it('refuses a value bound by code, bound twice, or imported from an installed or standard module, at the decorator, naming the module file, its line and the import chain, and what to write instead', async () => {
    const dir = project({
      'pkg/__init__.py': ['from .settings import *'],
      'pkg/settings.py': [
        'import sys',
        'from numpy import __version__ as NP',
        'LOOPED = {}',
        'for name in ["a"]:',
        '    LOOPED[name] = "1"',
        'COUNT = 1',
        'COUNT += 1',
        'PY = sys.version',
        'IMPORTED = {"numpy": NP}',
        'CALLED = dict(zip(["a"], ["1"]))',
      ],
      'flow.py': CONSTANT_FLOW(['import pkg'], 'pkg.LOOPED'),
    });
    const cases: [string, string, RegExp][] = [
      ['pkg.LOOPED', '"3.11"', /'LOOPED' is bound or changed more than once in pkg\/settings\.py \(lines 3, 5\), not only by `LOOPED = value`: .*give each value its own name \(`ALL = \{\*\*BASE, "x": "1"\}`\)$/],
      ['{"n": str(pkg.COUNT)}', '"3.11"', /'COUNT' is bound or changed more than once in pkg\/settings\.py \(lines 6, 7\)/],
      ['{}', 'pkg.PY', /: pkg\/settings\.py line 8: 'sys' is imported from sys \(line 1\), which is not one of the flow's own modules .*write the value in the flow file or in a module beside it$/],
      ['pkg.IMPORTED', '"3.11"', /pkg\/settings\.py line 9: 'NP' is imported from numpy \(line 2\), which is not one of the flow's own modules/],
      ['pkg.CALLED', '"3.11"', /pkg\/settings\.py line 10: 'dict\(zip\(\['a'\], \['1'\]\)\)' is a call, which cannot be evaluated without running the flow$/],
      ['pkg.MISSING', '"3.11"', /module pkg \(pkg\/__init__\.py\) defines no 'MISSING' \(ImportError: cannot import name\)$/],
      ['pkg.settings', '"3.11"', /'pkg\.settings' is the module pkg\.settings \(pkg\/settings\.py\), not a value: name one of its constants \(pkg\.settings\.NAME\)$/],
    ];
    for (const [packages, py, message] of cases) {
      writeFileSync(join(dir, 'flow.py'), `${CONSTANT_FLOW(['import pkg'], packages, py).join('\n')}\n`);
      const error = await readError(dir, 'flow.py');
      expect(error.message, packages).toMatch(/^flow\.py:4: the '(packages|python)' argument of @conda on step 'start' cannot be read without running the flow: /);
      expect(error.message, packages).toMatch(message);
      expect(error.hint, packages).toMatch(/constants imported from the flow's own modules/);
    }
    // Through a from-import, the message walks the chain: flow.py's import, then the module's line.
    writeFileSync(join(dir, 'flow.py'), `${CONSTANT_FLOW(['from pkg.settings import PY'], '{}', 'PY').join('\n')}\n`);
    expect((await readError(dir, 'flow.py')).message).toMatch(/: 'PY' \(imported from pkg\.settings at line 2\) → pkg\/settings\.py line 8: 'sys' is imported from sys/);
  });

  it('refuses cycles of values through imports, a value imported back from the flow file, and a module that is a symlink out of the flow\'s directory; bounds the chain of modules', async () => {
    const outside = project({ 'settings.py': SETTINGS });
    const chain: Record<string, string[]> = { 'v0.py': ['V0 = {"a": "1"}'] };
    for (let i = 1; i <= 20; i++) chain[`v${i}.py`] = [`from v${i - 1} import V${i - 1}`, `V${i} = V${i - 1}`];
    const dir = project({
      ...chain,
      'c1.py': ['from c2 import B', 'A = {**B}'],
      'c2.py': ['from c1 import A', 'B = {**A}'],
      'cyclic.py': CONSTANT_FLOW(['from c1 import A'], 'A'),
      'back.py': ['from flow_back import LOCAL', 'BACK = LOCAL'],
      'flow_back.py': CONSTANT_FLOW(['from back import BACK', 'LOCAL = {}'], 'BACK'),
      'linked.py': CONSTANT_FLOW(['from settings import TORCH'], 'TORCH'),
      'deep.py': CONSTANT_FLOW(['from v20 import V20'], 'V20'),
      'shallow.py': CONSTANT_FLOW(['from v10 import V10'], 'V10'),
    });
    symlinkSync(join(outside, 'settings.py'), join(dir, 'settings.py'));
    expect((await readError(dir, 'cyclic.py')).message).toBe(
      "c2.py:1: the values the flow's decorators read form a cycle through their imports (A (c1.py) -> B (c2.py) -> A (c1.py)): Python stops there with an ImportError (a partially initialized module) (module c2, imported at cyclic.py:2 → c1.py:1)",
    );
    const back = await readError(dir, 'flow_back.py');
    expect(back.message).toMatch(/^back\.py:1: module flow_back is the flow file itself \(flow_back\.py\): Python would run it a second time under that name/);
    expect(back.hint).toMatch(/Break the cycle/);
    expect((await readError(dir, 'linked.py')).message).toMatch(/^linked\.py:2: module settings \(settings\.py\) is a symlink to .*settings\.py, outside the flow's directory/);
    expect((await readFlow('shallow.py', { cwd: dir, python })).steps[0]!.conda?.packages).toEqual({ a: '1' });
    expect((await readError(dir, 'deep.py')).message).toMatch(/the chain of imports to the values the flow's decorators read passes through more than 16 modules/);
  });
});

describe("the reader's file reads", () => {
  it('reads a regular file only, checked on the open descriptor: a FIFO (swapped in after the module was found) or a device is not read, and does not hang', () => {
    const dir = join(root, 'reads');
    mkdirSync(dir);
    execFileSync('mkfifo', [join(dir, 'base.py')]);
    writeFileSync(join(dir, 'mixins.py'), 'X = 1\n');
    const script = READ_FLOW_SCRIPT_PATH;
    const probe =
      'import importlib.util, json, sys\n' +
      `spec = importlib.util.spec_from_file_location("read_flow", ${JSON.stringify(script)})\n` +
      'm = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n' +
      'r = lambda p: None if (b := m.read_regular_file(p, 64)) is None else b.decode()\n' +
      `print(json.dumps([r(${JSON.stringify(join(dir, 'base.py'))}), r("/dev/zero"), r(${JSON.stringify(join(dir, 'mixins.py'))})]))\n`;
    const out = execFileSync(python, ['-S', '-c', probe], { encoding: 'utf8', timeout: 10_000 });
    expect(JSON.parse(out)).toEqual([null, null, 'X = 1\n']);
  });
});
