// The example fixture set (without the python package) served for one test file.
import { afterAll, beforeAll } from 'vitest';
import { serveExampleFixtures, type FixtureServer, type GeneratedFixtures, type ServedExample } from '@prebuilt/fixtures';

export interface ExampleChannel {
  /** The file's temp dir (the fixtures are in `<work>/fixtures`). */
  work: string;
  fixtures: GeneratedFixtures;
  server: FixtureServer;
}

/**
 * Serves the example set for the calling test file: the fields are filled in by a `beforeAll`
 * registered here (so before the file's own), and an `afterAll` stops the server and removes the dir.
 */
export function useExampleChannel(prefix: string): ExampleChannel {
  const channel = {} as ExampleChannel;
  let served: ServedExample | undefined;
  beforeAll(async () => {
    served = await serveExampleFixtures(prefix, { python: false });
    Object.assign(channel, { work: served.work, fixtures: served.fixtures, server: served.server });
  });
  afterAll(() => served?.close());
  return channel;
}
