/**
 * Invisible characters that reorder or break the text around them: the bidirectional marks (LRM
 * U+200E, RLM U+200F, ALM U+061C), embeddings and overrides (U+202A–U+202E), isolates
 * (U+2066–U+2069), and the line and paragraph separators (U+2028, U+2029), which some terminals
 * break a line on. As the source of a regular expression's character class: the CLI's JSON output
 * escapes them too (JSON.stringify leaves them raw).
 */
export const INVISIBLE_FORMAT_CHARS = '\\u061c\\u200e\\u200f\\u2028\\u2029\\u202a-\\u202e\\u2066-\\u2069';

/** Control characters that are not newline or tab (C0, DEL, C1) and the {@link INVISIBLE_FORMAT_CHARS}. */
const UNPRINTABLE = new RegExp(`[\\u0000-\\u0008\\u000b-\\u001f\\u007f-\\u009f${INVISIBLE_FORMAT_CHARS}]`, 'g');

/**
 * Text fit to print on a terminal. What people read on stderr quotes text from outside — a
 * daemon's or registry's message, a build's log, the stderr of a package's code, a package's file
 * name in a debug log — and an escape sequence in it would reach the terminal: clear or rewrite the
 * screen, set the title, write the clipboard (OSC 52), a carriage return hide what came before.
 * Each such character is shown as its escape (`\x1b`, `\u202e`, `\u061c`) instead; `--json` output has its
 * own (the CLI's `jsonText`: JSON escapes the C0 controls, and it the rest).
 */
export function terminalText(text: string): string {
  return text.replace(UNPRINTABLE, (c) => {
    const code = c.charCodeAt(0);
    return code < 0x100 ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
  });
}

/**
 * Text from outside that must stay on one line — a table cell, a line of the live view (which
 * redraws over as many lines as it drew), a value a message quotes: {@link terminalText}, and a
 * newline or tab shown as its escape too. With `maxChars`, text longer than that is cut to its
 * first `maxChars` characters and `…` before it is escaped.
 */
export function oneLineText(text: string, maxChars?: number): string {
  const cut = maxChars !== undefined && text.length > maxChars ? `${text.slice(0, maxChars)}…` : text;
  return terminalText(cut).replace(/[\n\t]/g, (c) => (c === '\n' ? '\\n' : '\\t'));
}

/**
 * The last `count` lines of a program's output that are not blank, for a message quoting why it
 * failed: each line without its trailing white space (a CRLF's CR too), joined with `separator`
 * (`'\n'` keeps them lines; `' '` or `' | '` puts them on one). Empty when the output has no such line.
 */
export function lastLines(text: string, count: number, separator = '\n'): string {
  const lines = text.split('\n').map((line) => line.trimEnd()).filter((line) => line.trim() !== '');
  return lines.slice(Math.max(0, lines.length - count)).join(separator);
}
