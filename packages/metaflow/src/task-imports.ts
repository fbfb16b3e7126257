/**
 * What a step's task imports, read statically from the flow file, as Python code that does the same
 * imports: what `prebuilt profile` runs in the step's image to record which files a task reads first.
 */
import { InputError } from '@prebuilt/core';
import type { FlowFile, FlowImport } from './read-flow.js';

/**
 * Modules a task does not take from the image: `metaflow` (and its submodules, extensions
 * included) comes from the task's code package, which Metaflow unpacks in the task's working
 * directory ahead of the env's site-packages — importing the image's copy, when the env has one,
 * would record files the task never reads; `__future__` is a compiler directive, valid only at
 * the top of a file.
 */
const NOT_FROM_IMAGE = /^(metaflow|metaflow_extensions|__future__)(\.|$)/;

/** A dotted Python name (`a.b.c`); the reader gives only names Python parsed, this guards the code built from them. */
const DOTTED_NAME = /^[\p{L}_][\p{L}\p{N}_]*(\.[\p{L}_][\p{L}\p{N}_]*)*$/u;

/**
 * The imports a step's task runs: the file's own (module level, class bodies) then the step's
 * body's, without those of {@link NOT_FROM_IMAGE} and the flow's own modules (files beside the
 * flow, which the task takes from its code package: `local`), each statement once (the first: a
 * required import wins over the same one guarded by a `try`). An unknown step is an InputError.
 */
export function taskImports(flow: Pick<FlowFile, 'file' | 'flow' | 'imports' | 'steps'>, step: string): FlowImport[] {
  const found = flow.steps.find((s) => s.name === step);
  if (!found) throw new InputError(`${flow.file}: flow ${flow.flow} has no step '${step}'.`, { hint: `Its steps: ${flow.steps.map((s) => s.name).join(', ')}.` });
  const out = new Map<string, FlowImport>();
  for (const entry of [...flow.imports, ...found.imports]) {
    if (NOT_FROM_IMAGE.test(entry.module) || entry.local) continue;
    const key = importStatement(entry);
    const seen = out.get(key);
    if (seen === undefined) out.set(key, entry);
    else if (seen.optional && !entry.optional) out.set(key, { ...seen, optional: false });
  }
  return [...out.values()];
}

/** `import a.b` or `from a import b, c` (`*` for a star import). */
export function importStatement(entry: FlowImport): string {
  const names = entry.names ?? [];
  if (!DOTTED_NAME.test(entry.module) || names.some((n) => n !== '*' && !DOTTED_NAME.test(n))) {
    throw new InputError(`'${entry.module}' (${entry.file === undefined ? 'line ' : `${entry.file}:`}${entry.line}) is not an import prebuilt can repeat.`, { hint: 'Use --code to give the code to run.' });
  }
  return entry.names ? `from ${entry.module} import ${names.join(', ')}` : `import ${entry.module}`;
}

/**
 * Python code doing the imports, in order: a required one as written, an optional one (guarded by
 * a `try` in the flow) in `try: … except ImportError: pass`, as the flow tolerates its absence.
 * No import: `pass` (the interpreter's own start is still recorded).
 */
export function importCode(imports: readonly FlowImport[]): string {
  if (imports.length === 0) return 'pass\n';
  return imports
    .map((entry) => (entry.optional ? `try:\n    ${importStatement(entry)}\nexcept ImportError:\n    pass\n` : `${importStatement(entry)}\n`))
    .join('');
}
