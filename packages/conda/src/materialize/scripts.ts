/** Linux's limit for a `#!` line (including `#!`), in bytes. */
const SHEBANG_LIMIT = 127;

/**
 * The shebang for a script run by `interpreter`. When the path is too long for the kernel (or has
 * spaces), a `/bin/sh` trampoline re-executes the file with the interpreter, as pip and conda do.
 */
export function shebang(interpreter: string): string {
  const line = `#!${interpreter}`;
  if (Buffer.byteLength(line) <= SHEBANG_LIMIT && !/\s/.test(interpreter)) return `${line}\n`;
  return `#!/bin/sh\n'''exec' "${interpreter}" "$0" "$@"\n' '''\n`;
}

export interface EntryPoint {
  name: string;
  module: string;
  /** Attribute path inside the module, e.g. `main` or `cli.run`. */
  attribute: string;
}

/** Parses `name = module:attr.sub [extra]` (the form of entry_points.txt and conda's link.json). */
export function parseEntryPoint(text: string): EntryPoint | undefined {
  const match = /^\s*([^=\s][^=]*?)\s*=\s*([\w.]+)\s*(?::\s*([\w.]+))?\s*(?:\[[^\]]*\])?\s*$/.exec(text);
  if (!match) return undefined;
  const [, name, module, attribute] = match;
  if (!name || !module || !attribute) return undefined;
  return { name, module, attribute };
}

/** A console script that imports and calls the entry point, like the ones pip and conda write. */
export function entryPointScript(entry: EntryPoint, interpreter: string): string {
  const [head, ...rest] = entry.attribute.split('.');
  const call = [head, ...rest].join('.');
  return (
    shebang(interpreter) +
    '# -*- coding: utf-8 -*-\n' +
    'import re\n' +
    'import sys\n' +
    `from ${entry.module} import ${head}\n` +
    "if __name__ == '__main__':\n" +
    "    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])\n" +
    `    sys.exit(${call}())\n`
  );
}

/** Parses entry_points.txt (an INI file) into its sections. */
export function parseEntryPointsIni(text: string): Map<string, EntryPoint[]> {
  const sections = new Map<string, EntryPoint[]>();
  let current: EntryPoint[] | undefined;
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const section = /^\[(.+)\]$/.exec(line);
    if (section) {
      current = [];
      sections.set(section[1]!.trim(), current);
      continue;
    }
    const entry = parseEntryPoint(line);
    if (entry && current) current.push(entry);
  }
  return sections;
}
