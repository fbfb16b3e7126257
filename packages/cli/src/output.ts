import { INVISIBLE_FORMAT_CHARS, PrebuiltError, describeNetworkWait, errorMessage, oneLineText, redactUrls, terminalText, withoutOptionNames } from '@prebuilt/core';
import type { CliContext } from './cli-context.js';

/** Text fit to print on a terminal, and such text kept on one line (core's: the debug log and the application's checks use them too); see their docs. */
export { oneLineText, terminalText };

/**
 * Text from outside quoted after a label of prebuilt's (`env … failed: <reason>`, `hint: <hint>`):
 * {@link terminalText}, and every line after the first indented by two spaces, so a line break in
 * it cannot print a line that reads as prebuilt's own (`env … built`, a `hint:`).
 */
export function quotedText(text: string): string {
  return terminalText(text).replace(/\n/g, '\n  ');
}

/**
 * An error's text as it is shown (stderr, `--json`, the `--verbose` stack): every URL's credentials
 * and query secrets hidden (core's redactUrls) — a message may quote a setting's value, a URL
 * with its token put in the wrong setting — wherever the error was made; and the library options
 * a setting could also come from left out (core's withoutOptionNames): the CLI passes backends
 * none, its user sets the METAFLOW_PREBUILT_* variable the message names.
 */
export function errorText(text: string): string {
  return withoutOptionNames(redactUrls(text));
}

/**
 * A PrebuiltError as people read it on stderr: `error: <message>` and, when it has one,
 * `hint: <hint>` on the next line, both {@link errorText} and {@link quotedText}: a daemon's or
 * service's words are quoted in them, so a line break in them continues the error, indented, and
 * cannot print a line of its own that reads as prebuilt's (`hint: …`).
 */
export function errorLines(error: PrebuiltError): string {
  return `error: ${quotedText(errorText(error.message))}\n${error.hint ? `hint: ${quotedText(errorText(error.hint))}\n` : ''}`;
}

/**
 * A note for people (stderr, or above the live view): its text, which may quote text from outside (a
 * package's file path, a registry's words), {@link quotedText}: a line break in it cannot print a
 * line of its own that reads as prebuilt's (`hint: …`, `error: …`).
 */
export function noteLine(message: string): string {
  return `note: ${quotedText(message)}\n`;
}

/**
 * What a stalled network read waits on, as a line for people, {@link terminalText}: what is read
 * names a file from outside (`download of <file>`, the file name a channel's repodata or a PyPI
 * wheel's URL gives, URL-decoded), whose escape sequences would otherwise reach the terminal.
 */
export function waitLine(wait: Parameters<typeof describeNetworkWait>[0]): string {
  return `${oneLineText(describeNetworkWait(wait))}\n`;
}

/**
 * What JSON.stringify leaves raw inside strings that a terminal still acts on or shows reordered:
 * DEL, the C1 controls (U+009B is CSI, like ESC [) and core's invisible format characters (the
 * bidirectional marks, overrides and isolates, the line and paragraph separators).
 */
const JSON_RAW_UNSAFE = new RegExp(`[\\u007f-\\u009f${INVISIBLE_FORMAT_CHARS}]`, 'g');

/**
 * JSON text with every character a terminal could act on written as its `\u` escape: JSON.stringify
 * escapes the C0 controls (ESC among them) but not DEL, the C1 controls, the bidirectional
 * marks and overrides or U+2028/U+2029, which a package's name or a registry's message can hold. Such characters only occur
 * inside strings, where `\uXXXX` is the same character: the text parses to the same value.
 */
export function jsonText(value: unknown, indent?: number): string {
  return terminalJson(JSON.stringify(value, null, indent));
}

