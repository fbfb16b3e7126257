import { execFile, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { lstat, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { itOrFailInCi } from '../../../../test/services.js';
import { buildWheel, type WheelSpec } from '@prebuilt/fixtures';
import { readZipEntries } from './__fixtures__/helpers.js';
import { ArchiveError, InstallError } from './errors.js';
import { PrefixWriter } from './prefix-writer.js';
import { installWheel, parseRecord } from './wheel-install.js';
import { readZipDirectory } from './zip-file.js';
import { lockedPackage, rawZip } from './__fixtures__/helpers.js';

const PREFIX = '/opt/prebuilt/envs/0123456789abcdef';
const SP = 'lib/python3.11/site-packages';

let parent: string;
let staging: string;
let packages: string;
beforeEach(async () => {
  parent = await mkdtemp(join(tmpdir(), 'prebuilt-wheel-install-'));
  packages = await mkdtemp(join(tmpdir(), 'prebuilt-wheel-install-pkgs-'));
  staging = join(parent, 'staging');
});
afterEach(async () => {
  await rm(parent, { recursive: true, force: true });
  await rm(packages, { recursive: true, force: true });
});

async function install(filename: string, bytes: Buffer, requested = true) {
  const writer = await PrefixWriter.open(staging);
  const [name = '', version = ''] = filename.split('-');
  const file = join(packages, filename);
  await writeFile(file, bytes);
  return installWheel(file, lockedPackage('pypi', filename, bytes, { name, version }), { writer, prefix: PREFIX, pythonVersion: '3.11.2', requested });
}

const noPip = spawnSync('python3', ['-m', 'pip', '--version']).status === 0 ? undefined : 'needs python3 with pip to compare with: apt-get install -y python3-pip (scripts/setup.sh does)';

function python3(args: string[]): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile('python3', args, { encoding: 'utf8', env: { ...process.env, PYTHONIOENCODING: 'utf-8', PIP_CONFIG_FILE: '/dev/null' } }, (error, stdout, stderr) =>
      error ? reject(new Error(`${error.message}\n${stderr}`)) : resolve(stdout),
    ),
  );
}

const sha256Record = (data: string | Buffer): string => `sha256=${createHash('sha256').update(data).digest('base64url')}`;

const TINYHTTP: WheelSpec = {
  name: 'tinyhttp',
  version: '0.3.0',
  files: [
    { path: 'tinyhttp/__init__.py', content: '__version__ = "0.3.0"\n' },
    { path: 'tinyhttp/cli.py', content: 'def main():\n    return 0\n' },
  ],
  consoleScripts: { tinyhttp: 'tinyhttp.cli:main' },
  guiScripts: { 'tinyhttp-gui': 'tinyhttp.cli:main' },
  scripts: [{ path: 'tinyhttp-env', content: '#!python\nimport sys\nprint(sys.executable)\n' }],
  data: [{ path: 'share/tinyhttp/NOTICE', content: 'notice\n' }],
};

