import createDebug from 'debug';

/** The debug namespaces `--verbose` turns on. */
const VERBOSE_NAMESPACES = 'prebuilt:*';

/**
 * Turns on the `prebuilt:*` debug logs (on stderr), keeping namespaces already in DEBUG. DEBUG is
 * updated too, so backends loaded later with their own copy of `debug`, and child processes, log as well.
 */
export function enableVerbose(env: Record<string, string | undefined> = process.env): void {
  const current = env.DEBUG?.trim();
  const namespaces = current && !current.split(/[\s,]+/).includes(VERBOSE_NAMESPACES) ? `${current},${VERBOSE_NAMESPACES}` : VERBOSE_NAMESPACES;
  env.DEBUG = namespaces;
  createDebug.enable(namespaces);
}

/** True when prebuilt's debug logs are on (`--verbose` or `DEBUG=prebuilt:*`): stack traces are shown then. */
export function debugEnabled(): boolean {
  return createDebug.enabled('prebuilt:cli');
}
