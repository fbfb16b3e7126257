// RegistryClient.uploadBlob with a file source (a layer): read one chunk at a time and hashed as it
// is read, against real registries — the shared plain one, and for a blob over 2 GiB (more than
// Node's readFile can hold) a throwaway one of its own, so the shared registries do not keep 2 GiB a run.
import { createHash, randomBytes } from 'node:crypto';
import { appendFileSync, truncateSync } from 'node:fs';
import { mkdtemp, open, readdir, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, expect, it, vi } from 'vitest';
import { CancelledError, InputError, RegistryError } from '../errors.js';
import { uniqueRepo } from './__fixtures__/push-image.js';
import { describeOrFailInCi, registriesMissing, testServices } from './__fixtures__/test-services.js';
import { startPlainRegistry } from '../../../fixtures/dist/index.js';
import { RegistryClient, type RegistryClientOptions } from './registry-client.js';

const services = testServices();
const FAST: RegistryClientOptions = { dockerConfig: false, retry: { attempts: 2, baseDelayMs: 20, maxDelayMs: 200 }, timeoutMs: 10_000 };
const CHUNK = 64 * 1024;

const digestOf = (bytes: Uint8Array): string => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'prebuilt-file-upload-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});
afterEach(() => {
  vi.restoreAllMocks();
});

/** A file of `size` random bytes, and its digest. */
async function blobFile(name: string, size: number): Promise<{ file: string; data: Buffer; digest: string }> {
  const data = randomBytes(size);
  const file = join(dir, name);
  await writeFile(file, data);
  return { file, data, digest: digestOf(data) };
}

/** Every read of a file handle in this process from now on: the size of the buffer it read into, and the bytes it got. */
async function watchFileReads(): Promise<Array<{ buffer: number; bytesRead: number }>> {
  const probe = await open(join(dir, 'probe'), 'w');
  const proto = Object.getPrototypeOf(probe) as { read: (...args: unknown[]) => Promise<{ bytesRead: number; buffer: Uint8Array }> };
  await probe.close();
  const reads: Array<{ buffer: number; bytesRead: number }> = [];
  const read = proto.read;
  vi.spyOn(proto, 'read').mockImplementation(async function (this: unknown, ...args: unknown[]) {
    const result = await read.apply(this, args);
    reads.push({ buffer: result.buffer.byteLength, bytesRead: result.bytesRead });
    return result;
  });
  return reads;
}

