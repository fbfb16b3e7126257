import createDebug from 'debug';

/**
 * The lines the debug log (`prebuilt:*`, what `--verbose` shows) printed while `fn` ran; the
 * debug setup before it is restored after, whether `fn` succeeded or threw.
 */
export async function debugLinesOf(fn: () => Promise<void>): Promise<string[]> {
  const lines: string[] = [];
  const previousLog = createDebug.log;
  const previous = createDebug.disable();
  createDebug.enable('prebuilt:*');
  createDebug.log = (...args: unknown[]) => void lines.push(args.map(String).join(' '));
  try {
    await fn();
  } finally {
    createDebug.log = previousLog;
    createDebug.disable();
    if (previous) createDebug.enable(previous);
  }
  return lines;
}
