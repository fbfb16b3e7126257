import { describe, expect, it } from 'vitest';
import { ConfigError } from './errors.js';
import { isPruned, pruneSetting, selectPrunePresets, type PrunePreset } from './prune.js';

const SP = 'lib/python3.11/site-packages';

describe('isPruned', () => {
  it.each<[string, PrunePreset, boolean]>([
    [`${SP}/sklearn/tests`, 'tests', true],
    [`${SP}/sklearn/tests/test_base.py`, 'tests', true],
    [`${SP}/scipy/sparse/linalg/tests/__pycache__/test_x.cpython-311.pyc`, 'tests', true],
    [`${SP}/pandas/core/test/x.py`, 'tests', true],
    [`${SP}/tests/__init__.py`, 'tests', true],
    ['lib/python3.12/test/test_os.py', 'tests', true],
    ['lib/python3.11/test', 'tests', true],
    ['lib/python3.11/unittest/test/x.py', 'tests', true],
    ['lib/python3.11/unittest/test', 'tests', true],
    ['lib/python3.11/ctypes/test/test_bytes.py', 'tests', true],
    ['lib/python3.11/lib2to3/tests/data/x.py', 'tests', true],
    ['lib/python3.11/sqlite3/test/__pycache__/dbapi.cpython-311.pyc', 'tests', true],
    ['lib/python3.11/tkinter/test/test_ttk/x.py', 'tests', true],
    ['lib/python3.11/distutils/tests/test_core.py', 'tests', true],
    ['lib/python3.11/idlelib/idle_test/test_run.py', 'tests', true],
    [`${SP}/test/x.py`, 'tests', true],
    ['lib/python3.11/unittest/case.py', 'tests', false],
    ['lib/python3.11/idlelib/run.py', 'tests', false],
    ['lib/python3.11/idle_test/x.py', 'tests', false],
    ['lib/python3.11/test.py', 'tests', false],
    [`${SP}/pkg/test.py`, 'tests', false],
    [`${SP}/pytest/__init__.py`, 'tests', false],
    [`${SP}/_pytest/python.py`, 'tests', false],
    [`${SP}/numpy/_core/tests_helpers/x.py`, 'tests', false],
    ['lib/python3.11', 'tests', false],
    ['lib/test/x.py', 'tests', false],
    ['bin/test', 'tests', false],
    [`${SP}/numpy/testing/__init__.py`, 'tests', false],
    [`${SP}/sympy/testing/runtests.py`, 'tests', false],
    [`${SP}/pkg/test_utils.py`, 'tests', false],
    [`${SP}/pkg/tests.py`, 'tests', false],
    [`${SP}/pkg/testsuite/x.py`, 'tests', false],
    ['lib/python3.11/testing/x.py', 'tests', false],
    ['share/doc/pkg/tests/x', 'tests', false],
    ['lib/libz.a', 'static-libs', true],
    ['lib/python3.11/config-3.11-x86_64-linux-gnu/libpython3.11.a', 'static-libs', true],
    ['lib/libz.so', 'static-libs', false],
    ['lib/.a', 'static-libs', false],
    ['lib/libz.a.txt', 'static-libs', false],
    ['include', 'headers', true],
    ['include/python3.11/Python.h', 'headers', true],
    ['lib/python3.11/site-packages/numpy/core/include/numpy/ndarraytypes.h', 'headers', false],
    ['includes/x.h', 'headers', false],
  ])('%s with %s: %s', (rel, preset, pruned) => {
    expect(isPruned(rel, [preset])).toBe(pruned);
  });

  it('prunes nothing without presets, and any preset that matches with several', () => {
    expect(isPruned('include/x.h', [])).toBe(false);
    expect(isPruned('include/x.h', ['tests', 'headers'])).toBe(true);
  });
});

describe('selectPrunePresets', () => {
  it('reads METAFLOW_PREBUILT_PRUNE: sorted, deduplicated, case and spaces ignored; empty or unset is none', () => {
    expect(selectPrunePresets({ env: { METAFLOW_PREBUILT_PRUNE: ' tests, Headers ,tests,static-libs,' } })).toEqual(['headers', 'static-libs', 'tests']);
    expect(selectPrunePresets({ env: { METAFLOW_PREBUILT_PRUNE: '' } })).toEqual([]);
    expect(selectPrunePresets({ env: {} })).toEqual([]);
  });

  it('an explicit value (--prune) wins over the variable, even empty', () => {
    expect(selectPrunePresets({ value: 'headers', env: { METAFLOW_PREBUILT_PRUNE: 'tests' } })).toEqual(['headers']);
    expect(selectPrunePresets({ value: '', env: { METAFLOW_PREBUILT_PRUNE: 'tests' } })).toEqual([]);
  });

  it('refuses an unknown preset, naming it, where it came from and the valid ones', async () => {
    const error = (await Promise.resolve()
      .then(() => selectPrunePresets({ env: { METAFLOW_PREBUILT_PRUNE: 'tests,testing,docs' } }))
      .catch((e: unknown) => e)) as ConfigError;
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.exitCode).toBe(2);
    expect(error.setting).toBe('METAFLOW_PREBUILT_PRUNE');
    expect(error.message).toBe("METAFLOW_PREBUILT_PRUNE names an unknown prune preset: 'testing', 'docs'.");
    expect(error.hint).toContain('tests, static-libs, headers');
    expect(() => selectPrunePresets({ value: 'all' })).toThrow(/--prune names an unknown prune preset: 'all'\.$/);
    // A typo names the preset it most likely means.
    expect(() => selectPrunePresets({ value: 'tset,header' })).toThrow("--prune names an unknown prune preset: 'tset' (did you mean tests?), 'header' (did you mean headers?).");
  });

  it('names where the presets come from: --prune for an explicit value (even empty), else the variable', () => {
    expect(pruneSetting({ value: 'tests' })).toBe('--prune');
    expect(pruneSetting({ value: '' })).toBe('--prune');
    expect(pruneSetting({})).toBe('METAFLOW_PREBUILT_PRUNE');
  });
});
