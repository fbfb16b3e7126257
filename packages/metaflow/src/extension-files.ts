/**
 * The Metaflow extension shipped in this package (`python/metaflow_extensions/prebuilt/`): where
 * it is, and the environment that makes a Python process load it with an image map.
 */
import { readdirSync, statSync } from 'node:fs';
import { delimiter, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The directory to put on PYTHONPATH: it holds the `metaflow_extensions` namespace package. */
export const EXTENSION_PYTHONPATH = fileURLToPath(new URL('../python', import.meta.url));

/** The extension's own package directory (`metaflow_extensions/prebuilt`). */
export const EXTENSION_DIR = join(EXTENSION_PYTHONPATH, 'metaflow_extensions', 'prebuilt');

/** The variable the extension reads the image map from. */
export const IMAGE_MAP_ENV = 'METAFLOW_PREBUILT_IMAGE_MAP';

/** Where `prebuilt metaflow install` records the CLI, inside the installed extension. */
export const INSTALL_RECORD = join('plugins', 'prebuilt_install.json');

/**
 * The extension's files, relative to `metaflow_extensions/prebuilt` (sorted; bytecode caches
 * and the install record excluded).
 */
export function extensionFiles(dir: string = EXTENSION_DIR): string[] {
  const files: string[] = [];
  const walk = (current: string): void => {
    for (const name of readdirSync(current).sort()) {
      if (name === '__pycache__' || name.endsWith('.pyc')) continue;
      const path = join(current, name);
      if (statSync(path).isDirectory()) walk(path);
      else files.push(relative(dir, path));
    }
  };
  walk(dir);
  return files.filter((file) => file !== INSTALL_RECORD);
}

/**
 * `env` with the extension first on PYTHONPATH and, when given, the image map set. With
 * `onPythonPath: false` (the interpreter has the extension installed) it is only kept off PYTHONPATH.
 */
export function extensionEnv(env: Record<string, string | undefined>, imageMap?: string, onPythonPath = true): Record<string, string | undefined> {
  const rest = env.PYTHONPATH?.split(delimiter).filter((p) => p !== '' && p !== EXTENSION_PYTHONPATH) ?? [];
  const path = onPythonPath ? [EXTENSION_PYTHONPATH, ...rest] : rest;
  const { PYTHONPATH: _dropped, ...others } = env;
  return {
    ...others,
    ...(path.length > 0 ? { PYTHONPATH: path.join(delimiter) } : {}),
    ...(imageMap !== undefined ? { [IMAGE_MAP_ENV]: imageMap } : {}),
  };
}
