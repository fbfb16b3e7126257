import { createReadStream, createWriteStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Zip, ZipPassThrough } from 'fflate';
import { createContextArchive } from '@prebuilt/core/backend';

/** The tarball's name inside the zip; the buildspec unpacks it. */
export const CONTEXT_TARBALL = 'prebuilt-context.tar.gz';

export interface ContextZip {
  file: string;
  size: number;
  /** The Dockerfile's name inside the tarball. */
  dockerfileName: string;
  remove(): Promise<void>;
}

/**
 * The build context as CodeBuild's S3 source wants it: a zip. It holds one `.tar.gz` of the context
 * and the Dockerfile, because a tarball keeps what a zip extraction loses (symlinks, executable
 * bits, owners) — an env prefix is full of both.
 */
export async function createContextZip(contextDir: string, dockerfile: string): Promise<ContextZip> {
  const archive = await createContextArchive(contextDir, dockerfile, { tempPrefix: 'prebuilt-codebuild-context-' });
  const file = join(archive.file, '..', 'context.zip');
  try {
    await new Promise<void>((resolve, reject) => {
      const out = createWriteStream(file);
      out.on('error', reject);
      let input: ReturnType<typeof createReadStream> | undefined;
      const zip = new Zip((error, chunk, final) => {
        if (error) return reject(error);
        if (!out.write(chunk) && input && !input.isPaused()) {
          input.pause();
          out.once('drain', () => input?.resume());
        }
        if (final) out.end(() => resolve());
      });
      const entry = new ZipPassThrough(CONTEXT_TARBALL);
      entry.mtime = new Date('2000-01-01T00:00:00Z');
      zip.add(entry);
      input = createReadStream(archive.file);
      input.on('data', (chunk) => entry.push(chunk as Buffer));
      input.on('end', () => {
        entry.push(new Uint8Array(0), true);
        zip.end();
      });
      input.on('error', reject);
    });
    return { file, size: (await stat(file)).size, dockerfileName: archive.dockerfileName, remove: archive.remove };
  } catch (error) {
    await archive.remove();
    throw error;
  }
}
