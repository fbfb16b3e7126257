import { execFileSync } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readdir, rm, symlink, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EnvironmentError, InputError } from './errors.js';
import { lockFilePath, readLockFile, serializeLockFile } from './lock-file.js';
import { lockForFlow } from './lock-for-flow.js';
import { fakeResolver, glibc, request } from './__fixtures__/fake-env-resolver.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'prebuilt-lock-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('lockFilePath', () => {
  it('puts <stem>.prebuilt.lock beside the flow', () => {
    expect(lockFilePath('/a/b/my_flow.py')).toBe('/a/b/my_flow.prebuilt.lock');
    expect(lockFilePath('flow')).toBe('flow.prebuilt.lock');
  });
});

describe('readLockFile validation', () => {
  it('returns undefined for a missing file', async () => {
    expect(await readLockFile(join(dir, 'none.prebuilt.lock'))).toBeUndefined();
  });

  it('refuses a lock that is not a file (a FIFO, a symlink to /dev/zero: a hang, a full memory) or over 256 MiB, naming it as shown, without reading it', async () => {
    const fifo = join(dir, 'fifo.prebuilt.lock');
    execFileSync('mkfifo', [fifo]);
    const zero = join(dir, 'zero.prebuilt.lock');
    await symlink('/dev/zero', zero);
    const big = join(dir, 'big.prebuilt.lock');
    await writeFile(big, '');
    await truncate(big, 256 * 1024 * 1024 + 1);
    const refused = async (file: string): Promise<InputError> => (await readLockFile(file, { shownAs: basename(file) }).catch((e: unknown) => e)) as InputError;
    expect((await refused(fifo)).message).toBe('Lock file fifo.prebuilt.lock is a FIFO, not a file.');
    expect((await refused(zero)).message).toBe('Lock file zero.prebuilt.lock is a device, not a file.');
    const tooBig = await refused(big);
    expect(InputError.isInstance(tooBig)).toBe(true);
    expect(tooBig.message).toBe('Lock file big.prebuilt.lock is 268435457 bytes, more than a lock file holds (268435456 bytes at most).');
    expect(tooBig.hint).toMatch(/prebuilt lock --update big\.py/);
  });

  it.each([
    ['a newer format version', (l: Record<string, unknown>) => ({ ...l, lockVersion: 99 }), /lockVersion 99, written by a newer prebuilt/],
    ['an unknown format version', (l: Record<string, unknown>) => ({ ...l, lockVersion: 'x' }), /lockVersion is "x"/],
    ['a bad sha256', (l: Record<string, unknown>) => JSON.parse(JSON.stringify(l).replace('"0000', '"zz00')) as unknown, /sha256 is not a hex sha256/],
    ['a step naming a missing env', (l: Record<string, unknown>) => ({ ...l, steps: { start: 'abc' } }), /steps\.start names no env/],
    ['a version-2 step naming a missing env', (l: Record<string, unknown>) => ({ ...l, lockVersion: 2, steps: { start: { 'linux-64': 'abc' } } }), /steps\.start\.linux-64 names no env/],
    ['a version-1 step in a version-2 file', (l: Record<string, unknown>) => ({ ...l, lockVersion: 2 }), /steps\.start is not an object/],
    ['a step naming an env of another platform', (l: Record<string, unknown>) => ({ ...l, lockVersion: 2, steps: { start: { 'linux-aarch64': Object.keys(l.envs as object)[0] } } }), /locked for linux-64/],
    ['a step with no platform', (l: Record<string, unknown>) => ({ ...l, lockVersion: 2, steps: { start: {} } }), /names no platform/],
    ['an entry under the wrong key', (l: Record<string, unknown>) => ({ ...l, envs: { wrong: Object.values(l.envs as object)[0] } }), /envs\.wrong does not match/],
  ])('rejects %s with an InputError naming the file', async (_what, mutate, message) => {
    const flowFile = join(dir, 'flow.py');
    const { lock, lockFile } = await lockForFlow({ flowFile, steps: { start: request({}) }, glibc, resolve: fakeResolver() });
    await writeFile(lockFile, JSON.stringify(mutate(JSON.parse(serializeLockFile(lock)) as Record<string, unknown>)));
    const error = await readLockFile(lockFile).catch((e: unknown) => e);
    expect(InputError.isInstance(error)).toBe(true);
    expect((error as InputError).message).toContain(lockFile);
    expect((error as InputError).message).toMatch(message);
  });

  it("keeps a wheel's directUrl (the packages that required it at that URL) through writing and reading, and refuses one of the wrong shape", async () => {
    const flowFile = join(dir, 'flow.py');
    const { lock, lockFile } = await lockForFlow({ flowFile, steps: { start: request({}) }, glibc, resolve: fakeResolver() });
    const parsed = JSON.parse(serializeLockFile(lock)) as { envs: Record<string, { packages: Record<string, unknown>[] }> };
    const [key, entry] = Object.entries(parsed.envs)[0]!;
    const wheel = {
      kind: 'pypi', name: 'bar', version: '2.0', build: '', url: 'https://other.example/bar-2.0-py3-none-any.whl', sha256: '2'.repeat(64), size: 10,
      filename: 'bar-2.0-py3-none-any.whl', directUrl: { requiredBy: ['zed', 'foo'] },
    };
    entry.packages.push(wheel);
    await writeFile(lockFile, JSON.stringify(parsed));
    const read = (await readLockFile(lockFile))!;
    expect(read.envs[key]!.packages.find((p) => p.name === 'bar')!.directUrl).toEqual({ requiredBy: ['zed', 'foo'] });
    // Written back sorted, the other packages without the field.
    const written = JSON.parse(serializeLockFile(read)) as typeof parsed;
    const packages = written.envs[key]!.packages;
    expect(packages.find((p) => p.name === 'bar')!.directUrl).toEqual({ requiredBy: ['foo', 'zed'] });
    expect(packages.filter((p) => 'directUrl' in p)).toHaveLength(1);

    for (const [bad, message] of [
      ['foo', /packages\[\d+\]\.directUrl is not an object/],
      [{ requiredBy: 'foo' }, /packages\[\d+\]\.directUrl\.requiredBy is not a list/],
      [{ requiredBy: [1] }, /packages\[\d+\]\.directUrl\.requiredBy\[0\] is not a string/],
    ] as const) {
      entry.packages[entry.packages.length - 1] = { ...wheel, directUrl: bad };
      await writeFile(lockFile, JSON.stringify(parsed));
      const error = await readLockFile(lockFile).catch((e: unknown) => e);
      expect(InputError.isInstance(error)).toBe(true);
      expect((error as InputError).message).toMatch(message);
    }
  });

  it("refuses a wheel at a file: URL under an http(s) or the default index, naming the entry and the URL; a file: index's wheels are read", async () => {
    const flowFile = join(dir, 'flow.py');
    const { lock, lockFile } = await lockForFlow({ flowFile, steps: { start: request({}) }, glibc, resolve: fakeResolver() });
    const parsed = JSON.parse(serializeLockFile(lock)) as { envs: Record<string, { request: { indexUrl: string | null }; packages: unknown[] }> };
    const [key, entry] = Object.entries(parsed.envs)[0]!;
    const wheel = { kind: 'pypi', name: 'canary', version: '1.0', build: '', url: 'file:///home/u/.docker/config.json', sha256: '1'.repeat(64), size: 10, filename: 'canary-1.0-py3-none-any.whl' };
    const at = entry.packages.length;
    entry.packages.push(wheel);
    const withIndex = async (indexUrl: string | null) => {
      entry.request.indexUrl = indexUrl;
      await writeFile(lockFile, JSON.stringify(parsed));
      return readLockFile(lockFile).catch((e: unknown) => e);
    };
    for (const [indexUrl, named] of [
      [null, "pip's configured index"],
      ['https://ci:s3cret@mirror.example/simple', 'the index https://***@mirror.example/simple'],
      ['http://127.0.0.1:8080/simple', 'the index http://127.0.0.1:8080/simple'],
    ] as const) {
      const error = await withIndex(indexUrl);
      expect(InputError.isInstance(error), String(indexUrl)).toBe(true);
      expect((error as InputError).message).toBe(
        `Lock file ${lockFile} is invalid: envs.${key}.packages[${at}] locks the wheel canary-1.0-py3-none-any.whl at file:///home/u/.docker/config.json, which is not an http(s) URL, but the env's PyPI packages come from ${named}, not a file: index; only a file: index names files on this machine.`,
      );
      expect((error as InputError).message).not.toContain('s3cret');
    }
    const outside = await withIndex('file:///srv/wheels/simple');
    expect((outside as InputError).message, 'a file: index names only files inside it').toBe(
      `Lock file ${lockFile} locks the wheel canary-1.0-py3-none-any.whl (canary) at file:///home/u/.docker/config.json, which is not inside the env's file: index file:///srv/wheels/simple (by the path it names, \`..\` and symlinks resolved); refusing to read it.`,
    );
    (entry.packages[at] as { url: string }).url = 'file:///srv/wheels/simple/canary/canary-1.0-py3-none-any.whl';
    const local = await withIndex('file:///srv/wheels/simple/');
    expect(InputError.isInstance(local), String(local)).toBe(false);
  });

  it("refuses a conda package at a file: URL not under one of the env's file: channels; under one (the setting's or a decorator's channel::) it is read", async () => {
    const flowFile = join(dir, 'flow.py');
    const { lock, lockFile } = await lockForFlow({ flowFile, steps: { start: request({}) }, glibc, resolve: fakeResolver() });
    const parsed = JSON.parse(serializeLockFile(lock)) as { envs: Record<string, { request: { channels: string[]; conda: Record<string, string> }; packages: unknown[] }> };
    const [key, entry] = Object.entries(parsed.envs)[0]!;
    const url = 'file:///srv/channel/linux-64/canary-1.0-0.conda';
    const at = entry.packages.length;
    entry.packages.push({ kind: 'conda', name: 'canary', version: '1.0', build: '0', url, sha256: '1'.repeat(64), size: 10, filename: 'canary-1.0-0.conda' });
    const read = async (channels: string[], conda: Record<string, string> = {}) => {
      entry.request.channels = channels;
      entry.request.conda = conda;
      await writeFile(lockFile, JSON.stringify(parsed));
      return readLockFile(lockFile).catch((e: unknown) => e);
    };
    const noFileChannel = await read(['https://conda.example/forge']);
    expect((noFileChannel as InputError).message).toBe(
      `Lock file ${lockFile} is invalid: envs.${key}.packages[${at}] locks the conda package canary-1.0-0.conda at ${url}, which is not an http(s) URL and not under a file: channel of the env; only a file: channel names files on this machine.`,
    );
    for (const [channels, conda, named] of [
      [['file:///srv/chan'], {}, 'file:///srv/chan'],
      [['https://conda.example/forge'], { 'file:///srv/other::canary': '' }, 'file:///srv/other'],
      [['file:///srv/channel/linux-64/%2e%2e/%2E%2e/chan'], {}, 'file:///srv/channel/linux-64/%2e%2e/%2E%2e/chan'],
    ] as const) {
      const error = await read([...channels], conda);
      expect(InputError.isInstance(error), JSON.stringify(channels)).toBe(true);
      expect((error as InputError).message).toBe(
        `Lock file ${lockFile} locks the conda package canary-1.0-0.conda (canary) at ${url}, which is not inside the env's file: channels ${named} (by the path it names, \`..\` and symlinks resolved); refusing to read it.`,
      );
    }
    const escaping = 'file:///srv/channel/linux-64/../../../home/u/.docker/config.json';
    (entry.packages[at] as { url: string }).url = escaping;
    const error = await read(['file:///srv/channel']);
    expect((error as InputError).message, 'a .. out of the channel').toContain(`at ${escaping}, which is not inside the env's file: channels file:///srv/channel`);
    (entry.packages[at] as { url: string }).url = url;
    for (const [channels, conda] of [
      [['file:///srv/channel'], {}],
      [['https://conda.example/forge'], { 'file:///srv/channel/::canary': '' }],
    ] as const) {
      const read1 = await read([...channels], conda);
      expect(InputError.isInstance(read1), `${JSON.stringify(channels)} ${JSON.stringify(conda)}: ${String(read1)}`).toBe(false);
    }
  });
});

