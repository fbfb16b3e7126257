import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import tar from 'tar-stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InputError } from '@prebuilt/core/backend';
import { createBuildContext } from './build-context.js';

async function entries(buffer: Buffer): Promise<Map<string, { type: string; mode: number; content: string; linkname?: string | null }>> {
  const result = new Map<string, { type: string; mode: number; content: string; linkname?: string | null }>();
  const extract = tar.extract();
  Readable.from([buffer]).pipe(extract as unknown as NodeJS.WritableStream);
  for await (const entry of extract) {
    const chunks: Buffer[] = [];
    for await (const chunk of entry) chunks.push(chunk as Buffer);
    result.set(entry.header.name, { type: entry.header.type, mode: entry.header.mode, content: Buffer.concat(chunks).toString(), linkname: entry.header.linkname });
  }
  return result;
}

describe('build context', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'prebuilt-ctx-'));
    await mkdir(join(dir, 'env/bin'), { recursive: true });
    await writeFile(join(dir, 'env/bin/python'), '#!/bin/sh\n', { mode: 0o755 });
    await writeFile(join(dir, 'Dockerfile'), 'a file of the context named Dockerfile\n');
    await symlink('python', join(dir, 'env/bin/python3'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('packs the directory (modes, symlinks) and the Dockerfile under a name that does not replace a context file', async () => {
    const context = await createBuildContext(dir, 'FROM scratch\n');
    expect(context.dockerfileName).toMatch(/^\.prebuilt-[0-9a-f]{12}\.Dockerfile$/);
    const files = await entries(context.tar);
    expect(files.get(context.dockerfileName)?.content).toBe('FROM scratch\n');
    expect(files.get('Dockerfile')?.content).toBe('a file of the context named Dockerfile\n');
    expect(files.get('env/bin/python')).toMatchObject({ type: 'file', mode: 0o755, content: '#!/bin/sh\n' });
    expect(files.get('env/bin/python3')).toMatchObject({ type: 'symlink', linkname: 'python' });
    expect(files.get('env')?.type).toBe('directory');
    expect([...files.keys()].slice(0, 4)).toEqual(['Dockerfile', 'env', 'env/bin', 'env/bin/python']);
  });

  it('a missing context directory is an InputError', async () => {
    await expect(createBuildContext(join(dir, 'nope'), 'FROM scratch\n')).rejects.toBeInstanceOf(InputError);
    await expect(createBuildContext(join(dir, 'Dockerfile'), 'FROM scratch\n')).rejects.toThrow(/not a directory/);
  });
});
