import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import { gzipSync } from 'node:zlib';
import { ConfigError, NetworkError, ResolutionError, urlCredentialsFromEnv } from '@prebuilt/core';
import { buildWheel, createTar, listenOnLoopback } from '@prebuilt/fixtures';
import { describe, expect, it } from 'vitest';
import { itOrFailInCi } from '../../../../test/services.js';
import { PackageCache } from '../cache/package-cache.js';
import { manylinuxTags, PIP_REPORT_MAX_BYTES, pipRequirement, resolvePypi } from './pip-resolver.js';

describe('pip requirements', () => {
  it.each([
    ['requests', '', 'requests'],
    ['requests', '2.32.3', 'requests==2.32.3'],
    ['requests', '>=2.21.0', 'requests>=2.21.0'],
    ['requests', '~=2.31', 'requests~=2.31'],
    ['requests[socks]', '!=2.0', 'requests[socks]!=2.0'],
    ['requests', '>=2.21, <3', 'requests>=2.21, <3'],
    ['requests', '==2.*', 'requests==2.*'],
    ['numpy', '1!2.0rc1.post2+local.7', 'numpy==1!2.0rc1.post2+local.7'],
  ])('%s %j → %s', (name, spec, requirement) => {
    expect(pipRequirement(name, spec)).toBe(requirement);
  });

  it('rejects names and specs pip would misread (an option, a URL, a space)', () => {
    expect(() => pipRequirement('--index-url', '')).toThrow(ResolutionError);
    expect(() => pipRequirement('requests', 'https://evil/x.whl')).toThrow(/Invalid PyPI version spec/);
    expect(() => pipRequirement('re quests', '')).toThrow(/Invalid PyPI package name/);
  });

  it.each([
    ['1.0; rm -rf /', /';' \(an environment marker or a shell command separator\) at position 4/],
    ['>=2 && echo', /'&' at position 5/],
    ['>=2 | cat', /'\|' at position 5/],
    ['>=2 $(id)', /'\$' at position 5/],
    ['>=2 --index-url x', /'>=2 --index-url x' is not an operator followed by a version/],
    ['>=2,,<3', /an empty clause/],
    ['>=2 <3', /'>=2 <3' is not an operator followed by a version/],
    ['1.0 echo', /'1.0 echo' is not a version/],
    ['>=', /'>=' is not an operator followed by a version/],
  ])('rejects the spec %j naming the field and the problem before pip sees it', (spec, problem) => {
    let error: unknown;
    try {
      pipRequirement('pandas', spec, ['start']);
    } catch (caught) {
      error = caught;
    }
    expect(ResolutionError.isInstance(error)).toBe(true);
    expect((error as Error).message).toContain(`Invalid PyPI version spec '${spec}' for package 'pandas' in the @pypi packages of step start`);
    expect((error as Error).message).toMatch(problem);
  });
});

describe('manylinux tags', () => {
  it('lists every manylinux tag up to the glibc version, with the legacy aliases', () => {
    const x86 = manylinuxTags('linux-64', '2.28');
    expect(x86[0]).toBe('manylinux_2_28_x86_64');
    expect(x86).toContain('manylinux2014_x86_64');
    expect(x86).toContain('manylinux2010_x86_64');
    expect(x86.at(-1)).toBe('manylinux1_x86_64');
    expect(x86).not.toContain('manylinux_2_29_x86_64');
    const arm = manylinuxTags('linux-aarch64', '2.17');
    expect(arm).toEqual(['manylinux_2_17_aarch64', 'manylinux2014_aarch64']);
    expect(() => manylinuxTags('linux-64', 'musl')).toThrow(/glibc version 'musl'/);
  });
});