describe('a flow in a directory this user may not write', () => {
  it('locking it is an EnvironmentError naming the directory (not a temp file) and saying the lock goes beside the flow, not into the current directory', async () => {
    const project = join(dir, 'project');
    await mkdir(project);
    await chmod(dir, 0o755);
    await chmod(project, 0o555);
    const flowFile = join(project, 'flow.py');
    await writeFile(flowFile, '');
    // root writes anywhere: the lock runs as nobody then (a forked test worker may change its effective user).
    const asRoot = process.getuid?.() === 0;
    if (asRoot) process.seteuid!(65534);
    let error: unknown;
    try {
      error = await lockForFlow({ flowFile, steps: { start: request({}) }, glibc, resolve: fakeResolver() }).catch((e: unknown) => e);
    } finally {
      if (asRoot) process.seteuid!(0);
      await chmod(project, 0o755);
    }
    expect(EnvironmentError.isInstance(error)).toBe(true);
    expect((error as EnvironmentError).exitCode).toBe(2);
    expect((error as EnvironmentError).message).toBe(`Cannot write ${project} while writing ${join(project, 'flow.prebuilt.lock')}: permission denied (EACCES).`);
    expect((error as EnvironmentError).hint).toBe(
      `The lock file is written beside the flow file, whatever the current directory: make ${project} writable for this user, ` +
        'or lock in a copy of the project you can write and commit flow.prebuilt.lock (with it up to date, --frozen reads it and writes nothing).',
    );
    expect(await readdir(project)).toEqual(['flow.py']);
  });
});

