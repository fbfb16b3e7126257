/**
 * `prebuilt metaflow install|uninstall|status`: puts the extension where a Python interpreter
 * finds it (a copy into its site-packages, as part of the `metaflow_extensions` namespace
 * package), records what it added in a manifest beside it, and removes exactly that.
 */
import { access, constants, copyFile, mkdir, readFile, readdir, rm, rmdir, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { ConfigError, EnvironmentError, InputError, errorMessage, writeFileAtomic } from '@prebuilt/core';
import { EXTENSION_DIR, INSTALL_RECORD, extensionFiles } from './extension-files.js';
import { runPythonScript } from './host-python.js';
import { fileURLToPath } from 'node:url';

/** The manifest file, written in the site directory the extension was installed into. */
export const MANIFEST_NAME = 'prebuilt_metaflow_extension.json';

export interface PythonSite {
  executable: string;
  version: string;
  /** site-packages of the interpreter's installation scheme. */
  purelib: string;
  /** The user site directory, when the interpreter enables it. */
  usersite: string | null;
  /** The interpreter finds a `metaflow` package (PYTHONPATH included; found, not imported). */
  metaflow: boolean;
  /** Those of the modules asked about ({@link pythonSite}'s `modules`) the interpreter does not find. */
  missing: string[];
}

export interface InstallManifest {
  version: 1;
  /** The prebuilt version that installed it. */
  prebuilt: string;
  python: string;
  site: string;
  /** The extension's directory (`<site>/metaflow_extensions/prebuilt`). */
  target: string;
  /** Every file install wrote (absolute), the install record included. */
  files: string[];
  /** Every directory install created (absolute), parents first. */
  dirs: string[];
  /** The CLI the extension calls to build. */
  cli: string[];
}

export interface ExtensionOptions {
  /** The interpreter; default METAFLOW_PREBUILT_PYTHON, else `python3`. */
  python?: string;
  env?: Record<string, string | undefined>;
  signal?: AbortSignal;
}

const SITE_SCRIPT = fileURLToPath(new URL('../python/python_site.py', import.meta.url));

/** Where the interpreter looks for packages. */
export async function pythonSite(options: ExtensionOptions & { modules?: readonly string[] } = {}): Promise<PythonSite> {
  const out = await runPythonScript(SITE_SCRIPT, [...(options.modules ?? [])], {
    isolated: false,
    ...(options.python ? { python: options.python } : {}),
    ...(options.env ? { env: options.env } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
  });
  return JSON.parse(out) as PythonSite;
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

async function writable(dir: string): Promise<boolean> {
  let current = dir;
  for (;;) {
    if (await exists(current)) {
      try {
        await access(current, constants.W_OK);
        return true;
      } catch {
        return false;
      }
    }
    const parent = dirname(current);
    if (parent === current) return false;
    current = parent;
  }
}

async function readManifest(site: string): Promise<InstallManifest | null> {
  const path = join(site, MANIFEST_NAME);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    return null;
  }
  try {
    const manifest = JSON.parse(text) as InstallManifest;
    if (manifest.version !== 1 || !Array.isArray(manifest.files) || !Array.isArray(manifest.dirs)) throw new Error('unknown shape');
    return manifest;
  } catch (error) {
    throw new InputError(`The install manifest ${path} is not one prebuilt wrote (${errorMessage(error)}).`, {
      file: path,
      hint: `Remove ${join(site, 'metaflow_extensions', 'prebuilt')} and ${path} by hand, then run prebuilt metaflow install again.`,
    });
  }
}

/** The site directories of an interpreter that may hold an install, user site last. */
function sites(site: PythonSite): string[] {
  return [site.purelib, ...(site.usersite && site.usersite !== site.purelib ? [site.usersite] : [])];
}

export interface InstallResult {
  manifest: InstallManifest;
  /** An earlier install by prebuilt was replaced. */
  replaced: boolean;
}

/**
 * Copies the extension into the interpreter's site-packages (its user site when site-packages is
 * not writable) and records the CLI the extension calls to build.
 */
export async function installExtension(options: ExtensionOptions & { cli: string[]; prebuiltVersion: string }): Promise<InstallResult> {
  const site = await pythonSite(options);
  let replaced = false;
  for (const dir of sites(site)) {
    if (await readManifest(dir)) {
      await uninstallFromSite(dir);
      replaced = true;
    }
  }
  let base: string | undefined;
  for (const dir of sites(site)) {
    if (await writable(dir)) {
      base = dir;
      break;
    }
  }
  if (!base) {
    throw new EnvironmentError(`Neither ${site.purelib} nor a user site directory of ${site.executable} is writable.`, {
      hint: 'Run as the owner of that Python installation, use a virtual environment, or use `prebuilt run`, which needs no install.',
    });
  }
  const target = join(base, 'metaflow_extensions', 'prebuilt');
  if (await exists(target)) {
    throw new ConfigError(`${target} already exists and was not installed by prebuilt metaflow install.`, {
      hint: `Another copy of the prebuilt extension (e.g. from pip) is installed there: remove it, then run prebuilt metaflow install again.`,
    });
  }
  if (await exists(join(base, 'metaflow_extensions', '__init__.py'))) {
    throw new ConfigError(`${join(base, 'metaflow_extensions', '__init__.py')} exists, so metaflow_extensions is not a namespace package and Metaflow refuses it.`, {
      hint: 'Remove that __init__.py (an extension package installed it by mistake), then run prebuilt metaflow install again.',
    });
  }
  const dirs: string[] = [];
  const files: string[] = [];
  const makeDir = async (dir: string): Promise<void> => {
    if (await exists(dir)) return;
    await makeDir(dirname(dir));
    await mkdir(dir);
    dirs.push(dir);
  };
  try {
    for (const file of extensionFiles()) {
      const to = join(target, file);
      await makeDir(dirname(to));
      await copyFile(join(EXTENSION_DIR, file), to);
      files.push(to);
    }
    const record = join(target, INSTALL_RECORD);
    await writeFileAtomic(record, `${JSON.stringify({ cli: options.cli, prebuilt: options.prebuiltVersion }, null, 2)}\n`);
    files.push(record);
    const manifest: InstallManifest = {
      version: 1,
      prebuilt: options.prebuiltVersion,
      python: site.executable,
      site: base,
      target,
      files,
      dirs,
      cli: options.cli,
    };
    await writeFileAtomic(join(base, MANIFEST_NAME), `${JSON.stringify(manifest, null, 2)}\n`);
    return { manifest, replaced };
  } catch (error) {
    await removeInstalled({ files, dirs });
    throw error;
  }
}

async function removeInstalled(installed: { files: readonly string[]; dirs: readonly string[] }): Promise<void> {
  for (const file of installed.files) await rm(file, { force: true });
  // Deepest first; a directory is removed only when nothing but Python's bytecode cache is left.
  for (const dir of [...installed.dirs].reverse()) {
    const cache = join(dir, '__pycache__');
    if (await exists(cache)) {
      const left = await readdir(cache);
      if (left.every((name) => name.endsWith('.pyc'))) await rm(cache, { recursive: true, force: true });
    }
    try {
      await rmdir(dir);
    } catch {
      // Not empty (someone else's files): left in place.
    }
  }
}

async function uninstallFromSite(dir: string): Promise<InstallManifest | null> {
  const manifest = await readManifest(dir);
  if (!manifest) return null;
  await removeInstalled(manifest);
  await rm(join(dir, MANIFEST_NAME), { force: true });
  return manifest;
}

/** Removes what install added for this interpreter; the manifests removed (empty: nothing was installed). */
export async function uninstallExtension(options: ExtensionOptions = {}): Promise<{ python: string; removed: InstallManifest[] }> {
  const site = await pythonSite(options);
  const removed: InstallManifest[] = [];
  for (const dir of sites(site)) {
    const manifest = await uninstallFromSite(dir);
    if (manifest) removed.push(manifest);
  }
  return { python: site.executable, removed };
}

export interface ExtensionStatus {
  python: string;
  pythonVersion: string;
  installed: InstallManifest | null;
  /** Every file install wrote is still there. */
  intact: boolean;
  /** Metaflow's version as that interpreter imports it, or null. */
  metaflow: string | null;
  /** Why Metaflow could not be imported, if it could not. */
  metaflowError: string | null;
  /** `--environment=prebuilt` is among the environments Metaflow loads. */
  environmentLoaded: boolean;
}

const PROBE_SCRIPT = fileURLToPath(new URL('../python/probe_metaflow.py', import.meta.url));

/** What is installed for the interpreter, and whether its Metaflow loads the extension. */
export async function extensionStatus(options: ExtensionOptions = {}): Promise<ExtensionStatus> {
  const site = await pythonSite(options);
  let installed: InstallManifest | null = null;
  for (const dir of sites(site)) {
    installed ??= await readManifest(dir);
  }
  let intact = false;
  if (installed) {
    intact = true;
    for (const file of installed.files) if (!(await exists(file))) intact = false;
  }
  // Not isolated: Metaflow may come from PYTHONPATH, as the flows it runs would see it.
  const probe = JSON.parse(
    await runPythonScript(PROBE_SCRIPT, [], {
      ...(options.python ? { python: options.python } : {}),
      ...(options.env ? { env: options.env } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
      isolated: false,
      timeoutMs: 120_000,
    }),
  ) as { metaflow: string | null; error: string | null; environments: string[] };
  return {
    python: site.executable,
    pythonVersion: site.version,
    installed,
    intact,
    metaflow: probe.metaflow,
    metaflowError: probe.error,
    environmentLoaded: probe.environments.includes('prebuilt'),
  };
}

export interface InstalledExtension {
  /** The interpreter's own executable (`sys.executable`). */
  python: string;
  manifest: InstallManifest;
  /** The installed files are this prebuilt's (same names, same bytes). */
  current: boolean;
}

/**
 * The extension `prebuilt metaflow install` put into this interpreter's site directories, or null.
 * Metaflow refuses two copies of one extension (one installed, one on PYTHONPATH), so a flow run
 * must use the installed copy when there is one.
 */
export async function installedExtension(options: ExtensionOptions = {}): Promise<InstalledExtension | null> {
  const site = await pythonSite(options);
  for (const dir of sites(site)) {
    const manifest = await readManifest(dir);
    if (!manifest) continue;
    let current = true;
    for (const file of extensionFiles()) {
      const [ours, theirs] = await Promise.all([readFile(join(EXTENSION_DIR, file)), readFile(join(manifest.target, file)).catch(() => null)]);
      if (theirs === null || !ours.equals(theirs)) {
        current = false;
        break;
      }
    }
    return { python: site.executable, manifest, current };
  }
  return null;
}
