import { describe, expect, it } from 'vitest';
import { InputError } from '@prebuilt/core';
import type { FlowFile, FlowImport } from './read-flow.js';
import { importCode, importStatement, taskImports } from './task-imports.js';

const imp = (module: string, fields: Partial<FlowImport> = {}): FlowImport => ({ module, line: 1, optional: false, ...fields });

const flow: Pick<FlowFile, 'file' | 'flow' | 'imports' | 'steps'> = {
  file: 'flow.py',
  flow: 'F',
  imports: [imp('metaflow', { names: ['FlowSpec', 'step'] }), imp('__future__', { names: ['annotations'] }), imp('os'), imp('yaml', { optional: true }), imp('metaflow.cards'), imp('mylib.util', { local: true })],
  steps: [
    { name: 'start', line: 5, imports: [imp('pandas'), imp('yaml'), imp('os'), imp('sklearn.model_selection', { names: ['KFold'] }), imp('metaflow_extensions.x'), imp('helpers', { names: ['greet'], local: true })] },
    { name: 'end', line: 9, imports: [] },
  ],
};

describe('taskImports', () => {
  it("the file's imports then the step's, each statement once, without metaflow, its extensions, __future__ and the flow's own modules; a required import wins over the same one in a try", () => {
    expect(taskImports(flow, 'start').map((i) => [importStatement(i), i.optional])).toEqual([
      ['import os', false],
      ['import yaml', false],
      ['import pandas', false],
      ['from sklearn.model_selection import KFold', false],
    ]);
    expect(taskImports(flow, 'end').map(importStatement)).toEqual(['import os', 'import yaml']);
  });

  it('an unknown step is an InputError naming the steps', () => {
    expect(() => taskImports(flow, 'train')).toThrow(InputError);
    expect(() => taskImports(flow, 'train')).toThrow(/no step 'train'/);
  });
});

describe('importCode', () => {
  it('required imports as written, optional ones guarded against ImportError, `pass` for none', () => {
    expect(importCode([imp('numpy.linalg'), imp('yaml', { optional: true }), imp('a', { names: ['*'] })])).toBe(
      'import numpy.linalg\ntry:\n    import yaml\nexcept ImportError:\n    pass\nfrom a import *\n',
    );
    expect(importCode([])).toBe('pass\n');
  });

  it('refuses a name that is not a dotted Python name (never builds code from it)', () => {
    expect(() => importCode([imp('os; import socket')])).toThrow(InputError);
    expect(() => importCode([imp('a', { names: ['b\nimport c'] })])).toThrow(InputError);
  });
});