describeOrFailInCi('RegistryClient.uploadBlob from a file (plain registry)', registriesMissing(services), () => {
  const repo = (name: string): string => `${services.registries!.plain.host}/${uniqueRepo(name)}`;

  it('sends a file in PATCH chunks, reading it once and never more than a chunk at a time; the registry has the blob', async () => {
    const { file, data, digest } = await blobFile('chunked', 5 * CHUNK + 1234);
    const target = repo('file-chunks');
    const client = new RegistryClient(FAST);
    const progress: number[] = [];
    const reads = await watchFileReads();
    const result = await client.uploadBlob(target, digest, { file, size: data.length }, { chunkSize: CHUNK, onProgress: (sent) => progress.push(sent) });
    vi.restoreAllMocks();
    expect(result).toEqual({ status: 'uploaded', bytesSent: data.length });
    expect(progress).toEqual([CHUNK, 2 * CHUNK, 3 * CHUNK, 4 * CHUNK, 5 * CHUNK, data.length]);
    // Memory: one chunk's buffer, whatever the file's size. One pass: each byte read once (then a 1-byte probe for growth, which reads nothing).
    expect(Math.max(...reads.map((r) => r.buffer))).toBeLessThanOrEqual(CHUNK);
    expect(reads.reduce((sum, r) => sum + r.bytesRead, 0)).toBe(data.length);
    expect(Buffer.from(await client.getBlob(target, digest, { size: data.length })).equals(data)).toBe(true);
    expect(await client.headBlob(target, digest)).toEqual({ exists: true, size: data.length });
  });

  it('sends a file smaller than a chunk in one PUT; a blob already there is not read at all', async () => {
    const { file, data, digest } = await blobFile('small', 1000);
    const target = repo('file-small');
    const client = new RegistryClient(FAST);
    expect(await client.uploadBlob(target, digest, { file }, { chunkSize: CHUNK })).toEqual({ status: 'uploaded', bytesSent: 1000 });
    expect(Buffer.from(await client.getBlob(target, digest)).equals(data)).toBe(true);
    expect(await client.uploadBlob(target, digest, { file: join(dir, 'never-opened') })).toEqual({ status: 'exists', bytesSent: 0 });
  });

  it('fails with InputError when the bytes do not match the digest, before the last chunk and the closing PUT; the blob is not stored', async () => {
    const { file, data } = await blobFile('mismatch', 3 * CHUNK + 10);
    const claimed = digestOf(Buffer.from('another blob'));
    const target = repo('file-mismatch');
    const client = new RegistryClient(FAST);
    const progress: number[] = [];
    const error = await client.uploadBlob(target, claimed, { file }, { chunkSize: CHUNK, onProgress: (sent) => progress.push(sent) }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InputError);
    expect((error as InputError).message).toBe(`the blob file ${file} (${claimed}, to upload to ${target}) does not match its digest`);
    expect(progress).toEqual([CHUNK, 2 * CHUNK, 3 * CHUNK]);
    expect(client.stats.bytesSent).toBe(3 * CHUNK);
    expect(client.stats.bytesSent).toBeLessThan(data.length);
    expect(await client.headBlob(target, claimed)).toEqual({ exists: false });
  });

  it('fails with InputError on a file that shrinks or grows while it is sent, or whose size is not the one given', async () => {
    const client = new RegistryClient(FAST);
    const shrinking = await blobFile('shrinking', 4 * CHUNK);
    const shrunk = await client
      .uploadBlob(repo('file-shrinks'), shrinking.digest, { file: shrinking.file }, { chunkSize: CHUNK, onProgress: () => truncateSync(shrinking.file, CHUNK + 5) })
      .catch((e: unknown) => e);
    expect(shrunk).toBeInstanceOf(InputError);
    expect((shrunk as InputError).message).toMatch(/ended at 65541 bytes while it was being uploaded; it had 262144$/);

    const growing = await blobFile('growing', 4 * CHUNK);
    let grown = false;
    const grew = await client
      .uploadBlob(repo('file-grows'), growing.digest, { file: growing.file }, { chunkSize: CHUNK, onProgress: () => (grown ||= (appendFileSync(growing.file, 'more'), true)) })
      .catch((e: unknown) => e);
    expect(grew).toBeInstanceOf(InputError);
    expect((grew as InputError).message).toMatch(/grew past its 262144 bytes while it was being uploaded$/);

    const sized = await blobFile('sized', 100);
    const before = client.stats.bytesSent;
    const wrongSize = await client.uploadBlob(repo('file-size'), sized.digest, { file: sized.file, size: 99 }).catch((e: unknown) => e);
    expect(wrongSize).toBeInstanceOf(InputError);
    expect((wrongSize as InputError).message).toMatch(/has 100 bytes where 99 were expected$/);
    expect(client.stats.bytesSent).toBe(before);
  });

  it('fails with InputError naming a file that cannot be read', async () => {
    const missing = join(dir, 'missing.blob');
    const digest = digestOf(Buffer.from('x'));
    const error = await new RegistryClient(FAST).uploadBlob(repo('file-missing'), digest, { file: missing }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InputError);
    expect((error as InputError).message).toMatch(new RegExp(`^cannot read the blob file ${missing} \\(${digest}, to upload to .*\\): .*ENOENT`));
  });

  it('rejects with CancelledError when the signal is aborted in the middle of a file, sending no more chunks', async () => {
    const { file, digest } = await blobFile('cancelled', 6 * CHUNK);
    const target = repo('file-cancel');
    const client = new RegistryClient(FAST);
    const controller = new AbortController();
    const error = await client.uploadBlob(target, digest, { file }, { chunkSize: CHUNK, signal: controller.signal, onProgress: (sent) => sent >= 2 * CHUNK && controller.abort() }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CancelledError);
    expect(client.stats.bytesSent).toBe(2 * CHUNK);
    expect(await client.headBlob(target, digest)).toEqual({ exists: false });
  });
});

