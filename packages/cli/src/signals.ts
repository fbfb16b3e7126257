import { CancelledError } from '@prebuilt/core';

export type InterruptSignal = 'SIGINT' | 'SIGTERM';

export interface InterruptWatch {
  readonly signal: AbortSignal;
  /** The signal received, once one arrived. */
  readonly received: InterruptSignal | undefined;
  dispose(): void;
}

/**
 * The first SIGINT/SIGTERM aborts the returned signal (with a CancelledError as reason) so the
 * running command can stop cleanly; a second one exits at once (130 / 143).
 */
export function watchInterrupts(): InterruptWatch {
  const controller = new AbortController();
  let received: InterruptSignal | undefined;
  const handler = (signal: InterruptSignal): void => {
    if (received !== undefined) process.exit(signal === 'SIGTERM' ? 143 : 130);
    received = signal;
    controller.abort(new CancelledError(`Interrupted by ${signal}.`, { signal }));
  };
  const onInt = (): void => handler('SIGINT');
  const onTerm = (): void => handler('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  return {
    signal: controller.signal,
    get received() {
      return received;
    },
    dispose() {
      process.off('SIGINT', onInt);
      process.off('SIGTERM', onTerm);
    },
  };
}