describe('pip with an index URL that carries credentials (a fake pip: a script standing in for python -m pip)', () => {
  it('gives pip the URL with its credentials, and redacts them in the error made of its output', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'prebuilt-fake-pip-'));
    try {
      const argsFile = join(dir, 'args');
      const fakePython = join(dir, 'fake-python');
      const indexFile = join(dir, 'index-file');
      // Prints what a failing pip prints about its index (pip masks only sometimes), and records its
      // arguments and the requirements file it is given with -r (its content and mode).
      await writeFile(
        fakePython,
        `#!/bin/sh\necho "$@" > '${argsFile}'\nwhile [ $# -gt 0 ]; do if [ "$1" = -r ]; then stat -c %a "$2" > '${indexFile}'; cat "$2" >> '${indexFile}'; fi; shift; done\necho "ERROR: Could not fetch URL http://ci:t0ken@127.0.0.1:9/simple/tinyhttp/: 503" >&2\nexit 1\n`,
      );
      await chmod(fakePython, 0o755);
      const credentials = urlCredentialsFromEnv({ PIP_INDEX_URL: 'file://unused', METAFLOW_PREBUILT_PYPI_INDEX_URL: 'http://ci:t0ken@127.0.0.1:9/simple' });
      const error = await resolvePypi(
        { packages: { tinyhttp: '' }, pythonVersion: '3.11.9', platform: 'linux-64', glibc: '2.28', indexUrl: 'file:///nonexistent-index', steps: ['end'] },
        { python: fakePython, credentials, env: {} },
      ).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ResolutionError);
      expect((error as Error).message).toContain('http://***@127.0.0.1:9/simple/tinyhttp/: 503');
      expect(`${(error as Error).message} ${(error as ResolutionError).hint}`).not.toContain('t0ken');

      // An index of a configured origin gets its credentials back, for pip only (our probe of it sends them as Basic auth).
      const seen: (string | undefined)[] = [];
      const index = createServer((req, res) => {
        seen.push(req.headers.authorization);
        res.writeHead(404).end();
      });
      await new Promise<void>((resolve) => index.listen(0, '127.0.0.1', resolve));
      const host = `127.0.0.1:${(index.address() as AddressInfo).port}`;
      try {
        await resolvePypi(
          { packages: { tinyhttp: '' }, pythonVersion: '3.11.9', platform: 'linux-64', glibc: '2.28', indexUrl: `http://${host}/simple`, steps: ['end'] },
          { python: fakePython, credentials: urlCredentialsFromEnv({ PIP_INDEX_URL: `http://ci:t0ken@${host}/simple` }), env: {} },
        ).catch((e: unknown) => e);
      } finally {
        index.close();
      }
      // Not on the command line, which every user of the machine reads (ps): in a file only this user reads.
      const args = await readFile(argsFile, 'utf8');
      expect(args).not.toContain('t0ken');
      expect(args).toMatch(/ -r \S+\/index-url\.txt tinyhttp\n$/);
      expect(args).not.toContain('--index-url');
      expect(await readFile(indexFile, 'utf8')).toBe(`600\n--index-url http://ci:t0ken@${host}/simple\n`);
      expect(seen).toEqual([`Basic ${Buffer.from('ci:t0ken').toString('base64')}`]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('never runs a python3 found only through a relative PATH entry (a checked-out flow\'s directory): exit 2 saying why', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'prebuilt-pip-relative-'));
    try {
      const marker = join(dir, 'ran');
      await writeFile(join(dir, 'python3'), `#!/bin/sh\n: > '${marker}'\nexit 1\n`);
      await chmod(join(dir, 'python3'), 0o755);
      const here = relative(process.cwd(), dir);
      const error = await resolvePypi(
        { packages: { tinyhttp: '' }, pythonVersion: '3.11.9', platform: 'linux-64', glibc: '2.28', indexUrl: 'file:///nonexistent-index', steps: ['end'] },
        { env: { PATH: `/nonexistent:${here}` } },
      ).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).message).toContain(`the Python interpreter 'python3' that runs pip was found only in '${here}', a PATH entry relative to the current directory`);
      expect((error as ConfigError).hint).toContain('METAFLOW_PREBUILT_PYTHON');
      await expect(readFile(marker)).rejects.toThrow(/ENOENT/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('pip cancelled', () => {
  it('leaves none of its temp directories: they are made in its work directory (TMPDIR), removed whatever happens', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'prebuilt-fake-pip-'));
    try {
      // The TMPDIR pip would inherit; pip makes its directories there (pip-target-*, pip-install-* …), and a
      // pip killed by the cancel (SIGTERM) never removes them.
      const inherited = join(dir, 'tmp');
      await mkdir(inherited);
      const fakePython = join(dir, 'fake-python');
      const started = join(dir, 'started');
      await writeFile(fakePython, `#!/bin/sh\nmkdir "\${TMPDIR:-/tmp}/pip-target-test" "\${TMPDIR:-/tmp}/pip-install-test"\n: > '${started}'\nexec sleep 30\n`);
      await chmod(fakePython, 0o755);
      const abort = new AbortController();
      const resolving = resolvePypi(
        { packages: { tinyhttp: '' }, pythonVersion: '3.11.9', platform: 'linux-64', glibc: '2.28', indexUrl: 'file:///nonexistent-index', steps: ['end'] },
        { python: fakePython, env: { PATH: process.env['PATH'], TMPDIR: inherited }, signal: abort.signal },
      ).catch((e: unknown) => e);
      // Cancelled once pip has made its directories, wherever it made them.
      for (let waited = 0; !existsSync(started) && waited < 10_000; waited += 20) await new Promise((resolve) => setTimeout(resolve, 20));
      expect(existsSync(started)).toBe(true);
      abort.abort();
      expect((await resolving) as Error).toBeInstanceOf(Error);
      expect(await readdir(inherited)).toEqual([]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('pip printing without end', () => {
  it('keeps a bounded tail of its output (1 GiB printed) and says in the error that the output was cut', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'prebuilt-fake-pip-'));
    try {
      // A hostile index or package can make pip print without end; the fake prints 1 GiB to each stream, then fails.
      const fakePython = join(dir, 'fake-python');
      await writeFile(fakePython, `#!/bin/sh\nyes 'progress line' | head -c 1073741824\nyes 'ERROR: spam from a hostile index' | head -c 1073741824 >&2\necho >&2\necho 'ERROR: the last word' >&2\nexit 1\n`);
      await chmod(fakePython, 0o755);
      const error = await resolvePypi(
        { packages: { tinyhttp: '' }, pythonVersion: '3.11.9', platform: 'linux-64', glibc: '2.28', indexUrl: 'file:///nonexistent-index', steps: ['end'] },
        { python: fakePython, env: { PATH: process.env['PATH'] } },
      ).catch((e: unknown) => e);
      expect(ResolutionError.isInstance(error)).toBe(true);
      const message = (error as Error).message;
      expect(message.length).toBeLessThan(256 * 1024);
      expect(message).toContain('the last word');
      expect(message).toMatch(/pip printed \d+ bytes to stderr; only its last \d+ are kept/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 120_000);
});

const noPip = spawnSync('python3', ['-m', 'pip', '--version']).status === 0 ? undefined : 'needs python3 with pip: apt-get install -y python3-pip (scripts/setup.sh does)';

/**
 * The host pips the wheels-only launcher's tests run on, one per distinct pip: `python3` on PATH
 * (the resolver's default), Debian's /usr/bin/python3 when its pip is another one (pip 23.0.1 beside
 * a pyenv's), and the interpreters PREBUILT_TEST_PIP_PYTHONS names (colon-separated; scripts/test.sh
 * sets it to Debian trixie's and forky's pips, scripts/test-pips.sh). That variable unset, or an
 * interpreter named there without a working pip, is a failing test in CI (`broken`), not one left out.
 */
function hostPips(): { pips: { python: string; pip: string }[]; broken: { what: string; why: string }[] } {
  const byLocation = new Map<string, { python: string; pip: string }>();
  const broken: { what: string; why: string }[] = [];
  const extra = (process.env['PREBUILT_TEST_PIP_PYTHONS'] ?? '').split(':').filter((python) => python !== '');
  for (const python of ['python3', '/usr/bin/python3', ...extra]) {
    const result = spawnSync(python, ['-m', 'pip', '--version'], { encoding: 'utf8' });
    const match = result.status === 0 ? /^pip (\S+) from (.+) \(python /.exec(result.stdout) : null;
    if (match) {
      if (!byLocation.has(match[2]!)) byLocation.set(match[2]!, { python, pip: match[1]! });
    } else if (extra.includes(python)) {
      broken.push({ what: `the pip of ${python}`, why: `PREBUILT_TEST_PIP_PYTHONS names ${python}, whose pip does not run (${result.error?.message ?? (result.stderr || result.stdout).trim()}): run bash scripts/test-pips.sh` });
    }
  }
  if (process.env['PREBUILT_TEST_PIP_PYTHONS'] === undefined) {
    broken.push({ what: 'the newer Debian pips', why: 'needs PREBUILT_TEST_PIP_PYTHONS=$(bash scripts/test-pips.sh), the newer Debian pips (scripts/test.sh sets it)' });
  }
  return { pips: [...byLocation.values()], broken };
}

const { pips: HOST_PIPS, broken: BROKEN_PIPS } = hostPips();
/** Each host pip (python3's alone, its test skipped or failed in CI, when it has none), named for a test title. */
const LAUNCHER_PIPS = HOST_PIPS.length > 0 ? HOST_PIPS.map(({ python, pip }) => ({ python, title: ` (pip ${pip} of ${python})` })) : [{ python: 'python3', title: '' }];

/** A wheel whose bytes stand for a file of the user's (a credential), at a path a hostile index may name. */
function canaryWheel() {
  return buildWheel({ name: 'canary', version: '1.0', files: [{ path: 'canary/__init__.py', content: 'SECRET = "canary-4b1d7e2f-user-credential"\n' }] });
}

const page = (href: string) => `<!DOCTYPE html>\n<html><body><a href="${href}">canary-1.0-py3-none-any.whl</a></body></html>\n`;

describe('pip: wheels at file: URLs', () => {
  itOrFailInCi('an http index linking a file: URL is refused naming the index and the package; the file is never hashed or sized by us', noPip, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'prebuilt-pip-file-link-'));
    const canary = canaryWheel();
    const planted = join(dir, 'home', canary.filename);
    await mkdir(join(dir, 'home'));
    await writeFile(planted, canary.bytes);
    const link = `${pathToFileURL(planted).href}#sha256=${canary.sha256}`;
    const requests: string[] = [];
    const server = await listenOnLoopback(
      createServer((request, response) => {
        requests.push(request.url ?? '');
        if (request.url === '/simple/canary/') {
          response.writeHead(200, { 'content-type': 'text/html' }).end(page(link));
        } else response.writeHead(404).end();
      }),
    );
    try {
      const indexUrl = `${server.url}/simple`;
      const error = await resolvePypi(
        { packages: { canary: '' }, pythonVersion: '3.11.9', platform: 'linux-64', glibc: '2.28', indexUrl, steps: ['start'] },
        { isolated: true },
      ).catch((e: unknown) => e);
      expect(ResolutionError.isInstance(error)).toBe(true);
      const message = (error as Error).message;
      expect(message).toBe(
        `PyPI index ${indexUrl} names ${pathToFileURL(planted).href} for canary (step start), a file on this machine; only a file: index (a local directory) may name local files. Refusing to lock it.`,
      );
      expect((error as ResolutionError).hint).toContain('METAFLOW_PREBUILT_PYPI_INDEX_URL=file:///');
      expect(message).not.toContain(canary.sha256);
      expect(requests).toContain('/simple/canary/');
      // The planted file is as it was.
      expect(await readFile(planted)).toEqual(canary.bytes);
    } finally {
      await server.close();
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);

  itOrFailInCi("wheels of a local directory named only in pip's configuration (find-links, or a file: index-url, in pip.conf) are refused: what, why and the fix (a file: index in METAFLOW_PREBUILT_PYPI_INDEX_URL)", noPip, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'prebuilt-pip-conf-links-'));
    const canary = canaryWheel();
    const wheelFile = join(dir, 'wheels', canary.filename);
    await mkdir(join(dir, 'wheels'));
    await writeFile(wheelFile, canary.bytes);
    await mkdir(join(dir, 'simple', 'canary'), { recursive: true });
    await writeFile(join(dir, 'simple', 'canary', 'index.html'), page(`${pathToFileURL(wheelFile).href}#sha256=${canary.sha256}`));
    const expected = (source: string) =>
      `pip found canary (step start) at ${pathToFileURL(wheelFile).href}, a file on this machine, named by ${source}: ` +
      'prebuilt locks a local wheel only from a file: index it is given itself (METAFLOW_PREBUILT_PYPI_INDEX_URL), so that the lock says where the wheel comes from and no index can point a build at files of this machine. Refusing to lock it.';
    const hint =
      'To use wheels of a local directory, make it a file: index and give it to prebuilt: METAFLOW_PREBUILT_PYPI_INDEX_URL=file:///path/to/simple ' +
      '(a folder per project, each with an index.html linking its wheels), and take the find-links out of your pip configuration (or set METAFLOW_PREBUILT_PIP_ISOLATED=1 to ignore it). ' +
      'If an index named the file, it is misconfigured or hostile: use another.';
    try {
      for (const [conf, source] of [
        [`[global]\nno-index = true\nfind-links = ${join(dir, 'wheels')}\n`, "pip's configuration (a find-links, or a file: index-url, in pip.conf or PIP_* variables)"],
        [`[global]\nindex-url = ${pathToFileURL(join(dir, 'simple')).href}\n`, "pip's configuration (a find-links, or a file: index-url, in pip.conf or PIP_* variables)"],
      ] as const) {
        await writeFile(join(dir, 'pip.conf'), conf);
        const error = await resolvePypi(
          { packages: { canary: '' }, pythonVersion: '3.11.9', platform: 'linux-64', glibc: '2.28', indexUrl: null, steps: ['start'] },
          { env: { PATH: process.env['PATH'], HOME: dir, PIP_CONFIG_FILE: join(dir, 'pip.conf') } },
        ).catch((e: unknown) => e);
        expect(ResolutionError.isInstance(error), String(error)).toBe(true);
        expect((error as ResolutionError).exitCode).toBe(2);
        expect((error as Error).message).toBe(expected(source));
        expect((error as ResolutionError).hint).toBe(hint);
      }
      // An http(s) index named to prebuilt, pip's configuration adding a find-links: either may have named it.
      await writeFile(join(dir, 'pip.conf'), `[global]\nfind-links = ${join(dir, 'wheels')}\n`);
      const server = await listenOnLoopback(createServer((_request, response) => response.writeHead(404).end()));
      try {
        const indexUrl = `${server.url}/simple`;
        const error = await resolvePypi(
          { packages: { canary: '' }, pythonVersion: '3.11.9', platform: 'linux-64', glibc: '2.28', indexUrl, steps: ['start'] },
          { env: { PATH: process.env['PATH'], HOME: dir, PIP_CONFIG_FILE: join(dir, 'pip.conf') } },
        ).catch((e: unknown) => e);
        expect((error as Error).message).toBe(expected(`the PyPI index ${indexUrl} or a find-links of pip's configuration (pip.conf, PIP_FIND_LINKS)`));
      } finally {
        await server.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);

  itOrFailInCi('a file: index (a local directory the user chose) may name its wheels inside it by file: URLs, which are locked', noPip, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'prebuilt-pip-file-index-'));
    const canary = canaryWheel();
    const wheelFile = join(dir, 'simple', 'canary', canary.filename);
    await mkdir(join(dir, 'simple', 'canary'), { recursive: true });
    await writeFile(wheelFile, canary.bytes);
    await writeFile(join(dir, 'simple', 'canary', 'index.html'), page(`${pathToFileURL(wheelFile).href}#sha256=${canary.sha256}`));
    try {
      const locked = await resolvePypi(
        { packages: { canary: '' }, pythonVersion: '3.11.9', platform: 'linux-64', glibc: '2.28', indexUrl: pathToFileURL(join(dir, 'simple')).href, steps: [] },
        { isolated: true },
      );
      expect(locked).toEqual([
        { kind: 'pypi', name: 'canary', version: '1.0', build: '', url: pathToFileURL(wheelFile).href, sha256: canary.sha256, size: canary.bytes.length, filename: canary.filename },
      ]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);

  itOrFailInCi('a file: index naming a wheel outside it, or holding a symlink that points out, is refused before the file is hashed or sized', noPip, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'prebuilt-pip-file-index-'));
    const canary = canaryWheel();
    const outside = join(dir, 'wheels', canary.filename);
    const linked = join(dir, 'simple', 'canary', canary.filename);
    await mkdir(join(dir, 'wheels'));
    await mkdir(join(dir, 'simple', 'canary'), { recursive: true });
    await writeFile(outside, canary.bytes);
    await symlink(outside, linked);
    const indexUrl = pathToFileURL(join(dir, 'simple')).href;
    try {
      for (const named of [outside, linked]) {
        await writeFile(join(dir, 'simple', 'canary', 'index.html'), page(`${pathToFileURL(named).href}#sha256=${canary.sha256}`));
        const error = await resolvePypi({ packages: { canary: '' }, pythonVersion: '3.11.9', platform: 'linux-64', glibc: '2.28', indexUrl, steps: ['start'] }, { isolated: true }).catch((e: unknown) => e);
        expect(error, named).toBeInstanceOf(ResolutionError);
        expect((error as ResolutionError).message).toBe(
          `PyPI index ${indexUrl} names ${pathToFileURL(named).href} for canary (step start), which is not inside the index once \`..\` and symlinks are resolved; refusing to lock it.`,
        );
        expect((error as ResolutionError).hint).toContain('copy the wheel into the index directory');
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);
});

/** A source tree whose PEP 517 backend (in the tree) leaves `canary` when pip so much as imports it, as building any sdist would. */
function hostileSourceTree(canary: string): { path: string; data: Buffer }[] {
  const backend = [
    'import pathlib',
    `pathlib.Path(${JSON.stringify(canary)}).write_text("built on the lock machine")`,
    'def get_requires_for_build_wheel(config_settings=None):',
    '    return []',
    'def prepare_metadata_for_build_wheel(directory, config_settings=None):',
    '    import os',
    '    os.makedirs(os.path.join(directory, "bar-1.0.dist-info"))',
    '    with open(os.path.join(directory, "bar-1.0.dist-info", "METADATA"), "w") as f:',
    '        f.write("Metadata-Version: 2.1\\nName: bar\\nVersion: 1.0\\n")',
    '    return "bar-1.0.dist-info"',
    '',
  ].join('\n');
  const pyproject = '[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n';
  return [
    { path: 'pyproject.toml', data: Buffer.from(pyproject) },
    { path: 'backend.py', data: Buffer.from(backend) },
    { path: 'PKG-INFO', data: Buffer.from('Metadata-Version: 2.1\nName: bar\nVersion: 1.0\n') },
  ];
}

describe('pip: wheels only, whatever a wheel depends on', () => {
  // --only-binary=:all: keeps pip to wheels among an index's files, not for a direct URL: a published
  // wheel whose metadata says `Requires-Dist: bar @ <sdist URL>` made pip fetch that sdist and run its
  // build backend on the machine that locks (with the index's credentials at hand).
  itOrFailInCi('a pip whose preparer prebuilt cannot wrap is not run at all (refused saying why), rather than run unguarded', noPip, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'prebuilt-pip-unguarded-'));
    try {
      // A `pip` without the internals the guard wraps, first on the path; it would leave a marker if its main ran.
      const marker = join(dir, 'ran');
      await mkdir(join(dir, 'pip'));
      await writeFile(join(dir, 'pip', '__init__.py'), '__version__ = "99.0"\n');
      await writeFile(join(dir, 'pip', '__main__.py'), `open(${JSON.stringify(marker)}, "w").close()\n`);
      const error = await resolvePypi(
        { packages: { tinyhttp: '' }, pythonVersion: '3.11.9', platform: 'linux-64', glibc: '2.28', indexUrl: 'file:///nonexistent-index', steps: ['end'] },
        { isolated: true, env: { ...process.env, PYTHONPATH: dir } },
      ).catch((e: unknown) => e);
      expect(ResolutionError.isInstance(error)).toBe(true);
      expect((error as Error).message).toContain("prebuilt cannot keep pip 99.0 to wheels (No module named 'pip._internal'), so it does not run it");
      expect(existsSync(marker)).toBe(false);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  // Each host pip: the launcher wraps pip's internals, which a pip release may change.
  for (const { python, title } of LAUNCHER_PIPS) {
    for (const kind of ['an sdist at an http URL', 'a source directory at a file: URL']) {
      itOrFailInCi(`a published wheel's dependency on ${kind} is refused naming it, and none of its code runs${title}`, noPip, async () => {
        const dir = await mkdtemp(join(tmpdir(), 'prebuilt-pip-sdist-dep-'));
        const canary = join(dir, 'CANARY');
        const tree = hostileSourceTree(canary);
        await mkdir(join(dir, 'bar-1.0'));
        for (const file of tree) await writeFile(join(dir, 'bar-1.0', file.path), file.data);
        const sdist = gzipSync(createTar(tree.map((file) => ({ type: 'file' as const, path: `bar-1.0/${file.path}`, data: file.data, mode: 0o644 }))));
        const { server, requests, dependency, wheel } = await indexOfFooDependingOn(
          new Map([['/files/bar-1.0.tar.gz', sdist]]),
          (url) => (kind.includes('http') ? `bar @ ${url}/files/bar-1.0.tar.gz` : `bar @ ${pathToFileURL(join(dir, 'bar-1.0')).href}`),
        );
        try {
          const error = await resolveFoo(server.url, python);
          // pip did read foo's wheel, and found the dependency there.
          expect(requests).toContain(`/files/${wheel.filename}`);
          expect(existsSync(canary)).toBe(false);
          expect(ResolutionError.isInstance(error)).toBe(true);
          const message = (error as Error).message;
          expect(message).toContain('Cannot resolve the PyPI packages of step start');
          expect(message).toContain(`: prebuilt: foo depends on ${dependency.replace(' @ ', ' at ')}, which is not a wheel: building it would run its code on this machine, and prebuilt locks wheels only.`);
        } finally {
          await server.close();
          await rm(dir, { recursive: true, force: true });
        }
      }, 60_000);
    }

    // pip's Link.is_wheel looks at the name only: a VCS URL or a local directory whose last part is a
    // wheel's file name passed the guard, and pip cloned the repository (any host, with the user's git and SSH
    // configuration) or took the directory for a wheel.
    for (const kind of ['a git repository whose URL ends in a wheel\'s file name', 'a directory named like a wheel']) {
      itOrFailInCi(`a published wheel's dependency on ${kind} is refused before anything is fetched${title}`, noPip, async () => {
        const dir = await mkdtemp(join(tmpdir(), 'prebuilt-pip-whl-named-'));
        const canary = join(dir, 'CANARY');
        await mkdir(join(dir, 'bar-1.0-py3-none-any.whl'));
        for (const file of hostileSourceTree(canary)) await writeFile(join(dir, 'bar-1.0-py3-none-any.whl', file.path), file.data);
        const { server, requests, wheel } = await indexOfFooDependingOn(new Map(), (url) =>
          kind.includes('git') ? `bar @ git+${url}/repos/bar-1.0-py3-none-any.whl` : `bar @ ${pathToFileURL(join(dir, 'bar-1.0-py3-none-any.whl')).href}/`,
        );
        try {
          const error = await resolveFoo(server.url, python);
          expect(requests).toContain(`/files/${wheel.filename}`);
          // No clone was tried: git's first request would be /repos/bar-1.0-py3-none-any.whl/info/refs.
          expect(requests.filter((url) => url.startsWith('/repos/'))).toEqual([]);
          expect(existsSync(canary)).toBe(false);
          expect(ResolutionError.isInstance(error)).toBe(true);
          expect((error as Error).message).toContain(': prebuilt: foo depends on bar at ');
          expect((error as Error).message).toContain(', which is not a wheel: building it would run its code on this machine, and prebuilt locks wheels only.');
        } finally {
          await server.close();
          await rm(dir, { recursive: true, force: true });
        }
      }, 60_000);
    }
  }

  for (const { what, why } of BROKEN_PIPS) itOrFailInCi(`refuses what is not a wheel on ${what}`, why, () => undefined);
});

describe('pip: an index that trickles (its whole run is bounded, not only each read)', () => {
  // pip's own --timeout (15 s) ends a read that gets no byte; an index sending a byte every half
  // second never trips it, and held `prebuilt lock` for ever.
  itOrFailInCi('pip is stopped at its deadline: a NetworkError (exit 1) saying what, why and the setting, and no pip is left reading', noPip, async () => {
    let pipConnections = 0;
    let pipRequests = 0;
    const server = await listenOnLoopback(
      createServer((request, response) => {
        if (request.url !== '/simple/drip/') return void response.writeHead(404).end();
        response.writeHead(200, { 'content-type': 'text/html' }).write('<!DOCTYPE html>');
        // Our own probe reads the headers only; pip's request is the one that stays.
        if (!String(request.headers['user-agent']).startsWith('pip/')) return;
        pipRequests++;
        pipConnections++;
        const timer = setInterval(() => response.write(' '), 500);
        request.socket.on('close', () => {
          pipConnections--;
          clearInterval(timer);
        });
      }),
    );
    try {
      const indexUrl = `${server.url}/simple`;
      const started = performance.now();
      const error = await resolvePypi(
        { packages: { drip: '' }, pythonVersion: '3.11.9', platform: 'linux-64', glibc: '2.28', indexUrl, steps: ['start'] },
        { isolated: true, timeoutMs: 10_000 },
      ).catch((e: unknown) => e);
      const elapsed = performance.now() - started;
      expect(NetworkError.isInstance(error), String(error)).toBe(true);
      const failure = error as NetworkError;
      expect(failure.message).toBe(
        `pip did not finish resolving the PyPI packages of step start within 10 s (METAFLOW_PREBUILT_PIP_TIMEOUT); it was stopped. ` +
          `It was still reading ${indexUrl}: an index that is very slow, or that trickles its answers a byte at a time, keeps pip waiting (pip's own --timeout only ends a read that gets no byte at all).`,
      );
      expect(failure.hint).toContain('raise METAFLOW_PREBUILT_PIP_TIMEOUT (seconds, default 3600)');
      expect(failure.hint).toContain('METAFLOW_PREBUILT_PYPI_INDEX_URL');
      expect(failure.exitCode).toBe(1);
      expect(failure.reason).toBe('deadline');
      expect(failure.target).toBe(new URL(server.url).host);
      // pip did reach the trickling page, and was stopped at the deadline, well before its own 15 s.
      expect(pipRequests).toBeGreaterThan(0);
      expect(elapsed).toBeGreaterThanOrEqual(9900);
      expect(elapsed).toBeLessThan(20_000);
      for (let waited = 0; pipConnections > 0 && waited < 5000; waited += 50) await new Promise((resolve) => setTimeout(resolve, 50));
      expect(pipConnections).toBe(0);
    } finally {
      await server.close();
    }
  }, 60_000);

  it('reads the deadline from METAFLOW_PREBUILT_PIP_TIMEOUT of its env (a fake pip that never ends)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'prebuilt-fake-pip-'));
    try {
      const fakePython = join(dir, 'fake-python');
      await writeFile(fakePython, '#!/bin/sh\nexec sleep 30\n');
      await chmod(fakePython, 0o755);
      const started = performance.now();
      const error = await resolvePypi(
        { packages: { tinyhttp: '' }, pythonVersion: '3.11.9', platform: 'linux-64', glibc: '2.28', indexUrl: null, steps: [] },
        { python: fakePython, env: { PATH: process.env['PATH'], METAFLOW_PREBUILT_PIP_TIMEOUT: '0.5' } },
      ).catch((e: unknown) => e);
      expect(NetworkError.isInstance(error), String(error)).toBe(true);
      expect((error as Error).message).toContain("pip did not finish resolving the PyPI packages of the env within 0.5 s (METAFLOW_PREBUILT_PIP_TIMEOUT); it was stopped. It was still reading pip's configured index");
      expect(performance.now() - started).toBeLessThan(5000);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("pip's report: read within a bound", () => {
  /** A fake pip that exits 0 after `make` made its --report path (a shell command on "$report"). */
  async function withReport(make: string): Promise<unknown> {
    const dir = await mkdtemp(join(tmpdir(), 'prebuilt-fake-pip-'));
    try {
      const fakePython = join(dir, 'fake-python');
      await writeFile(fakePython, `#!/bin/sh\nwhile [ $# -gt 0 ]; do if [ "$1" = --report ]; then report="$2"; fi; shift; done\n${make}\nexit 0\n`);
      await chmod(fakePython, 0o755);
      return await resolvePypi(
        { packages: { tinyhttp: '' }, pythonVersion: '3.11.9', platform: 'linux-64', glibc: '2.28', indexUrl: 'file:///nonexistent-index', steps: ['start'] },
        { python: fakePython, env: { PATH: process.env['PATH'] } },
      ).catch((e: unknown) => e);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  it('refuses a report over the bound before reading it (what, the bound, and that the index is to blame)', async () => {
    // Sparse: 128 MiB and a byte that take no disk.
    const error = await withReport(`truncate -s ${PIP_REPORT_MAX_BYTES + 1} "$report"`);
    expect(ResolutionError.isInstance(error), String(error)).toBe(true);
    expect((error as Error).message).toBe(`Cannot resolve the PyPI packages of step start: pip's report has ${PIP_REPORT_MAX_BYTES + 1} bytes, more than the 128 MiB prebuilt reads into memory.`);
    expect((error as ResolutionError).hint).toContain('The index is misconfigured or hostile: use another (METAFLOW_PREBUILT_PYPI_INDEX_URL');
    expect((error as ResolutionError).exitCode).toBe(2);
  });

  it.each([
    ['a FIFO (never waited on)', 'mkfifo "$report"', "pip's report is not a regular file."],
    ['a symbolic link', 'ln -s /etc/passwd "$report"', "pip's report is a symbolic link, not a file pip wrote."],
    ['missing', ':', "pip's report is missing: pip ended without writing it."],
    ['no JSON', 'printf \'{"install": [\' > "$report"', "pip's report is not a JSON object ("],
    ['JSON but no object', 'printf \'[1]\' > "$report"', "pip's report is not a JSON object (not an object)."],
    // Node 22's JSON.parse quotes the text around the error (Node 20's gives a position only).
    ['no JSON, quoting a URL with credentials', 'printf \'{"url": "http://ci:t0ken@127.0.0.1:9/simple" x\' > "$report"', "pip's report is not a JSON object ("],
  ])('a report that is %s is a ResolutionError saying so', async (_what, make, expected) => {
    const error = await withReport(make);
    expect(ResolutionError.isInstance(error), String(error)).toBe(true);
    expect((error as Error).message).toContain(`Cannot resolve the PyPI packages of step start: ${expected}`);
    expect((error as Error).message).not.toContain('t0ken');
  });
});

describe("pip's report: what it says of a wheel is checked before it is locked", () => {
  // The lock's reader refuses a sha256 that is not 64 lowercase hex digits and a size that is no
  // safe integer: written as the index gave them, the lock was one no prebuilt command could read.
  const report = (url: string, sha256?: string) =>
    JSON.stringify({ install: [{ download_info: { url, ...(sha256 === undefined ? {} : { archive_info: { hashes: { sha256 } } }) }, metadata: { name: 'tinyhttp', version: '1.0' } }] });

  async function resolveWith(text: string): Promise<unknown> {
    const dir = await mkdtemp(join(tmpdir(), 'prebuilt-fake-pip-'));
    try {
      await writeFile(join(dir, 'report.json'), text);
      const fakePython = join(dir, 'fake-python');
      await writeFile(fakePython, `#!/bin/sh\nwhile [ $# -gt 0 ]; do if [ "$1" = --report ]; then cp "${join(dir, 'report.json')}" "$2"; fi; shift; done\nexit 0\n`);
      await chmod(fakePython, 0o755);
      return await resolvePypi(
        { packages: { tinyhttp: '' }, pythonVersion: '3.11.9', platform: 'linux-64', glibc: '2.28', indexUrl: null, steps: ['start'] },
        { python: fakePython, env: { PATH: process.env['PATH'] } },
      ).catch((e: unknown) => e);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  it.each([
    ['no hex', 'z'.repeat(64)],
    ['too short', 'ab'],
  ])('a sha256 that is %s is a ResolutionError naming the wheel and the index', async (_what, sha256) => {
    const error = await resolveWith(report('http://127.0.0.1:9/tinyhttp-1.0-py3-none-any.whl', sha256));
    expect(ResolutionError.isInstance(error), String(error)).toBe(true);
    expect((error as Error).message).toBe(
      `pip's configured index (https://pypi.org/simple unless your pip configuration names another) gives tinyhttp 1.0 (step start) the sha256 '${sha256}', which is not 64 hex digits; refusing to lock it.`,
    );
    expect((error as ResolutionError).exitCode).toBe(2);
  });

  it('an upper-case sha256 is locked in lower case', async () => {
    const server = await listenOnLoopback(createServer((_request, response) => response.writeHead(200, { 'content-length': '3' }).end()));
    try {
      const locked = await resolveWith(report(`${server.url}/tinyhttp-1.0-py3-none-any.whl`, 'AB'.repeat(32)));
      expect(locked).toMatchObject([{ name: 'tinyhttp', sha256: 'ab'.repeat(32), size: 3 }]);
    } finally {
      await server.close();
    }
  });

  it('a size the host gives that is no byte count a lock can hold is a ResolutionError', async () => {
    // 2^53 + 1: what HTTP parsers take (below 2^64), and no safe integer (Node's parser refuses more digits itself).
    const server = await listenOnLoopback(createServer((_request, response) => response.writeHead(200, { 'content-length': '9007199254740993' }).end()));
    try {
      const error = await resolveWith(report(`${server.url}/tinyhttp-1.0-py3-none-any.whl`, 'ab'.repeat(32)));
      expect(ResolutionError.isInstance(error), String(error)).toBe(true);
      expect((error as Error).message).toBe(
        `${server.url}/tinyhttp-1.0-py3-none-any.whl is 9007199254740993 bytes long, its host says (HEAD: Content-Length); no package file is that big. Refusing to lock it.`,
      );
    } finally {
      await server.close();
    }
  });
});

describe('pip: a dependency at a direct URL on another host', () => {
  // A wheel's `Requires-Dist: bar @ http://other-host/bar.whl` is fetched by pip from that host: locked
  // as pip found it, marked in the lock (directUrl, and who required it), and never sent the index's credentials.
  for (const { python, title } of LAUNCHER_PIPS) {
    itOrFailInCi(`is locked with directUrl naming the package that required it; neither pip, nor prebuilt when locking or downloading it, sends the index credential there${title}`, noPip, async () => {
      const seen = { index: [] as { url: string; authorization?: string }[], other: [] as { url: string; authorization?: string }[] };
      const files = { index: new Map<string, Uint8Array>(), other: new Map<string, Uint8Array>() };
      const serve = (name: 'index' | 'other') =>
        listenOnLoopback(
          createServer((request, response) => {
            seen[name].push({ url: request.url ?? '', ...(request.headers.authorization ? { authorization: request.headers.authorization } : {}) });
            const body = files[name].get(request.url ?? '');
            if (body) response.writeHead(200, { 'content-length': body.length, ...(request.url?.endsWith('/') ? { 'content-type': 'text/html' } : {}) }).end(request.method === 'HEAD' ? undefined : body);
            else response.writeHead(404).end();
          }),
        );
      const index = await serve('index');
      const other = await serve('other');
      const cacheDir = await mkdtemp(join(tmpdir(), 'prebuilt-direct-url-'));
      try {
        const bar = buildWheel({ name: 'bar', version: '2.0', files: [{ path: 'bar/__init__.py', content: '' }] });
        const barUrl = `${other.url}/wheels/${bar.filename}`;
        files.other.set(`/wheels/${bar.filename}`, bar.bytes);
        const foo = buildWheel({ name: 'foo', version: '1.0', requiresDist: [`bar @ ${barUrl}`], files: [{ path: 'foo/__init__.py', content: '' }] });
        files.index.set(`/files/${foo.filename}`, foo.bytes);
        files.index.set('/simple/foo/', Buffer.from(`<a href="/files/${foo.filename}#sha256=${foo.sha256}">${foo.filename}</a>\n`));
        const indexUrl = `${index.url}/simple`;
        const credentials = urlCredentialsFromEnv({ METAFLOW_PREBUILT_PYPI_INDEX_URL: `http://ci:t0ken@${new URL(index.url).host}/simple` });
        const locked = await resolvePypi(
          { packages: { foo: '' }, pythonVersion: '3.11.9', platform: 'linux-64', glibc: '2.28', indexUrl, steps: ['start'] },
          { isolated: true, credentials, python },
        );
        expect(locked).toEqual([
          { kind: 'pypi', name: 'bar', version: '2.0', build: '', url: barUrl, sha256: bar.sha256, size: bar.bytes.length, filename: bar.filename, directUrl: { requiredBy: ['foo'] } },
          { kind: 'pypi', name: 'foo', version: '1.0', build: '', url: `${index.url}/files/${foo.filename}`, sha256: foo.sha256, size: foo.bytes.length, filename: foo.filename },
        ]);
        // Building: the package cache downloads both with the same credentials.
        const cache = new PackageCache({ cacheDir, env: {}, credentials });
        await cache.ensure(locked);
        const basic = `Basic ${Buffer.from('ci:t0ken').toString('base64')}`;
        // The index got its credential (pip's requests, our probe and sizing, the download) …
        expect(seen.index.some((request) => request.authorization === basic)).toBe(true);
        expect(seen.index.filter((request) => request.url === `/files/${foo.filename}`).length).toBeGreaterThanOrEqual(2);
        // … the other host was read by pip, by the lock and by the download, and never got one.
        expect(seen.other.length).toBeGreaterThanOrEqual(2);
        expect(seen.other.filter((request) => request.authorization !== undefined)).toEqual([]);
      } finally {
        await index.close();
        await other.close();
        await rm(cacheDir, { recursive: true, force: true });
      }
    }, 60_000);
  }
});

/**
 * An index on 127.0.0.1 serving `files` by path (each request recorded), with foo 1.0, a published
 * wheel whose only dependency is `dependencyOf(the index's URL)`.
 */
async function indexOfFooDependingOn(files: Map<string, Buffer | Uint8Array>, dependencyOf: (url: string) => string) {
  const requests: string[] = [];
  const server = await listenOnLoopback(
    createServer((request, response) => {
      requests.push(request.url ?? '');
      const body = request.url === undefined ? undefined : files.get(request.url);
      if (body) response.writeHead(200, request.url?.endsWith('/') ? { 'content-type': 'text/html' } : {}).end(body);
      else response.writeHead(404).end();
    }),
  );
  const dependency = dependencyOf(server.url);
  const wheel = buildWheel({ name: 'foo', version: '1.0', requiresDist: [dependency], files: [{ path: 'foo/__init__.py', content: '' }] });
  files.set(`/files/${wheel.filename}`, wheel.bytes);
  files.set('/simple/foo/', Buffer.from(`<a href="/files/${wheel.filename}#sha256=${wheel.sha256}">${wheel.filename}</a>\n`));
  return { server, requests, dependency, wheel };
}

/** foo resolved by pip from the index at `url` (`python`'s pip): the error it fails with. */
function resolveFoo(url: string, python: string | undefined): Promise<unknown> {
  return resolvePypi(
    { packages: { foo: '' }, pythonVersion: '3.11.9', platform: 'linux-64', glibc: '2.28', indexUrl: `${url}/simple`, steps: ['start'] },
    { isolated: true, python },
  ).catch((e: unknown) => e);
}
