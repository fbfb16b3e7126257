/**
 * The keyword of each instruction of a Dockerfile, in order (`FROM`, `RUN`, …): the steps the
 * legacy builder numbers `Step N/M` (it counts every instruction, the `ARG`s before the first
 * `FROM` too). Comments, blank lines and the lines an instruction continues on (a line ending in
 * the escape character, `\` unless an `escape` parser directive says otherwise; comment lines
 * inside a continuation are dropped, as Docker drops them) are not instructions.
 */
export function dockerfileInstructions(dockerfile: string): string[] {
  const lines = dockerfile.split(/\r?\n/);
  let escape = '\\';
  let index = 0;
  // Parser directives: `# key=value` lines at the very top, before anything else.
  for (; index < lines.length; index++) {
    const directive = /^#\s*([A-Za-z]+)\s*=\s*(\S*)\s*$/.exec(lines[index]!);
    if (!directive) break;
    if (directive[1]!.toLowerCase() === 'escape' && (directive[2] === '`' || directive[2] === '\\')) escape = directive[2];
  }
  const instructions: string[] = [];
  let continued = false;
  for (; index < lines.length; index++) {
    const line = lines[index]!.trim();
    if (line.startsWith('#') || (line === '' && !continued)) continue;
    if (!continued) {
      const keyword = /^([A-Za-z]+)/.exec(line)?.[1];
      if (keyword !== undefined) instructions.push(keyword.toUpperCase());
    }
    continued = line.endsWith(escape);
  }
  return instructions;
}
