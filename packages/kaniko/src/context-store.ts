import { createReadStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { ConfigError, createLogger, importLazily } from '@prebuilt/core/backend';

const debug = createLogger('kaniko');

/** Where build contexts go: `gs://bucket[/prefix]` or `s3://bucket[/prefix]`. */
export interface BucketLocation {
  scheme: 'gs' | 's3';
  bucket: string;
  /** Key prefix without leading or trailing slash ('' for the bucket's root). */
  prefix: string;
}

export function parseBucketLocation(text: string, setting: string): BucketLocation {
  const match = /^(gs|s3):\/\/([a-z0-9][a-z0-9._-]{1,221}[a-z0-9])(\/.*)?$/.exec(text.trim());
  if (!match) {
    throw new ConfigError(`The kaniko context bucket '${text}' is not a gs:// or s3:// location.`, {
      setting,
      hint: `Set ${setting} (or the option 'contextBucket') to e.g. gs://my-bucket/prebuilt or s3://my-bucket/prebuilt.`,
    });
  }
  return { scheme: match[1] as 'gs' | 's3', bucket: match[2]!, prefix: (match[3] ?? '').replace(/^\/+|\/+$/g, '') };
}

/** Uploads and removes build context archives in one bucket. */
export interface ContextStore {
  readonly location: BucketLocation;
  /** The URL kaniko's `--context` takes for a key. */
  url(key: string): string;
  upload(file: string, size: number, key: string, signal?: AbortSignal): Promise<void>;
  /** Removes the object; a missing object is fine. */
  remove(key: string): Promise<void>;
  /** Releases the client's connections. */
  close(): void;
}

function importSdk<T>(load: () => Promise<T>, packageName: string, scheme: string): Promise<T> {
  return importLazily(load, {
    message: `The kaniko build service needs ${packageName} to put build contexts on ${scheme}://, and it cannot be loaded`,
    hint: `Install it beside prebuilt: npm i ${packageName}`,
  });
}

export async function createContextStore(
  location: BucketLocation,
  clientOptions: { s3?: Record<string, unknown>; gcs?: Record<string, unknown> },
): Promise<ContextStore> {
  const url = (key: string) => `${location.scheme}://${location.bucket}/${key}`;
  if (location.scheme === 's3') {
    const sdk = await importSdk(() => import('@aws-sdk/client-s3'), '@aws-sdk/client-s3', 's3');
    const client = new sdk.S3Client({ ...clientOptions.s3 });
    return {
      location,
      url,
      async upload(file, size, key, signal) {
        debug('uploading %s (%d bytes) to %s', file, size, url(key));
        await client.send(
          new sdk.PutObjectCommand({ Bucket: location.bucket, Key: key, Body: createReadStream(file), ContentLength: size, ContentType: 'application/gzip' }),
          signal ? { abortSignal: signal } : {},
        );
      },
      async remove(key) {
        await client.send(new sdk.DeleteObjectCommand({ Bucket: location.bucket, Key: key }));
        debug('removed %s', url(key));
      },
      close: () => client.destroy(),
    };
  }
  const sdk = await importSdk(() => import('@google-cloud/storage'), '@google-cloud/storage', 'gs');
  const storage = new sdk.Storage({ ...clientOptions.gcs });
  const bucket = storage.bucket(location.bucket);
  return {
    location,
    url,
    async upload(file, size, key, signal) {
      debug('uploading %s (%d bytes) to %s', file, size, url(key));
      const destination = bucket.file(key).createWriteStream({ resumable: false, contentType: 'application/gzip', validation: 'crc32c' });
      // Aborting destroys the write stream, which ends the upload request.
      await pipeline(createReadStream(file), destination, signal ? { signal } : {});
    },
    async remove(key) {
      await bucket.file(key).delete({ ignoreNotFound: true });
      debug('removed %s', url(key));
    },
    // The GCS client holds no pool of its own to release.
    close: () => undefined,
  };
}
