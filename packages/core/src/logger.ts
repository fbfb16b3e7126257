import createDebug from 'debug';
import { formatWithOptions } from 'node:util';
import { redactUrls } from './net/url-credentials.js';
import { terminalText } from './terminal-text.js';

/**
 * Library code never prints. It logs through `debug` namespaces (`prebuilt:core`,
 * `prebuilt:docker`, …), visible with `DEBUG=prebuilt:*` or the CLI's `--verbose`.
 * The whole message — the format and every argument, the objects `%o` and `%O` show and those
 * past the format included — is formatted first (`%o` on one line, as `debug` shows it), then
 * passes through {@link redactUrls}: a URL with `user:token@` logs as `***@`; and through
 * {@link terminalText}: a package's file name, a registry's message or a URL from a redirect,
 * even inside an object, logs its escape sequences and bidirectional marks as `\x1b`, `\u202e`,
 * never sends them to the terminal.
 */
export type Logger = (formatter: string, ...args: unknown[]) => void;

export function createLogger(namespace: string): Logger {
  const debug = createDebug(`prebuilt:${namespace}`);
  return (formatter, ...args) => {
    if (!debug.enabled) return;
    debug('%s', terminalText(redactUrls(formatMessage(formatter, args))));
  };
}

/** `util.format`, with `%o` as `debug` shows it: the object inspected on one line. */
function formatMessage(formatter: string, args: unknown[]): string {
  let next = 0;
  const format = formatter.replace(/%([a-zA-Z%])/g, (match, letter: string) => {
    if (letter === '%') return match;
    const index = next++;
    if (letter !== 'o' || index >= args.length) return match;
    // util's %o shows hidden properties, four levels deep, over many lines: debug's is one line.
    args[index] = oneLine(formatWithOptions({ colors: false }, '%O', args[index]));
    return '%s';
  });
  return formatWithOptions({ colors: false }, format, ...args);
}

function oneLine(text: string): string {
  return text
    .split('\n')
    .map((line) => line.trim())
    .join(' ');
}
