import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { InputError, errorMessage } from '@prebuilt/core';

export interface BuildContext {
  /** The whole context as an uncompressed tar, buffered in memory. */
  tar: Buffer;
  /** The name the Dockerfile has inside the tar (pass it as the build's `dockerfile`). */
  dockerfileName: string;
}

/**
 * Packs `contextDir` and the Dockerfile text into one tar, in memory.
 *
 * The context is buffered before it is sent because a rejected build with a streamed tar can
 * crash the process with EPIPE. The Dockerfile goes in at the top level under a random name that
 * is checked against the directory, so it never replaces a file of the context. Entries are
 * sorted and owned by root, so equal directories give equal tars.
 */
export async function createBuildContext(contextDir: string, dockerfile: string): Promise<BuildContext> {
  let rootStat;
  try {
    rootStat = await lstat(contextDir);
  } catch (error) {
    throw new InputError(`The build context directory ${contextDir} cannot be read: ${errorMessage(error)}.`, {
      cause: error,
      hint: 'Pass an existing directory as the build request\'s contextDir.',
    });
  }
  if (!rootStat.isDirectory()) {
    throw new InputError(`The build context ${contextDir} is not a directory.`, {
      hint: 'Pass a directory as the build request\'s contextDir.',
    });
  }

  const topLevel = new Set(await readdir(contextDir));
  let dockerfileName: string;
  do {
    dockerfileName = `.prebuilt-${randomBytes(6).toString('hex')}.Dockerfile`;
  } while (topLevel.has(dockerfileName));

  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const collected = (async () => {
    for await (const chunk of pack) chunks.push(chunk as Buffer);
  })();

  try {
    await addDirectory(pack, contextDir, '');
    const text = Buffer.from(dockerfile, 'utf8');
    await addEntry(pack, { name: dockerfileName, type: 'file', mode: 0o644, size: text.length, mtime: new Date(0), uid: 0, gid: 0 }, text);
    pack.finalize();
  } catch (error) {
    pack.destroy(error as Error);
    await collected.catch(() => undefined);
    throw error;
  }
  await collected;
  return { tar: Buffer.concat(chunks), dockerfileName };
}

async function addDirectory(pack: tar.Pack, root: string, prefix: string): Promise<void> {
  const names = (await readdir(join(root, prefix))).sort();
  for (const name of names) {
    const relative = prefix === '' ? name : `${prefix}/${name}`;
    const absolute = join(root, relative);
    const stat = await lstat(absolute);
    const common = { name: relative, mode: stat.mode & 0o7777, mtime: stat.mtime, uid: 0, gid: 0 };
    if (stat.isDirectory()) {
      await addEntry(pack, { ...common, type: 'directory' });
      await addDirectory(pack, root, relative);
    } else if (stat.isSymbolicLink()) {
      await addEntry(pack, { ...common, type: 'symlink', linkname: await readlink(absolute) });
    } else if (stat.isFile()) {
      await new Promise<void>((resolve, reject) => {
        const entry = pack.entry({ ...common, type: 'file', size: stat.size }, (error) => (error ? reject(error) : resolve()));
        pipeline(createReadStream(absolute), entry).catch(reject);
      });
    }
    // Sockets, FIFOs and devices have no place in a build context; they are left out.
  }
}

function addEntry(pack: tar.Pack, header: Parameters<tar.Pack['entry']>[0], content?: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const callback = (error?: Error | null) => (error ? reject(error) : resolve());
    if (content === undefined) pack.entry(header, callback);
    else pack.entry(header, content, callback);
  });
}
