/**
 * The Dockerfile subset the oci build service executes itself: FROM (one stage), COPY (from the
 * context), ENV, LABEL, WORKDIR, USER, CMD, ENTRYPOINT. Anything that needs a container to run
 * (RUN) or that this service does not implement is reported by name and line, so the caller can
 * turn it into a clear failed build.
 */

export type Instruction =
  | { kind: 'from'; line: number; image: string }
  | { kind: 'copy'; line: number; sources: string[]; dest: string; text: string }
  | { kind: 'env' | 'label'; line: number; pairs: RawPair[]; text: string }
  | { kind: 'workdir'; line: number; path: string; text: string }
  | { kind: 'user'; line: number; user: string; text: string }
  | { kind: 'cmd' | 'entrypoint'; line: number; args: string[]; text: string };

export type ParseResult = { ok: true; instructions: Instruction[] } | { ok: false; line: number; instruction: string; reason: string };

export const SUPPORTED_INSTRUCTIONS = ['FROM', 'COPY', 'ENV', 'LABEL', 'WORKDIR', 'USER', 'CMD', 'ENTRYPOINT'] as const;

/** Reason text for an instruction that needs a real builder. */
function needsBuilder(keyword: string, line: number): ParseResult {
  return {
    ok: false,
    line,
    instruction: keyword,
    reason: `line ${line}: ${keyword} cannot be executed by the oci build service (it assembles images without running a container; it supports ${SUPPORTED_INSTRUCTIONS.join(', ')}). Use the docker build service (METAFLOW_PREBUILT_BUILD_SERVICE=docker) for this Dockerfile.`,
  };
}

/** Joins continuation lines; keeps the 1-based line number each logical line starts at. */
function logicalLines(text: string): { line: number; text: string }[] {
  const out: { line: number; text: string }[] = [];
  const raw = text.replace(/\r\n?/g, '\n').split('\n');
  let current: string | undefined;
  let start = 0;
  for (let i = 0; i < raw.length; i++) {
    const line = raw[i]!;
    const trimmed = line.trim();
    if (current === undefined && (trimmed === '' || trimmed.startsWith('#'))) continue;
    if (current !== undefined && trimmed.startsWith('#')) continue; // comment inside a continuation
    if (current === undefined) {
      current = '';
      start = i + 1;
    }
    if (/\\\s*$/.test(line)) {
      current += line.replace(/\\\s*$/, '');
      continue;
    }
    current += line;
    out.push({ line: start, text: current.trim() });
    current = undefined;
  }
  if (current !== undefined && current.trim() !== '') out.push({ line: start, text: current.trim() });
  return out;
}

/**
 * Splits `k=v k2="v 2"` words, honouring double quotes (with backslash escapes) and single quotes.
 * Returns the words with their quoting removed but `$` references still marked for substitution:
 * each word is a list of parts, literal (single-quoted or escaped) or expandable.
 */
export interface Part {
  text: string;
  expand: boolean;
}

function splitWords(text: string): Part[][] {
  const words: Part[][] = [];
  let word: Part[] | undefined;
  const push = (t: string, expand: boolean): void => {
    word ??= [];
    const last = word[word.length - 1];
    if (last && last.expand === expand) last.text += t;
    else word.push({ text: t, expand });
  };
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (/\s/.test(c)) {
      if (word) words.push(word);
      word = undefined;
      i++;
    } else if (c === '\\' && i + 1 < text.length) {
      push(text[i + 1]!, false);
      i += 2;
    } else if (c === '"') {
      i++;
      word ??= [];
      while (i < text.length && text[i] !== '"') {
        if (text[i] === '\\' && i + 1 < text.length && ['"', '\\', '$'].includes(text[i + 1]!)) {
          push(text[i + 1]!, false);
          i += 2;
        } else {
          push(text[i]!, true);
          i++;
        }
      }
      if (i >= text.length) throw new SyntaxError('unterminated double quote');
      i++;
    } else if (c === "'") {
      const end = text.indexOf("'", i + 1);
      if (end < 0) throw new SyntaxError('unterminated single quote');
      word ??= [];
      push(text.slice(i + 1, end), false);
      i = end + 1;
    } else {
      push(c, true);
      i++;
    }
  }
  if (word) words.push(word);
  return words;
}

