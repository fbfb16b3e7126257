import { mkdir, mkdtemp, readFile, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import tar from 'tar-stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { InputError } from '../errors.js';
import { createContextArchive, packBuildContext } from './context-archive.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'prebuilt-core-context-test-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function entries(bytes: Buffer): Promise<{ name: string; type: string; uid: number; body: string }[]> {
  const out: { name: string; type: string; uid: number; body: string }[] = [];
  const extract = tar.extract();
  extract.on('entry', (header, stream, next) => {
    const chunks: Buffer[] = [];
    stream.on('data', (chunk: unknown) => chunks.push(chunk as Buffer));
    stream.on('end', () => {
      out.push({ name: header.name, type: header.type ?? 'file', uid: header.uid ?? -1, body: Buffer.concat(chunks).toString() });
      next();
    });
  });
  await pipeline(Readable.from([bytes]), extract);
  return out;
}

describe('packBuildContext', () => {
  it('packs the context sorted, owned by root, with the Dockerfile under a fresh top-level name', async () => {
    const context = join(dir, 'context');
    await mkdir(join(context, 'b'), { recursive: true });
    await writeFile(join(context, 'b', 'file.txt'), 'hello');
    await writeFile(join(context, 'a.txt'), 'a');
    await symlink('a.txt', join(context, 'link'));
    const { result, dockerfileName } = await packBuildContext(context, 'FROM scratch\n', async (stream) => {
      const chunks: Buffer[] = [];
      for await (const chunk of stream) chunks.push(chunk);
      return Buffer.concat(chunks);
    });
    expect(dockerfileName).toMatch(/^\.prebuilt-[0-9a-f]{12}\.Dockerfile$/);
    const listed = await entries(result);
    expect(listed.map((entry) => [entry.name, entry.type])).toEqual([
      ['a.txt', 'file'],
      ['b', 'directory'],
      ['b/file.txt', 'file'],
      ['link', 'symlink'],
      [dockerfileName, 'file'],
    ]);
    expect(listed.every((entry) => entry.uid === 0)).toBe(true);
    expect(listed.find((entry) => entry.name === dockerfileName)?.body).toBe('FROM scratch\n');
  });

  it('packs links to host files and directories as links, never following them', async () => {
    const context = join(dir, 'context');
    await mkdir(join(context, 'prefix'), { recursive: true });
    await symlink('/etc/passwd', join(context, 'prefix', 'passwd'));
    await symlink('/etc', join(context, 'prefix', 'etc'));
    await symlink('../../..', join(context, 'prefix', 'up'));
    const { result } = await packBuildContext(context, 'FROM scratch\n', async (stream) => {
      const chunks: Buffer[] = [];
      for await (const chunk of stream) chunks.push(chunk);
      return Buffer.concat(chunks);
    });
    const listed = await entries(result);
    expect(listed.filter((entry) => entry.name.startsWith('prefix/')).map((entry) => [entry.name, entry.type])).toEqual([
      ['prefix/etc', 'symlink'],
      ['prefix/passwd', 'symlink'],
      ['prefix/up', 'symlink'],
    ]);
    expect(result.includes(await readFile('/etc/passwd'))).toBe(false);
  });

  it('refuses a missing context and a file as InputError, before calling the consumer', async () => {
    await writeFile(join(dir, 'file'), 'x');
    let called = false;
    const consume = async () => {
      called = true;
    };
    await expect(packBuildContext(join(dir, 'nope'), 'FROM scratch', consume)).rejects.toBeInstanceOf(InputError);
    await expect(packBuildContext(join(dir, 'file'), 'FROM scratch', consume)).rejects.toThrow(/not a directory/);
    expect(called).toBe(false);
  });
});

describe('createContextArchive', () => {
  it('writes a .tar.gz in a temp dir with the given prefix; remove() deletes it', async () => {
    const context = join(dir, 'context');
    await mkdir(context);
    await writeFile(join(context, 'x'), 'x');
    const archive = await createContextArchive(context, 'FROM scratch\n', { tempPrefix: 'prebuilt-core-test-context-' });
    try {
      expect(archive.file).toContain('prebuilt-core-test-context-');
      const gz = await readFile(archive.file);
      expect(archive.size).toBe(gz.length);
      const chunks: Buffer[] = [];
      await pipeline(Readable.from([gz]), createGunzip(), async function* (source) {
        for await (const chunk of source) chunks.push(chunk as Buffer);
      });
      expect((await entries(Buffer.concat(chunks))).map((entry) => entry.name)).toEqual(['x', archive.dockerfileName]);
    } finally {
      await archive.remove();
    }
    await expect(readFile(archive.file)).rejects.toThrow(/ENOENT/);
  });

  it('leaves no temp dir behind when the context is not a directory', async () => {
    const prefix = `prebuilt-core-test-${process.pid}-`;
    await expect(createContextArchive(join(dir, 'nope'), 'FROM scratch', { tempPrefix: prefix })).rejects.toBeInstanceOf(InputError);
    expect((await readdir(tmpdir())).filter((name) => name.startsWith(prefix))).toEqual([]);
  });
});
