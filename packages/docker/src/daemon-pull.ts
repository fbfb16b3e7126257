import { NetworkError, cancelledError, type RegistryCredentials } from '@prebuilt/core/backend';
import { requestProblem } from './docker-daemon.js';
import type { EngineClient } from './engine-client.js';
import { pullParts } from './image-reference.js';
import { readEvents, type ProgressTracker } from './progress.js';
import { authConfig } from './registry-auth.js';

export interface DaemonPullOptions {
  /** Sent with the pull (the daemon's own login is not used by its API); none: anonymous. */
  credentials?: RegistryCredentials | undefined;
  /** The platform to pull of a multi-platform image (default: the daemon's). */
  platform?: string;
  signal?: AbortSignal;
  /** Reads the daemon's pull events; its `error` is the pull's failure. */
  tracker: ProgressTracker;
  /** What an abort cancels, for its message (e.g. `The Docker build`). */
  what: string;
}

/**
 * Pulls `image` through the daemon (`POST /images/create`), its events read by `options.tracker`.
 * Returns the daemon's reason when the pull failed (the stream's error, or the request's problem),
 * undefined when it succeeded; an abort throws the CancelledError of `options.what`, a stalled
 * daemon its NetworkError.
 */
export async function pullThroughDaemon(client: EngineClient, image: string, options: DaemonPullOptions): Promise<string | undefined> {
  const { signal, tracker } = options;
  const query = { ...pullParts(image), platform: options.platform };
  try {
    // Pull progress: a silence of minutes is a hung daemon or registry connection (engine-clock.ts).
    const stream = await client.stream({ method: 'POST', path: '/images/create', query, registryAuth: authConfig(options.credentials), signal, silence: 'progress' });
    await readEvents(stream, (event) => tracker.handle(event));
  } catch (error) {
    if (signal?.aborted) throw cancelledError(signal, options.what);
    if (NetworkError.isInstance(error)) throw error; // the daemon stalled: its own error, with what to check
    tracker.fail(requestProblem(error));
  }
  return tracker.error;
}
