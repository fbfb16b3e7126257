import createDebug from 'debug';

/**
 * Library code never prints. It logs through `debug` namespaces (`prebuilt:core`,
 * `prebuilt:docker`, …), visible with `DEBUG=prebuilt:*` or the CLI's `--verbose`.
 */
export type Logger = (formatter: string, ...args: unknown[]) => void;

export function createLogger(namespace: string): Logger {
  return createDebug(`prebuilt:${namespace}`);
}
