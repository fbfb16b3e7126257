/**
 * s3rver (a FAKE S3 that speaks the real S3 REST protocol) on 127.0.0.1 with one bucket, and the
 * S3 client options that talk to it (path style; checksums only when required, or s3rver corrupts
 * streamed uploads).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
// @ts-expect-error s3rver ships no types
import S3rver from 's3rver';

export interface FakeS3 {
  endpoint: string;
  bucket: string;
  clientConfig: Record<string, unknown>;
  stop(): Promise<void>;
}

export async function startFakeS3(bucket: string): Promise<FakeS3> {
  process.env['AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED'] = 'true';
  const directory = await mkdtemp(join(tmpdir(), 'prebuilt-test-s3rver-'));
  const server = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory, configureBuckets: [{ name: bucket }] });
  const address = (await server.run()) as { address: string; port: number };
  const endpoint = `http://127.0.0.1:${address.port}`;
  return {
    endpoint,
    bucket,
    clientConfig: {
      endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    },
    async stop() {
      await server.close();
      await rm(directory, { recursive: true, force: true });
    },
  };
}
