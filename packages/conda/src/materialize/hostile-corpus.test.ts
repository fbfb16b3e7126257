/**
 * The malicious-package corpus of @prebuilt/fixtures through the installers directly: each case
 * must be refused with an error naming the package and the member, and nothing outside the
 * staging prefix may change. The layout matches a real build: the prefix is staged two levels
 * below the directory holding the canaries (`<tmp>/context/prefix.partial`), where the escapes aim.
 */
import { lstat, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildHostileCorpus, CANARY_DIR, type HostileCorpus } from '@prebuilt/fixtures';
import { installCondaPackage } from './conda-install.js';
import { ArchiveError, InstallError } from './errors.js';
import { PrefixWriter } from './prefix-writer.js';
import { installWheel } from './wheel-install.js';
import { lockedPackage } from './__fixtures__/helpers.js';

let corpus: HostileCorpus;
let root: string;
beforeAll(async () => {
  corpus = await buildHostileCorpus();
  root = await mkdtemp(join(tmpdir(), 'prebuilt-hostile-unit-'));
}, 120_000);
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

/** Every file under `dir` with its content (symlinks as their target). */
async function snapshot(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (rel: string): Promise<void> => {
    for (const name of await readdir(join(dir, rel))) {
      const path = rel === '' ? name : `${rel}/${name}`;
      const info = await lstat(join(dir, path));
      if (info.isDirectory()) {
        out.set(path, 'dir');
        await walk(path);
      } else out.set(path, info.isFile() ? await readFile(join(dir, path), 'utf8') : `link`);
    }
  };
  await walk('');
  return out;
}

describe('the hostile corpus through the installers', () => {
  it('has jail, bomb and long-name cases for .tar.bz2, .conda and wheels', () => {
    const kinds = new Set(corpus.cases.map((c) => `${c.klass}:${c.id.slice(c.id.lastIndexOf('.'))}`));
    for (const klass of ['jail', 'bomb', 'long-name']) for (const ext of ['.bz2', '.conda', '.whl']) expect(kinds).toContain(`${klass}:${ext}`);
  });

  it('has the wheels whose names pip reads otherwise than a naive reader: cp437 without the UTF-8 flag, a false UTF-8 flag, a `...dist-info`', () => {
    const names = corpus.cases.filter((c) => c.klass === 'member-name').map((c) => c.id);
    expect(names.sort()).toEqual(['wheel_cp437.whl', 'wheel_dist_info_dots.whl', 'wheel_false_utf8.whl']);
  });

  it('refuses every case naming the package and the member; nothing outside the prefix changes', async () => {
    for (const c of corpus.cases) {
      const dir = join(root, c.id);
      await mkdir(join(dir, CANARY_DIR), { recursive: true });
      await writeFile(join(dir, CANARY_DIR, 'canary.txt'), 'canary\n');
      await writeFile(join(dir, CANARY_DIR, 'secret.txt'), 'host secret\n');
      await mkdir(join(dir, 'context'));
      await writeFile(join(dir, 'context', 'beside.txt'), 'beside\n');
      const packages = join(dir, 'packages');
      await mkdir(packages);
      const before = await snapshot(dir);
      const writer = await PrefixWriter.open(join(dir, 'context', 'prefix.partial'));
      await writer.mkdir('conda-meta', 'conda-meta');
      writer.reserve('conda-meta');
      const bytes = c.kind === 'conda' ? corpus.condaArtifacts.find((a) => a.filename === c.filename)!.bytes : corpus.wheels.find((w) => w.filename === c.filename)!.bytes;
      const file = join(packages, c.filename);
      await writeFile(file, bytes);
      const pkg = lockedPackage(c.kind === 'conda' ? 'conda' : 'pypi', c.filename, bytes, { name: c.name, version: '1.0', build: c.kind === 'conda' ? 'h0' : '' });
      const error = await (async () => {
        if (c.kind === 'conda') await installCondaPackage(file, pkg, { writer, prefix: '/opt/prebuilt/env', pythonVersion: '3.11.2' });
        else await installWheel(file, pkg, { writer, prefix: '/opt/prebuilt/env', pythonVersion: '3.11.2', requested: true });
        await writer.verifyLinks();
      })().then(() => undefined, (e: unknown) => e);
      expect(error, c.id).toBeDefined();
      if (process.env.SHOW_HOSTILE) console.log(c.id, String(error));
      expect(error instanceof ArchiveError || error instanceof InstallError, `${c.id}: ${String(error)}`).toBe(true);
      expect((error as Error).message, c.id).toContain(c.filename);
      expect((error as Error).message, c.id).toContain(c.member);
      expect((error as Error).message, c.id).toMatch(c.message);
      await rm(join(dir, 'context', 'prefix.partial'), { recursive: true, force: true });
      await rm(file);
      expect(await snapshot(dir), c.id).toEqual(before);
    }
  }, 300_000);
});