describe('installWheel', () => {
  it('installs purelib files, .data scripts and data, entry points, INSTALLER, REQUESTED and a rewritten RECORD', async () => {
    const wheel = buildWheel(TINYHTTP);
    const result = await install(wheel.filename, wheel.bytes);
    const distInfo = `${SP}/tinyhttp-0.3.0.dist-info`;
    expect(result.distInfo).toBe(distInfo);

    expect(await readFile(join(staging, SP, 'tinyhttp/__init__.py'), 'utf8')).toBe('__version__ = "0.3.0"\n');
    const envScript = await readFile(join(staging, 'bin/tinyhttp-env'), 'utf8');
    expect(envScript).toBe(`#!${PREFIX}/bin/python\nimport sys\nprint(sys.executable)\n`);
    expect((await lstat(join(staging, 'bin/tinyhttp-env'))).mode & 0o777).toBe(0o755);
    expect(await readFile(join(staging, 'share/tinyhttp/NOTICE'), 'utf8')).toBe('notice\n');

    for (const script of ['tinyhttp', 'tinyhttp-gui']) {
      const text = await readFile(join(staging, 'bin', script), 'utf8');
      expect(text.split('\n')[0]).toBe(`#!${PREFIX}/bin/python`);
      expect(text).toContain('from tinyhttp.cli import main');
      expect((await lstat(join(staging, 'bin', script))).mode & 0o777).toBe(0o755);
    }
    expect(await readFile(join(staging, distInfo, 'INSTALLER'), 'utf8')).toBe('prebuilt\n');
    expect(await readFile(join(staging, distInfo, 'REQUESTED'), 'utf8')).toBe('');

    const rows = parseRecord(await readFile(join(staging, distInfo, 'RECORD'), 'utf8'));
    const paths = rows.map((r) => r.path);
    expect(paths).toContain('../../../bin/tinyhttp');
    expect(paths).toContain('../../../bin/tinyhttp-env');
    expect(paths).toContain('../../../share/tinyhttp/NOTICE');
    expect(paths).toContain('tinyhttp-0.3.0.dist-info/INSTALLER');
    expect(paths).toContain('tinyhttp-0.3.0.dist-info/REQUESTED');
    expect(rows.at(-1)).toEqual({ path: 'tinyhttp-0.3.0.dist-info/RECORD', hash: '', size: '' });
    for (const row of rows.slice(0, -1)) {
      const content = await readFile(join(staging, SP, row.path));
      expect(row.hash).toBe(`sha256=${createHash('sha256').update(content).digest('base64url')}`);
      expect(Number(row.size)).toBe(content.length);
    }
    // Every installed file is in RECORD, and nothing else was installed.
    expect(result.files.map((f) => f)).toEqual(
      rows.map((r) => join(SP, r.path)).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))),
    );
  });

  it('leaves REQUESTED out for a dependency', async () => {
    const wheel = buildWheel({ name: 'dep', version: '1.0', files: [{ path: 'dep.py', content: 'x = 1\n' }] });
    await install(wheel.filename, wheel.bytes, false);
    expect(await readdir(join(staging, SP, 'dep-1.0.dist-info'))).not.toContain('REQUESTED');
  });

  it('fails naming the wheel and the file when a file does not match its RECORD hash', async () => {
    const wheel = buildWheel(TINYHTTP);
    const entries = readZipEntries(wheel.bytes)
      .filter((e) => !e.name.endsWith('/'))
      .map((e) => ({ name: e.name, data: e.name === 'tinyhttp/cli.py' ? Buffer.from('import os; os.system("evil")\n') : e.data, mode: e.mode }));
    const error = await install(wheel.filename, rawZip(entries)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InstallError);
    expect((error as Error).message).toContain(`Wheel ${wheel.filename}: the file 'tinyhttp/cli.py' does not match its RECORD`);
    // Nothing outside the staging prefix (materializeEnv discards the prefix of a failed install).
    expect((await readdir(parent)).sort()).toEqual(['staging']);
  });

  it('refuses entries that climb out of the prefix or are absolute', async () => {
    const base = [
      { name: 'ok-1.0.dist-info/WHEEL', data: 'Wheel-Version: 1.0\nRoot-Is-Purelib: true\n' },
      { name: 'ok-1.0.dist-info/RECORD', data: '' },
    ];
    const e1 = await install('ok-1.0-py3-none-any.whl', rawZip([...base, { name: '../../../../../escaped.py', data: 'x' }])).catch((e: unknown) => e);
    expect(e1).toBeInstanceOf(ArchiveError);
    expect((e1 as Error).message).toMatch(/ok-1\.0-py3-none-any\.whl has an entry that climbs out of the prefix/);
    const e2 = await install('ok-1.0-py3-none-any.whl', rawZip([...base, { name: '/tmp/escaped-wheel.py', data: 'x' }])).catch((e: unknown) => e);
    expect((e2 as Error).message).toMatch(/absolute path/);
    await expect(lstat('/tmp/escaped-wheel.py')).rejects.toThrow();
    expect((await readdir(parent)).sort()).toEqual(['staging']);
  });

  it('refuses console scripts whose names leave bin/, member names with a NUL, and setuid bits', async () => {
    const base = (entryPoints: string) => [
      { name: 'ok-1.0.dist-info/WHEEL', data: 'Wheel-Version: 1.0\nRoot-Is-Purelib: true\n' },
      { name: 'ok-1.0.dist-info/RECORD', data: '' },
      { name: 'ok-1.0.dist-info/entry_points.txt', data: entryPoints },
    ];
    const cases: [string, RegExp][] = [
      ['[console_scripts]\n../../../etc/cron.d/evil = m:f\n', /climbs out of the prefix/],
      ['[gui_scripts]\nsub/evil = m:f\n', /script name with a slash: 'sub\/evil'/],
      ['[console_scripts]\n/etc/evil = m:f\n', /absolute path/],
    ];
    for (const [text, message] of cases) {
      const error = await install('ok-1.0-py3-none-any.whl', rawZip(base(text))).catch((e: unknown) => e);
      expect(error, text).toBeInstanceOf(ArchiveError);
      expect((error as Error).message, text).toMatch(message);
      await rm(staging, { recursive: true, force: true });
    }
    const nul = await install('ok-1.0-py3-none-any.whl', rawZip([...base(''), { name: 'ok/a\0/../../x.py', data: 'x' }])).catch((e: unknown) => e);
    expect((nul as Error).message).toMatch(/NUL byte/);
    await rm(staging, { recursive: true, force: true });
    // A member's setuid, setgid and sticky bits are dropped: a file is 0644, or 0755 when executable.
    await install('ok-1.0-py3-none-any.whl', rawZip([...base(''), { name: 'ok/tool', data: 'x', mode: 0o6755 }, { name: 'ok/plain', data: 'y', mode: 0o4644 }]));
    expect((await lstat(join(staging, SP, 'ok/tool'))).mode & 0o7777).toBe(0o755);
    expect((await lstat(join(staging, SP, 'ok/plain'))).mode & 0o7777).toBe(0o644);
    expect((await readdir(parent)).sort()).toEqual(['staging']);
  });

  it('maps .data/headers, purelib and platlib, and refuses an unknown .data directory', async () => {
    const files = [
      { name: 'x-1.0.data/headers/x.h', data: '#define X 1\n' },
      { name: 'x-1.0.data/platlib/x/_c.so', data: Buffer.from([0x7f, 0x45, 0x4c, 0x46]), mode: 0o755 },
      { name: 'x-1.0.data/purelib/x/__init__.py', data: 'from x._c import *\n' },
      { name: 'x-1.0.dist-info/WHEEL', data: 'Wheel-Version: 1.0\nRoot-Is-Purelib: false\n' },
    ];
    const record = files.map((f) => `${f.name},sha256=${createHash('sha256').update(f.data).digest('base64url')},${Buffer.from(f.data).length}`);
    const wheel = rawZip([...files, { name: 'x-1.0.dist-info/RECORD', data: `${record.join('\n')}\nx-1.0.dist-info/RECORD,,\n` }]);
    const result = await install('x-1.0-cp311-cp311-linux_x86_64.whl', wheel);
    expect(await readFile(join(staging, 'include/python3.11/x/x.h'), 'utf8')).toBe('#define X 1\n');
    expect((await lstat(join(staging, SP, 'x/_c.so'))).mode & 0o777).toBe(0o755);
    expect(await readFile(join(staging, SP, 'x/__init__.py'), 'utf8')).toBe('from x._c import *\n');
    expect(result.files).toContain('include/python3.11/x/x.h');

    await rm(staging, { recursive: true });
    const weird = rawZip([...files.slice(3), { name: 'x-1.0.data/weird/y', data: 'y' }, { name: 'x-1.0.dist-info/RECORD', data: '' }]);
    await expect(install('x-1.0-py3-none-any.whl', weird)).rejects.toThrow(/unknown \.data directory 'weird'/);
  });

  itOrFailInCi('reads a member name without the UTF-8 flag as code page 437, as pip does, and checks that member against its RECORD row', noPip, async () => {
    // Byte 0x82 is 'é' in code page 437 (Python's zipfile, hence pip) and a C1 control in latin1.
    const name = Buffer.concat([Buffer.from('acc/caf'), Buffer.from([0x82]), Buffer.from('.py')]);
    const data = 'CAFE = 1\n';
    const wheel = (recorded: string) =>
      rawZip([
        { name: 'acc-1.0.dist-info/WHEEL', data: 'Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n' },
        { name: 'acc-1.0.dist-info/METADATA', data: 'Metadata-Version: 2.1\nName: acc\nVersion: 1.0\n' },
        { name, data },
        { name: 'acc-1.0.dist-info/RECORD', data: `acc/caf\u00e9.py,${sha256Record(recorded)},${Buffer.byteLength(recorded)}\nacc-1.0.dist-info/RECORD,,\n` },
      ]);
    const filename = 'acc-1.0-py3-none-any.whl';
    const result = await install(filename, wheel(data));
    expect(await readFile(join(staging, SP, 'acc/caf\u00e9.py'), 'utf8')).toBe(data);
    expect(result.files).toContain(`${SP}/acc/caf\u00e9.py`);
    expect(await readFile(join(staging, SP, 'acc-1.0.dist-info/RECORD'), 'utf8')).toContain(`acc/caf\u00e9.py,${sha256Record(data)},${data.length}\n`);

    // The same names as Python's zipfile, and pip installs the member at the same path.
    const file = join(packages, filename);
    const ours = (await readZipDirectory(file, filename)).map((m) => m.name);
    const pythons = JSON.parse(await python3(['-c', 'import json, sys, zipfile; print(json.dumps(zipfile.ZipFile(sys.argv[1]).namelist()))', file])) as string[];
    expect(ours).toEqual(pythons);
    const target = join(parent, 'pip-target');
    await python3(['-m', 'pip', 'install', '--isolated', '--no-deps', '--no-index', '--no-cache-dir', '--disable-pip-version-check', '--quiet', '--target', target, file]);
    expect(await readFile(join(target, 'acc/caf\u00e9.py'), 'utf8')).toBe(data);
    await rm(target, { recursive: true });
    await rm(staging, { recursive: true });

    // RECORD vouches for other bytes at that name: the member is refused (read as latin1, its
    // name missed its RECORD row and it was installed unchecked).
    const tampered = await install(filename, wheel('CAFE = 2\n')).catch((e: unknown) => e);
    expect(tampered).toBeInstanceOf(InstallError);
    expect((tampered as Error).message).toContain(`Wheel ${filename}: the file 'acc/caf\u00e9.py' does not match its RECORD hash`);
    expect((await readdir(parent)).sort()).toEqual(['staging']);
  }, 60_000);

  it('refuses a member name marked UTF-8 that is not UTF-8 (Python\u2019s zipfile cannot open the wheel)', async () => {
    const bytes = rawZip([
      { name: 'ok-1.0.dist-info/WHEEL', data: 'Wheel-Version: 1.0\nRoot-Is-Purelib: true\n' },
      { name: Buffer.from([0x6f, 0x6b, 0x2f, 0xff, 0x2e, 0x70, 0x79]), data: 'x' },
      { name: 'ok-1.0.dist-info/RECORD', data: '' },
    ]);
    // Flag bit 11 (UTF-8) on the second member's central directory entry.
    const cd = bytes.indexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02]), bytes.indexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02])) + 4);
    bytes.writeUInt16LE(0x800, cd + 8);
    const error = await install('ok-1.0-py3-none-any.whl', bytes).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ArchiveError);
    expect((error as Error).message).toBe('ok-1.0-py3-none-any.whl is corrupt or truncated: central directory entry 1 has a name marked UTF-8 that is not valid UTF-8.');
  });

  it.each([
    ['...dist-info', '..'],
    ['..dist-info', '.'],
    ['-1.0.dist-info', ''],
    ['_ok-1.0.dist-info', '_ok'],
    ['ok.-1.0.dist-info', 'ok.'],
  ])("refuses a dist-info directory '%s' whose name part '%s' is not a distribution name", async (distInfo, distName) => {
    const bytes = rawZip([
      { name: `${distInfo}/WHEEL`, data: 'Wheel-Version: 1.0\nRoot-Is-Purelib: true\n' },
      { name: `${distInfo}/RECORD`, data: '' },
      { name: `${distInfo.slice(0, -'.dist-info'.length)}.data/headers/x.h`, data: '#define X 1\n' },
    ]);
    const error = await install('ok-1.0-py3-none-any.whl', bytes).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ArchiveError);
    expect((error as Error).message).toBe(
      `ok-1.0-py3-none-any.whl is not a valid wheel: its dist-info directory '${distInfo}' names the distribution '${distName}', which is not a valid distribution name (letters, digits, '.', '_' and '-', starting and ending with a letter or digit).`,
    );
    expect(await readdir(staging).catch(() => [])).toEqual([]);
  });

  // The lock names a wheel by its distribution (from pip's report, which may come from the index's
  // PEP 658 metadata file, not the wheel): the wheel installed must be that distribution, as pip checks.
  it("refuses a wheel whose dist-info names another distribution than the lock's, or that has two dist-info directories", async () => {
    const other = rawZip([
      { name: 'numpy/__init__.py', data: 'FAKE = True\n' },
      { name: 'numpy-1.26.4.dist-info/METADATA', data: 'Metadata-Version: 2.1\nName: numpy\nVersion: 1.26.4\n' },
      { name: 'numpy-1.26.4.dist-info/WHEEL', data: 'Wheel-Version: 1.0\nRoot-Is-Purelib: true\n' },
      { name: 'numpy-1.26.4.dist-info/RECORD', data: '' },
    ]);
    const renamed = await install('tinyhttp-0.3.0-py3-none-any.whl', other).catch((e: unknown) => e);
    expect(renamed).toBeInstanceOf(InstallError);
    expect((renamed as Error).message).toBe(
      "tinyhttp-0.3.0-py3-none-any.whl contains the distribution 'numpy' (numpy-1.26.4.dist-info), but the lock says tinyhttp 0.3.0.",
    );
    expect(await readdir(staging).catch(() => [])).toEqual([]);

    const two = rawZip([
      { name: 'tinyhttp-0.3.0.dist-info/WHEEL', data: 'Wheel-Version: 1.0\nRoot-Is-Purelib: true\n' },
      { name: 'tinyhttp-0.3.0.dist-info/RECORD', data: '' },
      { name: 'numpy-1.26.4.dist-info/METADATA', data: 'Metadata-Version: 2.1\nName: numpy\nVersion: 1.26.4\n' },
    ]);
    const twice = await install('tinyhttp-0.3.0-py3-none-any.whl', two).catch((e: unknown) => e);
    expect(twice).toBeInstanceOf(ArchiveError);
    expect((twice as Error).message).toBe(
      'tinyhttp-0.3.0-py3-none-any.whl is not a valid wheel: it has 2 .dist-info directories (numpy-1.26.4.dist-info, tinyhttp-0.3.0.dist-info), where a wheel has one.',
    );
    expect(await readdir(staging).catch(() => [])).toEqual([]);

    // The name as the lock spells it (PEP 503) and as the dist-info directory does (escaped) are the same distribution.
    const escaped = rawZip([
      { name: 'Tiny_Http-0.3.0.dist-info/WHEEL', data: 'Wheel-Version: 1.0\nRoot-Is-Purelib: true\n' },
      { name: 'Tiny_Http-0.3.0.dist-info/RECORD', data: '' },
    ]);
    const writer = await PrefixWriter.open(staging);
    const file = join(packages, 'Tiny_Http-0.3.0-py3-none-any.whl');
    await writeFile(file, escaped);
    const result = await installWheel(file, lockedPackage('pypi', 'Tiny_Http-0.3.0-py3-none-any.whl', escaped, { name: 'tiny-http', version: '0.3.0' }), { writer, prefix: PREFIX, pythonVersion: '3.11.2', requested: false });
    expect(result.distInfo).toBe(`${SP}/Tiny_Http-0.3.0.dist-info`);
  });

  it('fails on a truncated wheel naming it', async () => {
    const wheel = buildWheel(TINYHTTP);
    const error = await install(wheel.filename, wheel.bytes.subarray(0, wheel.bytes.length - 100)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ArchiveError);
    expect((error as Error).message).toContain(`${wheel.filename} is corrupt or truncated`);
  });
});
