import createDebug from 'debug';
import { redactUrls } from './net/url-credentials.js';

/**
 * Library code never prints. It logs through `debug` namespaces (`prebuilt:core`,
 * `prebuilt:docker`, …), visible with `DEBUG=prebuilt:*` or the CLI's `--verbose`.
 * String arguments pass through {@link redactUrls}: a URL with `user:token@` logs as `***@`.
 */
export type Logger = (formatter: string, ...args: unknown[]) => void;

export function createLogger(namespace: string): Logger {
  const debug = createDebug(`prebuilt:${namespace}`);
  return (formatter, ...args) => {
    if (!debug.enabled) return;
    debug(redactUrls(formatter), ...args.map((arg) => (typeof arg === 'string' ? redactUrls(arg) : arg)));
  };
}
