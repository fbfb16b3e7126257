import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join, relative } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { itOrFailInCi, metaflowSource } from '../../../test/services.js';
import { ConfigError } from '@prebuilt/core';
import { extensionFiles } from './extension-files.js';
import { MANIFEST_NAME, extensionStatus, installExtension, pythonSite, uninstallExtension } from './extension-install.js';

const run = promisify(execFile);
const { source, missing: metaflowMissing } = metaflowSource();

/** Every path under `dir`, relative, sorted. */
function tree(dir: string): string[] {
  const out: string[] = [];
  const walk = (current: string): void => {
    for (const name of readdirSync(current).sort()) {
      const path = join(current, name);
      out.push(relative(dir, path));
      if (statSync(path).isDirectory()) walk(path);
    }
  };
  walk(dir);
  return out;
}

describe('prebuilt metaflow install / uninstall / status (a virtualenv)', () => {
  let root: string;
  let python: string;
  let purelib: string;
  const env = { PATH: process.env.PATH, HOME: process.env.HOME };
  let cli: string[];

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'prebuilt-install-'));
    await run('python3', ['-m', 'venv', '--without-pip', join(root, 'venv')]);
    python = join(root, 'venv', 'bin', 'python');
    // The recorded CLI is used only while its script exists.
    writeFileSync(join(root, 'prebuilt.js'), '');
    cli = [process.execPath, join(root, 'prebuilt.js')];
    purelib = (await pythonSite({ python, env })).purelib;
  }, 120_000);
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('copies the extension into site-packages, records the CLI, and the interpreter imports it with no PYTHONPATH', async () => {
    const before = tree(purelib);
    const { manifest, replaced } = await installExtension({ python, env, cli, prebuiltVersion: '1.2.3' });
    expect(replaced).toBe(false);
    const target = join(purelib, 'metaflow_extensions', 'prebuilt');
    expect(manifest.target).toBe(target);
    expect(manifest.files.map((file) => relative(target, file)).sort()).toEqual([...extensionFiles(), join('plugins', 'prebuilt_install.json')].sort());
    expect(existsSync(join(purelib, 'metaflow_extensions', '__init__.py'))).toBe(false); // a namespace package, as Metaflow requires
    expect(JSON.parse(readFileSync(join(target, 'plugins', 'prebuilt_install.json'), 'utf8'))).toEqual({ cli, prebuilt: '1.2.3' });
    expect(JSON.parse(readFileSync(join(purelib, MANIFEST_NAME), 'utf8')).dirs).toEqual([
      join(purelib, 'metaflow_extensions'),
      join(purelib, 'metaflow_extensions', 'prebuilt'),
      join(purelib, 'metaflow_extensions', 'prebuilt', 'plugins'),
    ]);
    // Importing leaves bytecode beside the files; uninstall must still leave the tree as it was.
    const { stdout } = await run(python, ['-c', 'from metaflow_extensions.prebuilt.plugins import prebuilt_image_map as m; print(m.find_cli({"PATH": ""})[1])'], { env });
    expect(stdout).toContain('prebuilt metaflow install');
    expect(stdout).not.toContain('PREBUILT_CLI');

    const again = await installExtension({ python, env, cli, prebuiltVersion: '1.2.4' });
    expect(again.replaced).toBe(true);

    const removed = await uninstallExtension({ python, env });
    expect(removed.removed.map((m) => m.prebuilt)).toEqual(['1.2.4']);
    expect(tree(purelib)).toEqual(before);
    expect((await uninstallExtension({ python, env })).removed).toEqual([]);
  });

  it("leaves another package's metaflow_extensions alone", async () => {
    const other = join(purelib, 'metaflow_extensions', 'acme', 'plugins');
    mkdirSync(other, { recursive: true });
    writeFileSync(join(other, 'mfextinit_acme.py'), '');
    try {
      const { manifest } = await installExtension({ python, env, cli, prebuiltVersion: '1.0.0' });
      expect(manifest.dirs).toEqual([join(purelib, 'metaflow_extensions', 'prebuilt'), join(purelib, 'metaflow_extensions', 'prebuilt', 'plugins')]);
      await uninstallExtension({ python, env });
      expect(tree(join(purelib, 'metaflow_extensions'))).toEqual(['acme', join('acme', 'plugins'), join('acme', 'plugins', 'mfextinit_acme.py')]);
    } finally {
      rmSync(join(purelib, 'metaflow_extensions'), { recursive: true, force: true });
    }
  });

  it('refuses to overwrite a copy it did not install', async () => {
    mkdirSync(join(purelib, 'metaflow_extensions', 'prebuilt'), { recursive: true });
    try {
      await expect(installExtension({ python, env, cli, prebuiltVersion: '1.0.0' })).rejects.toThrow(ConfigError);
      await expect(installExtension({ python, env, cli, prebuiltVersion: '1.0.0' })).rejects.toThrow(/was not installed by prebuilt metaflow install/);
    } finally {
      rmSync(join(purelib, 'metaflow_extensions'), { recursive: true, force: true });
    }
  });

  it('status: installed or not, and that this Python has no Metaflow', async () => {
    const none = await extensionStatus({ python, env });
    expect(none.installed).toBeNull();
    expect(none.metaflow).toBeNull();
    expect(none.metaflowError).toContain("No module named 'metaflow'");
    await installExtension({ python, env, cli, prebuiltVersion: '1.0.0' });
    try {
      const status = await extensionStatus({ python, env });
      expect(status.installed?.target).toBe(join(purelib, 'metaflow_extensions', 'prebuilt'));
      expect(status.intact).toBe(true);
      expect(status.environmentLoaded).toBe(false);
      rmSync(join(purelib, 'metaflow_extensions', 'prebuilt', 'plugins', 'prebuilt_image_map.py'));
      expect((await extensionStatus({ python, env })).intact).toBe(false);
    } finally {
      await uninstallExtension({ python, env });
    }
  });

  itOrFailInCi(
    'status: Metaflow on PYTHONPATH loads --environment=prebuilt only once installed',
    metaflowMissing,
    async () => {
      // Metaflow imports requests (Debian's python3-requests when the venv has none).
      const withMetaflow = { ...env, PYTHONPATH: [source!, '/usr/lib/python3/dist-packages'].join(delimiter) };
      const before = await extensionStatus({ python, env: withMetaflow });
      expect(before.metaflow).toMatch(/^2\./);
      expect(before.environmentLoaded).toBe(false);
      await installExtension({ python, env: withMetaflow, cli, prebuiltVersion: '1.0.0' });
      try {
        expect((await extensionStatus({ python, env: withMetaflow })).environmentLoaded).toBe(true);
      } finally {
        await uninstallExtension({ python, env: withMetaflow });
      }
    },
  );
});