describe("a file: URL inside the env's file: source, symlinks resolved", () => {
  const secret = '{"auths":{"registry.example":{"auth":"c2VjcmV0"}}}';
  /** A lock whose one env has a wheel (or conda package) at `url` and the given sources; read as `shownAs` would show it. */
  async function lockWith(kind: 'pypi' | 'conda', url: string, sources: { indexUrl?: string; channels?: string[] }) {
    const flowFile = join(dir, 'flow.py');
    await rm(join(dir, 'flow.prebuilt.lock'), { force: true });
    const { lock, lockFile } = await lockForFlow({ flowFile, steps: { start: request({}) }, glibc, resolve: fakeResolver() });
    const parsed = JSON.parse(serializeLockFile(lock)) as { envs: Record<string, { request: { indexUrl: string | null; channels: string[] }; packages: unknown[] }> };
    const entry = Object.values(parsed.envs)[0]!;
    if (sources.indexUrl !== undefined) entry.request.indexUrl = sources.indexUrl;
    if (sources.channels !== undefined) entry.request.channels = sources.channels;
    const filename = kind === 'pypi' ? 'canary-1.0-py3-none-any.whl' : 'canary-1.0-0.conda';
    entry.packages.push({ kind, name: 'canary', version: '1.0', build: kind === 'pypi' ? '' : '0', url, sha256: '1'.repeat(64), size: secret.length, filename });
    await writeFile(lockFile, JSON.stringify(parsed));
    return readLockFile(lockFile, { shownAs: 'flow.prebuilt.lock' }).catch((e: unknown) => e);
  }
  /** An index (or channel) directory with a project folder, and a secret file outside it. */
  async function layout() {
    const index = join(dir, 'wheels', 'simple');
    await mkdir(join(index, 'canary'), { recursive: true });
    await mkdir(join(dir, 'home'));
    await writeFile(join(dir, 'home', 'config.json'), secret);
    return { index, secretFile: join(dir, 'home', 'config.json') };
  }
  const url = (path: string) => pathToFileURL(path).href;

  it('refuses a symlink inside a file: index that points out of it, naming the lock (as shown), the package and the fix, and nothing of the file', async () => {
    const { index, secretFile } = await layout();
    const wheel = join(index, 'canary', 'canary-1.0-py3-none-any.whl');
    await symlink(secretFile, wheel);
    const error = await lockWith('pypi', url(wheel), { indexUrl: url(index) });
    expect(InputError.isInstance(error), String(error)).toBe(true);
    const { message, hint, file } = error as InputError;
    expect(message).toBe(
      `Lock file flow.prebuilt.lock locks the wheel canary-1.0-py3-none-any.whl (canary) at ${url(wheel)}, which is not inside the env's file: index ${url(index)} (by the path it names, \`..\` and symlinks resolved); refusing to read it.`,
    );
    expect(hint).toContain('prebuilt lock --update flow.py');
    expect(hint).toContain('METAFLOW_PREBUILT_PYPI_INDEX_URL');
    expect(file).toBe(join(dir, 'flow.prebuilt.lock'));
    expect(`${message} ${hint}`).not.toMatch(new RegExp(`${secret.length} bytes|config\\.json|c2VjcmV0`));
  });

  it('refuses a symlink inside a file: channel that points out of it', async () => {
    const { index: channel, secretFile } = await layout();
    await mkdir(join(channel, 'linux-64'));
    const file = join(channel, 'linux-64', 'canary-1.0-0.conda');
    await symlink(secretFile, file);
    const error = await lockWith('conda', url(file), { channels: [url(channel)] });
    expect((error as InputError).message).toBe(
      `Lock file flow.prebuilt.lock locks the conda package canary-1.0-0.conda (canary) at ${url(file)}, which is not inside the env's file: channels ${url(channel)} (by the path it names, \`..\` and symlinks resolved); refusing to read it.`,
    );
  });

  it("refuses .., %2e%2e and %2f out of a file: index by the path a reader would open", async () => {
    const { index, secretFile } = await layout();
    const relative = secretFile.slice(dir.length + 1);
    for (const escaping of [
      `${url(index)}/canary/../../../${relative}`,
      `${url(index)}/canary/%2e%2e/%2E%2E/%2e%2e/${relative}`,
      `${url(index)}/canary/..%2f..%2f..%2f${relative}`,
    ]) {
      const error = await lockWith('pypi', escaping, { indexUrl: url(index) });
      expect(InputError.isInstance(error), escaping).toBe(true);
      expect((error as InputError).message, escaping).toContain("which is not inside the env's file: index");
    }
  });

  it('takes a file inside an index reached through a symlinked directory, by either path; a dangling name inside is left to the download', async () => {
    const { index } = await layout();
    const wheel = join(index, 'canary', 'canary-1.0-py3-none-any.whl');
    await writeFile(wheel, secret);
    await symlink(join(dir, 'wheels'), join(dir, 'linked'));
    const viaLink = join(dir, 'linked', 'simple');
    for (const [indexDir, file] of [
      [viaLink, join(viaLink, 'canary', 'canary-1.0-py3-none-any.whl')],
      [viaLink, wheel],
      [index, join(viaLink, 'canary', 'canary-1.0-py3-none-any.whl')],
      [index, join(index, 'canary', 'gone-1.0-py3-none-any.whl')],
    ] as const) {
      const read = await lockWith('pypi', url(file), { indexUrl: url(indexDir) });
      expect(InputError.isInstance(read), `${file} in ${indexDir}: ${String(read)}`).toBe(false);
    }
  });
});