/** Valid JSON text with {@link JSON_RAW_UNSAFE} characters as `\u` escapes: the same JSON value, safe on a terminal. */
export function terminalJson(json: string): string {
  return json.replace(JSON_RAW_UNSAFE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/**
 * Writes the one JSON object of a `--json` run to stdout ({@link jsonText}); under main() it is
 * held (`context.json.held`) and printed by {@link releaseJson} once the run's outcome is known.
 */
export function writeJson(context: CliContext, value: Record<string, unknown>): void {
  context.json.written = true;
  if (context.json.held) context.json.held.value = value;
  else context.stdout.write(`${jsonText(value, 2)}\n`);
}

/** Prints the JSON object {@link writeJson} held, if any (main(), once the exit code is decided). */
export function releaseJson(context: CliContext): void {
  const value = context.json.held?.value;
  if (value === undefined) return;
  context.json.held!.value = undefined;
  context.stdout.write(`${jsonText(value, 2)}\n`);
}

/**
 * The envelope of an interrupted `--json` run: `ok: false`, `interrupted: true`, the interrupt as
 * `error` (code `cancelled`), `completed` (whether the command had finished its work when the
 * interrupt was seen) and the fields of what the command did, from its own envelope when it wrote
 * one (a build's images and failures): the one rule whichever command was stopped, and wherever.
 */
export function interruptedJson(written: Record<string, unknown> | undefined, interrupt: unknown, completed: boolean): Record<string, unknown> {
  const { ok: _ok, error: _error, interrupted: _interrupted, completed: _completed, ...fields } = written ?? {};
  return { ok: false, interrupted: true, completed, error: jsonError(interrupt), ...fields };
}

/** The `error` of a failed command's JSON: `{ name, code, message, hint }` (hint null when there is none). */
export interface JsonError {
  name: string;
  code: string;
  message: string;
  hint: string | null;
  [field: string]: unknown;
}

/** Any thrown value as the envelope's `error`; an error prebuilt did not expect has code `unexpected`. */
export function jsonError(error: unknown): JsonError {
  if (!PrebuiltError.isInstance(error)) return { name: 'Error', code: 'unexpected', message: errorText(errorMessage(error)), hint: null };
  const json = error.toJSON() as { name: string; code: string; message: string; hint?: string };
  return { ...json, message: errorText(json.message), hint: json.hint === undefined ? null : errorText(json.hint) };
}

/**
 * The envelope every `--json` output has: `ok: true` and the command's fields, or `ok: false`,
 * `error` and whatever the command did before it failed (a failed build: its images and failures).
 */
export function writeJsonResult(context: CliContext, fields: Record<string, unknown>, failure?: unknown): void {
  writeJson(context, failure === undefined ? { ok: true, ...fields } : { ok: false, error: jsonError(failure), ...fields });
}

export interface Column<Row> {
  header: string;
  value: (row: Row) => string;
}

/** The characters of a table cell shown at most (an image reference with its digest takes ~200). */
const MAX_CELL_CHARS = 512;

/**
 * A table cell: {@link terminalText}, and a newline or tab shown as its escape too. Cells quote
 * text from outside on stdout — a package's name or version from a channel, a tag a registry
 * lists, the packages of an SBOM a registry serves — whose escape sequences would reach the
 * terminal, and whose newline would add a row of its own. One longer than {@link MAX_CELL_CHARS}
 * is cut (`…`): its column is as wide as its widest cell, so a registry's platform name of
 * megabytes was padded into every row (`--json` has it whole).
 */
function tableCell(text: string): string {
  return oneLineText(text, MAX_CELL_CHARS);
}

/** A plain, left-aligned text table (two spaces between columns, no trailing spaces); every cell a {@link tableCell}. */
export function renderTable<Row>(rows: readonly Row[], columns: readonly Column<Row>[]): string {
  const cells = [columns.map((c) => c.header), ...rows.map((row) => columns.map((c) => c.value(row)))].map((line) => line.map(tableCell));
  // Not Math.max(...): an argument per row overflows the stack past ~100 000 rows (an SBOM's packages).
  const widths = columns.map((_, i) => cells.reduce((widest, line) => Math.max(widest, (line[i] ?? '').length), 0));
  return cells
    .map((line) =>
      line
        .map((cell, i) => cell.padEnd(widths[i] ?? 0))
        .join('  ')
        .trimEnd(),
    )
    .join('\n')
    .concat('\n');
}