describeOrFailInCi('RegistryClient.getBlobToFile: a blob copied between repositories through a file (plain registry)', registriesMissing(services), () => {
  const repo = (name: string): string => `${services.registries!.plain.host}/${uniqueRepo(name)}`;

  it('fetches a blob into a file, then a lazy source gives that file to uploadBlob, which sends it in chunks', async () => {
    const { data, digest } = await blobFile('copied-source', 3 * CHUNK + 7);
    const from = repo('copy-from');
    const to = repo('copy-to');
    const client = new RegistryClient(FAST);
    await client.uploadBlob(from, digest, data);
    const file = join(dir, 'copied.blob');
    const result = await client.uploadBlob(to, digest, () => client.getBlobToFile(from, digest, file, { size: data.length }), { chunkSize: CHUNK });
    expect(result).toEqual({ status: 'uploaded', bytesSent: data.length });
    expect((await readFile(file)).equals(data)).toBe(true);
    expect(await client.headBlob(to, digest)).toEqual({ exists: true, size: data.length });
  });

  it('fails without leaving a file when the blob is larger than the size given, or missing', async () => {
    const { data, digest } = await blobFile('bounded-source', 5000);
    const from = repo('copy-bounded');
    const client = new RegistryClient(FAST);
    await client.uploadBlob(from, digest, data);
    const file = join(dir, 'bounded.blob');
    const larger = await client.getBlobToFile(from, digest, file, { size: 4999 }).catch((e: unknown) => e);
    expect(larger).toBeInstanceOf(RegistryError);
    expect((larger as RegistryError).message).toBe(`blob ${digest} of ${from} is larger than its 4999 bytes`);
    const absent = digestOf(Buffer.from('never pushed'));
    const missing = await client.getBlobToFile(from, absent, file, { size: 100 }).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(RegistryError);
    expect((missing as RegistryError).message).toBe(`blob ${absent} was not found in ${from}`);
    expect(await readdir(dir)).not.toContain('bounded.blob');
    expect(await readdir(dir)).not.toContain('bounded.blob.partial');
  });
});

describeOrFailInCi('RegistryClient.uploadBlob from a file over 2 GiB (a throwaway registry)', registriesMissing(services), () => {
  // Over Node's 2 GiB readFile limit (ERR_FS_FILE_TOO_LARGE): a CUDA env's single layer is this big.
  const SIZE = 2 * 1024 ** 3 + 3 * 1024 * 1024 + 17;

  it('pushes a sparse file of 2 GiB + 3 MiB in 8 MiB chunks; the registry has the blob at its size', async () => {
    // A registry of its own, its storage removed after: the shared ones would keep 2 GiB a run.
    const registry = await startPlainRegistry();
    try {
      const file = join(dir, 'big.blob');
      await writeFile(file, '');
      await truncate(file, SIZE);
      // The digest of SIZE zero bytes (a sparse file reads as zeros).
      const zeros = Buffer.alloc(8 * 1024 * 1024);
      const hash = createHash('sha256');
      for (let left = SIZE; left > 0; left -= zeros.length) hash.update(left >= zeros.length ? zeros : zeros.subarray(0, left));
      const digest = `sha256:${hash.digest('hex')}`;
      const target = `${registry.host}/${uniqueRepo('big')}`;
      const client = new RegistryClient(FAST);
      let chunks = 0;
      try {
        const result = await client.uploadBlob(target, digest, { file, size: SIZE }, { onProgress: () => (chunks += 1) });
        expect(result).toEqual({ status: 'uploaded', bytesSent: SIZE });
      } finally {
        await rm(file, { force: true });
      }
      expect(chunks).toBe(Math.ceil(SIZE / (8 * 1024 * 1024)));
      expect(await client.headBlob(target, digest)).toEqual({ exists: true, size: SIZE });
      const head = await fetch(`http://${registry.host}/v2/${target.slice(registry.host.length + 1)}/blobs/${digest}`, { method: 'HEAD' });
      expect(head.headers.get('docker-content-digest')).toBe(digest);
    } finally {
      await registry.stop();
    }
  }, 300_000);
});
