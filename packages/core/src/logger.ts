import createDebug from 'debug';
import { redactUrls } from './net/url-credentials.js';
import { terminalText } from './terminal-text.js';

/**
 * Library code never prints. It logs through `debug` namespaces (`prebuilt:core`,
 * `prebuilt:docker`, …), visible with `DEBUG=prebuilt:*` or the CLI's `--verbose`.
 * String arguments pass through {@link redactUrls}: a URL with `user:token@` logs as `***@`;
 * and through {@link terminalText}: a package's file name, a registry's message or a URL from a
 * redirect logs its escape sequences as `\x1b`, never sends them to the terminal.
 */
export type Logger = (formatter: string, ...args: unknown[]) => void;

export function createLogger(namespace: string): Logger {
  const debug = createDebug(`prebuilt:${namespace}`);
  return (formatter, ...args) => {
    if (!debug.enabled) return;
    debug(terminalText(redactUrls(formatter)), ...args.map((arg) => (typeof arg === 'string' ? terminalText(redactUrls(arg)) : arg)));
  };
}
