import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { lstat, readdir, readlink, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import tar from 'tar-stream';
import { InputError, errorMessage } from '../errors.js';
import { createRunTempDir } from '../run-temp-dir.js';
import { writeTarEntry } from '../tar-tree-entry.js';

export interface ContextArchive {
  /** The `.tar.gz` file. */
  file: string;
  /** Its size in bytes. */
  size: number;
  /** The Dockerfile's name inside the archive (pass it as `--dockerfile`). */
  dockerfileName: string;
  /** Removes the archive and its temp directory. */
  remove(): Promise<void>;
}

export interface ContextArchiveOptions {
  /** Prefix of the temp directory the archive is written in (names the build service). Default `prebuilt-context-`. */
  tempPrefix?: string;
}

export interface PackedBuildContext<T> {
  /** What `consume` made of the tar. */
  result: T;
  /** The Dockerfile's name inside the tar (pass it as the build's `dockerfile`). */
  dockerfileName: string;
}

/**
 * Checks that `contextDir` is a readable directory and packs it and the Dockerfile text into one
 * tar, handed as a stream to `consume` (which must read it to the end). The Dockerfile goes in at
 * the top level under a random name that no file of the context has, so it never replaces one;
 * entries are sorted and owned by root, so equal directories give equal tars.
 */
export async function packBuildContext<T>(
  contextDir: string,
  dockerfile: string,
  consume: (tar: AsyncIterable<Buffer>) => Promise<T>,
): Promise<PackedBuildContext<T>> {
  const rootStat = await lstat(contextDir).catch((error: unknown) => {
    throw new InputError(`The build context directory ${contextDir} cannot be read: ${errorMessage(error)}.`, {
      cause: error,
      hint: "Pass an existing directory as the build request's contextDir.",
    });
  });
  if (!rootStat.isDirectory()) {
    throw new InputError(`The build context ${contextDir} is not a directory.`, { hint: "Pass a directory as the build request's contextDir." });
  }
  const topLevel = new Set(await readdir(contextDir));
  let dockerfileName: string;
  do {
    dockerfileName = `.prebuilt-${randomBytes(6).toString('hex')}.Dockerfile`;
  } while (topLevel.has(dockerfileName));

  const pack = tar.pack();
  // tar-stream's types leave the chunk type open; they are Buffers.
  const consumed = consume(pack as AsyncIterable<Buffer>);
  try {
    await addDirectory(pack, contextDir, '');
    const text = Buffer.from(dockerfile, 'utf8');
    await writeTarEntry(pack, { name: dockerfileName, type: 'file', mode: 0o644, size: text.length, mtime: new Date(0), uid: 0, gid: 0 }, text);
    pack.finalize();
  } catch (error) {
    pack.destroy(error as Error);
    await consumed.catch(() => undefined);
    throw error;
  }
  return { result: await consumed, dockerfileName };
}

/** Packs `contextDir` and the Dockerfile (see {@link packBuildContext}) into a `.tar.gz` in a temp directory. */
export async function createContextArchive(contextDir: string, dockerfile: string, options: ContextArchiveOptions = {}): Promise<ContextArchive> {
  const dir = await createRunTempDir(options.tempPrefix ?? 'prebuilt-context-');
  const remove = () => rm(dir, { recursive: true, force: true });
  const file = join(dir, 'context.tar.gz');
  try {
    const { dockerfileName } = await packBuildContext(contextDir, dockerfile, (context) => pipeline(context, createGzip(), createWriteStream(file)));
    return { file, size: (await stat(file)).size, dockerfileName, remove };
  } catch (error) {
    await remove();
    throw error;
  }
}

async function addDirectory(pack: tar.Pack, root: string, prefix: string): Promise<void> {
  const names = (await readdir(join(root, prefix))).sort();
  for (const name of names) {
    const relative = prefix === '' ? name : `${prefix}/${name}`;
    const absolute = join(root, relative);
    const entryStat = await lstat(absolute);
    const common = { name: relative, mode: entryStat.mode & 0o7777, mtime: entryStat.mtime, uid: 0, gid: 0 };
    if (entryStat.isDirectory()) {
      await writeTarEntry(pack, { ...common, type: 'directory' });
      await addDirectory(pack, root, relative);
    } else if (entryStat.isSymbolicLink()) {
      await writeTarEntry(pack, { ...common, type: 'symlink', linkname: await readlink(absolute) });
    } else if (entryStat.isFile()) {
      await new Promise<void>((resolve, reject) => {
        const entry = pack.entry({ ...common, type: 'file', size: entryStat.size }, (error) => (error ? reject(error) : resolve()));
        pipeline(createReadStream(absolute), entry).catch(reject);
      });
    }
    // Sockets, FIFOs and devices have no place in a build context; they are left out.
  }
}
