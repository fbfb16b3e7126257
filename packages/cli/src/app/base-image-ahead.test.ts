import { describe, expect, it } from 'vitest';
import { RegistryError, type BaseImageIdentity, type ImageRegistry } from '@prebuilt/core';
import { askBaseImageAhead } from './base-image-ahead.js';

/** A FAKE registry: records every baseImageIdentity call; a private field, as class backends have. */
class FakeRegistry {
  readonly name = 'fake';
  readonly calls: { ref: string; platform: string; signal: AbortSignal | undefined }[] = [];
  #host = 'registry.fake';
  constructor(private readonly answer: (ref: string, platform: string, signal?: AbortSignal) => Promise<BaseImageIdentity>) {}
  imageTag(): string {
    return `${this.#host}/envs:tag`;
  }
  baseImageIdentity(ref: string, platform: string, options: { signal?: AbortSignal } = {}): Promise<BaseImageIdentity> {
    this.calls.push({ ref, platform, signal: options.signal });
    return this.answer(ref, platform, options.signal);
  }
}

const identity = (ref: string, platform: string): BaseImageIdentity => ({ ref, digest: `sha256:${platform === 'linux/amd64' ? 'a'.repeat(64) : 'b'.repeat(64)}` }) as BaseImageIdentity;
const asRegistry = (fake: FakeRegistry): ImageRegistry => fake as unknown as ImageRegistry;

describe('askBaseImageAhead (FAKE registry)', () => {
  it('asks at once; the first call with the same base and platform gets that answer, any other call asks the registry', async () => {
    const fake = new FakeRegistry(async (ref, platform) => identity(ref, platform));
    const ahead = askBaseImageAhead(asRegistry(fake), 'base:1', 'linux/amd64', new AbortController().signal);
    await Promise.resolve();
    expect(fake.calls.map((c) => [c.ref, c.platform])).toEqual([['base:1', 'linux/amd64']]);
    expect(await ahead.registry.baseImageIdentity('base:1', 'linux/amd64')).toEqual(identity('base:1', 'linux/amd64'));
    expect(fake.calls).toHaveLength(1);
    await ahead.registry.baseImageIdentity('base:1', 'linux/arm64');
    await ahead.registry.baseImageIdentity('gpu:1', 'linux/amd64');
    await ahead.registry.baseImageIdentity('base:1', 'linux/amd64');
    expect(fake.calls.map((c) => [c.ref, c.platform])).toEqual([
      ['base:1', 'linux/amd64'],
      ['base:1', 'linux/arm64'],
      ['gpu:1', 'linux/amd64'],
      ['base:1', 'linux/amd64'],
    ]);
  });

  it('holds the registry\'s error until the deploy asks, and gives it then (no unhandled rejection meanwhile)', async () => {
    const missing = new RegistryError('The base image base:1 is not in the registry.', { registry: 'registry.fake', status: 404 });
    const fake = new FakeRegistry(async () => {
      throw missing;
    });
    const ahead = askBaseImageAhead(asRegistry(fake), 'base:1', 'linux/amd64', new AbortController().signal);
    await new Promise((resolve) => setTimeout(resolve, 10));
    await expect(ahead.registry.baseImageIdentity('base:1', 'linux/amd64')).rejects.toBe(missing);
  });

  it('a registry that throws at once rejects the promise: the error is seen at the deploy\'s call, not when asking ahead', async () => {
    const fake = new FakeRegistry(() => {
      throw new Error('NOT::an image is not an image reference');
    });
    const ahead = askBaseImageAhead(asRegistry(fake), 'NOT::an image', 'linux/amd64', new AbortController().signal);
    await expect(ahead.registry.baseImageIdentity('NOT::an image', 'linux/amd64')).rejects.toThrow('not an image reference');
  });

  it('stop() aborts the request made ahead, and so does the run\'s signal', async () => {
    const fake = new FakeRegistry((_ref, _platform, signal) => new Promise((_resolve, reject) => signal?.addEventListener('abort', () => reject(signal.reason))));
    const ahead = askBaseImageAhead(asRegistry(fake), 'base:1', 'linux/amd64', new AbortController().signal);
    await Promise.resolve();
    ahead.stop();
    expect(fake.calls[0]!.signal!.aborted).toBe(true);
    const run = new AbortController();
    const second = askBaseImageAhead(asRegistry(fake), 'base:1', 'linux/amd64', run.signal);
    await Promise.resolve();
    run.abort();
    expect(fake.calls[1]!.signal!.aborted).toBe(true);
    await expect(second.registry.baseImageIdentity('base:1', 'linux/amd64')).rejects.toBeDefined();
  });

  it('every other member is the registry\'s own, called on the registry (private fields work)', () => {
    const fake = new FakeRegistry(async (ref, platform) => identity(ref, platform));
    const { registry } = askBaseImageAhead(asRegistry(fake), 'base:1', 'linux/amd64', new AbortController().signal);
    expect(registry.name).toBe('fake');
    expect(registry.imageTag({} as never)).toBe('registry.fake/envs:tag');
  });
});
