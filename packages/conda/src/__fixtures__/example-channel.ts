// The example fixture set (without the python package) served for one test file.
import { afterAll, beforeAll } from 'vitest';
import type { LockedEnv } from '@prebuilt/core';
import { fixtureCondaFile, fixtureLock, serveExampleFixtures, type FixtureServer, type GeneratedFixtures, type ServedExample } from '@prebuilt/fixtures';

export interface ExampleChannel {
  /** The file's temp dir (the fixtures are in `<work>/fixtures`). */
  work: string;
  fixtures: GeneratedFixtures;
  server: FixtureServer;
  /** The filename of a conda artifact (noarch or linux-64) by name and format. */
  condaFile(name: string, format: string): string;
  /** {@link fixtureLock} over the served set. */
  lock(pick: Parameters<typeof fixtureLock>[2], options?: Parameters<typeof fixtureLock>[3]): LockedEnv;
}

/**
 * Serves the example set for the calling test file: the fields are filled in by a `beforeAll`
 * registered here (so before the file's own), and an `afterAll` stops the server and removes the dir.
 */
export function useExampleChannel(prefix: string): ExampleChannel {
  const channel = {
    condaFile: (name, format) => fixtureCondaFile(channel.fixtures, name, format),
    lock: (pick, options) => fixtureLock(channel.fixtures, channel.server, pick, options),
  } as ExampleChannel;
  let served: ServedExample | undefined;
  beforeAll(async () => {
    served = await serveExampleFixtures(prefix, { python: false });
    Object.assign(channel, { work: served.work, fixtures: served.fixtures, server: served.server });
  });
  afterAll(() => served?.close());
  return channel;
}