/** Expands `$VAR`, `${VAR}`, `${VAR:-default}` and `${VAR:+alternative}` from `env`. */
export function expand(text: string, env: ReadonlyMap<string, string>): string {
  return text.replace(/\$(?:\{([A-Za-z_][A-Za-z0-9_]*)(?:(:[-+])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))/g, (_match, braced: string | undefined, op: string | undefined, word: string | undefined, bare: string | undefined) => {
    const name = (braced ?? bare)!;
    const value = env.get(name);
    if (op === ':-') return value ? value : expand(word ?? '', env);
    if (op === ':+') return value ? expand(word ?? '', env) : '';
    return value ?? '';
  });
}

/** Joins a word's parts, expanding the expandable ones. */
export function renderWord(word: Part[], env: ReadonlyMap<string, string>): string {
  return word.map((p) => (p.expand ? expand(p.text, env) : p.text)).join('');
}

function jsonArray(text: string): string[] | undefined {
  if (!text.startsWith('[')) return undefined;
  try {
    const value = JSON.parse(text) as unknown;
    if (Array.isArray(value) && value.every((v) => typeof v === 'string')) return value as string[];
  } catch {
    // not the JSON form
  }
  return undefined;
}

/** Key/value pairs of ENV and LABEL, still unexpanded: `[key word, value word]`. */
export type RawPair = [Part[], Part[]];

/**
 * Parses a Dockerfile into instructions. Values of ENV/LABEL/WORKDIR/USER/COPY are expanded later,
 * against the image's environment at that point (see `rawPairs` / `expandPairs`).
 */
export function parseDockerfile(text: string): ParseResult {
  const instructions: Instruction[] = [];
  let from = 0;
  const fail = (line: number, instruction: string, reason: string): ParseResult => ({ ok: false, line, instruction, reason: `line ${line}: ${reason}` });
  const first = text.replace(/\r\n?/g, '\n').split('\n');
  for (const raw of first) {
    const directive = /^#\s*([a-z]+)\s*=\s*(.*)$/i.exec(raw.trim());
    if (!directive) break;
    if (directive[1]!.toLowerCase() === 'escape' && directive[2]!.trim() !== '\\') {
      return fail(1, 'escape', `the parser directive 'escape=${directive[2]!.trim()}' is not supported by the oci build service; use the default escape character \\.`);
    }
  }
  for (const { line, text: logical } of logicalLines(text)) {
    const match = /^(\S+)\s*(.*)$/s.exec(logical)!;
    const keyword = match[1]!.toUpperCase();
    const rest = match[2]!.trim();
    try {
      switch (keyword) {
        case 'FROM': {
          from += 1;
          const words = rest.split(/\s+/);
          if (from > 1) return fail(line, 'FROM', 'multi-stage Dockerfiles (a second FROM) are not supported by the oci build service; use the docker build service (METAFLOW_PREBUILT_BUILD_SERVICE=docker).');
          if (words.some((w) => w.startsWith('--'))) return fail(line, 'FROM', `FROM options (${words.filter((w) => w.startsWith('--')).join(' ')}) are not supported by the oci build service; the build request's platform selects the base image's platform.`);
          if (words.length === 3 && words[1]!.toUpperCase() === 'AS') {
            instructions.push({ kind: 'from', line, image: words[0]! });
            break;
          }
          if (words.length !== 1 || words[0] === '') return fail(line, 'FROM', `FROM takes one image reference (got '${rest}').`);
          instructions.push({ kind: 'from', line, image: words[0]! });
          break;
        }
        case 'COPY': {
          const json = jsonArray(rest);
          const words = json ?? splitWords(rest).map((w) => w.map((p) => p.text).join(''));
          const flags = words.filter((w) => w.startsWith('--'));
          if (!json && flags.length > 0) return fail(line, 'COPY', `COPY options (${flags.join(' ')}) are not supported by the oci build service; copy from the build context without options, or use the docker build service.`);
          if (words.length < 2) return fail(line, 'COPY', 'COPY needs at least one source and a destination.');
          const sources = words.slice(0, -1);
          const glob = sources.find((s) => /[*?[]/.test(s));
          if (glob) return fail(line, 'COPY', `COPY source '${glob}' is a wildcard pattern, which the oci build service does not expand; name the files or directories.`);
          instructions.push({ kind: 'copy', line, sources, dest: words[words.length - 1]!, text: `COPY ${rest}` });
          break;
        }
        case 'ENV':
        case 'LABEL': {
          const kind = keyword === 'ENV' ? 'env' : 'label';
          instructions.push({ kind, line, pairs: rawPairs(keyword, rest), text: `${keyword} ${rest}` });
          break;
        }
        case 'WORKDIR':
          if (rest === '') return fail(line, 'WORKDIR', 'WORKDIR needs a path.');
          instructions.push({ kind: 'workdir', line, path: rest, text: `WORKDIR ${rest}` });
          break;
        case 'USER':
          if (rest === '') return fail(line, 'USER', 'USER needs a user name or id.');
          instructions.push({ kind: 'user', line, user: rest, text: `USER ${rest}` });
          break;
        case 'CMD':
        case 'ENTRYPOINT': {
          const args = jsonArray(rest) ?? ['/bin/sh', '-c', rest];
          instructions.push({ kind: keyword === 'CMD' ? 'cmd' : 'entrypoint', line, args, text: `${keyword} ${rest}` });
          break;
        }
        default:
          return needsBuilder(keyword, line);
      }
    } catch (error) {
      if (error instanceof SyntaxError) return fail(line, keyword, `${keyword}: ${error.message}.`);
      throw error;
    }
  }
  if (from === 0) return fail(1, 'FROM', 'the Dockerfile has no FROM instruction.');
  if (instructions[0]?.kind !== 'from') return fail(instructions[0]!.line, 'FROM', 'the first instruction must be FROM.');
  return { ok: true, instructions };
}

/** The unexpanded key/value words of an ENV or LABEL instruction. */
function rawPairs(keyword: string, rest: string): RawPair[] {
  const words = splitWords(rest);
  if (words.length === 0) throw new SyntaxError('it needs at least one key=value');
  const firstText = words[0]!.map((p) => p.text).join('');
  if (!firstText.includes('=')) {
    // Legacy form `ENV key value with spaces`.
    if (keyword !== 'ENV' || words.length < 2) throw new SyntaxError(`expected key=value, got '${rest}'`);
    const space = rest.search(/\s/);
    const valueWords = splitWords(rest.slice(space + 1).trim());
    const value: Part[] = [];
    valueWords.forEach((w, i) => {
      if (i > 0) value.push({ text: ' ', expand: false });
      value.push(...w);
    });
    return [[words[0]!, value]];
  }
  return words.map((word) => {
    // Split at the first '=' of the word's text.
    const key: Part[] = [];
    const value: Part[] = [];
    let seen = false;
    for (const part of word) {
      if (seen) {
        value.push(part);
        continue;
      }
      const at = part.text.indexOf('=');
      if (at < 0 || !part.expand) {
        key.push(part);
        continue;
      }
      seen = true;
      if (at > 0) key.push({ text: part.text.slice(0, at), expand: part.expand });
      if (at + 1 < part.text.length) value.push({ text: part.text.slice(at + 1), expand: part.expand });
    }
    if (!seen) throw new SyntaxError(`expected key=value, got '${word.map((p) => p.text).join('')}'`);
    return [key, value];
  });
}
