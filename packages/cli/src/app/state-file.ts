/** Where the image map of a flow is written (the state file the Metaflow extension reads), the atomic write and the reader. */
import { lstat, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { ConfigError, errorMessage, fileKind, InputError, readRegularFile, writeFileAtomic, type ImageMap } from '@prebuilt/core';
import { shellWord, shownPath } from './shown-path.js';

/** The setting that names the image map's file instead of the default beside the flow. */
const STATE_FILE_SETTING = 'METAFLOW_PREBUILT_STATE_FILE';

/** The path METAFLOW_PREBUILT_STATE_FILE names, spaces around it dropped; undefined when it is unset or blank. */
export function stateFileSetting(env: Record<string, string | undefined>): string | undefined {
  return env[STATE_FILE_SETTING]?.trim() || undefined;
}

/** The state file: METAFLOW_PREBUILT_STATE_FILE, else `.prebuilt/<Flow>/images.json` beside the flow. */
export function stateFilePath(flowFile: string, flowName: string, env: Record<string, string | undefined>, cwd: string): string {
  const explicit = stateFileSetting(env);
  if (explicit) return resolve(cwd, explicit);
  return join(dirname(resolve(cwd, flowFile)), '.prebuilt', flowName, 'images.json');
}

/**
 * The default state file's directories — `.prebuilt` beside the flow, then `.prebuilt/<Flow>` (when
 * `flowName` is known) — must each be a directory or missing (a build creates them), never a
 * symbolic link: a cloned repository can ship `.prebuilt/<Flow> -> ~/.ssh`, and the image map would
 * be written through it. Anything else there (a link, a file) is an InputError (exit 2) naming the
 * path and the fix. A METAFLOW_PREBUILT_STATE_FILE is the user's own choice and not looked at here
 * (see {@link checkStateFileSetting}). The image map itself may be a link: its atomic write renames
 * over the link and never writes through it.
 */
export async function checkStateDirectory(flowFile: string, flowName: string | undefined, env: Record<string, string | undefined>, cwd: string): Promise<void> {
  if (stateFileSetting(env) !== undefined) return;
  let path = join(dirname(resolve(cwd, flowFile)), '.prebuilt');
  for (const name of flowName === undefined ? [undefined] : [undefined, flowName]) {
    if (name !== undefined) path = join(path, name);
    const found = await lstat(path).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT' || error.code === 'ENOTDIR') return undefined;
      throw error;
    });
    if (found === undefined) return;
    if (found.isDirectory()) continue;
    const shown = shownPath(cwd, path);
    const link = found.isSymbolicLink();
    const message = link
      ? `${shown} is a symbolic link: prebuilt writes the image map only into a directory of its own, never through a link (a cloned repository can ship one that points anywhere).`
      : `${shown} is ${found.isFile() ? 'a file' : fileKind(found)}, not a directory: prebuilt writes the image map into .prebuilt/<Flow>/images.json beside the flow.`;
    throw new InputError(message, {
      file: path,
      hint: `Remove the ${link ? 'link' : 'file'} (rm ${shellWord(shown)}): prebuilt build creates the directory. To keep the image map elsewhere, set METAFLOW_PREBUILT_STATE_FILE to a file path.`,
    });
  }
}

/** The largest image map read (64 MiB): far above what a build writes (a few hundred bytes a step). */
export const MAX_IMAGE_MAP_BYTES = 64 << 20;

/**
 * A METAFLOW_PREBUILT_STATE_FILE that names a directory, or anything else that is not a regular file
 * (a device such as /dev/null, a FIFO, a socket: reading one hangs or never ends, and the atomic
 * write would rename the image map over it), is a ConfigError (exit 2), said before a build starts
 * rather than when its image map cannot be written at the end, and by the commands that read the
 * image map (`report`, `sbom`, `prepull`, `profile`, `gc` of a flow), whose usual hint — build
 * again to rewrite it — would lead to this very refusal.
 */
export async function checkStateFileSetting(env: Record<string, string | undefined>, cwd: string): Promise<void> {
  const explicit = stateFileSetting(env);
  if (!explicit) return;
  const found = await stat(resolve(cwd, explicit)).catch(async (error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOTDIR') await fileInTheWay(explicit, cwd);
    return undefined;
  });
  if (found?.isDirectory()) {
    throw new ConfigError(`METAFLOW_PREBUILT_STATE_FILE='${explicit}' is a directory; the image map is a file.`, {
      setting: STATE_FILE_SETTING,
      hint: `Set METAFLOW_PREBUILT_STATE_FILE to a file path, e.g. ${join(explicit, 'images.json')}, or unset it (.prebuilt/<Flow>/images.json beside the flow).`,
    });
  }
  if (found && !found.isFile()) {
    throw new ConfigError(`METAFLOW_PREBUILT_STATE_FILE='${explicit}' is ${fileKind(found)}, not a regular file: the image map is one (\`prebuilt build\` writes it there, the other commands read it).`, {
      setting: STATE_FILE_SETTING,
      hint: 'Set METAFLOW_PREBUILT_STATE_FILE to a file path (e.g. images.json), or unset it (.prebuilt/<Flow>/images.json beside the flow).',
    });
  }
}

/**
 * A METAFLOW_PREBUILT_STATE_FILE below a file (`images.json/prod.json`, `maps/images.json` with a
 * file `maps`): no image map can ever be written there, said before a build rather than after it.
 */
async function fileInTheWay(explicit: string, cwd: string): Promise<void> {
  for (let dir = dirname(resolve(cwd, explicit)); dir !== dirname(dir); dir = dirname(dir)) {
    const found = await stat(dir).catch(() => undefined);
    if (found === undefined || found.isDirectory()) continue;
    const shown = shownPath(cwd, dir);
    throw new ConfigError(`METAFLOW_PREBUILT_STATE_FILE='${explicit}' cannot be written: ${shown} is ${found.isFile() ? 'a file' : fileKind(found)}, not a directory.`, {
      setting: STATE_FILE_SETTING,
      hint: `Set METAFLOW_PREBUILT_STATE_FILE to a path whose directories are directories (e.g. ${join(dirname(shown), 'images.json')}), or unset it (.prebuilt/<Flow>/images.json beside the flow).`,
    });
  }
}

/**
 * The text of the image map at `path`, undefined when there is none. Only a regular file of at most
 * {@link MAX_IMAGE_MAP_BYTES} is read, and it is opened without blocking: a FIFO or a device (a
 * `--keep-map` or METAFLOW_PREBUILT_STATE_FILE naming /dev/zero) is refused at once instead of
 * hanging or filling memory. Anything else wrong is the error, as thrown by the file system or with
 * a message saying why.
 */
async function readImageMapText(path: string): Promise<string | undefined> {
  try {
    const bytes = await readRegularFile(path, MAX_IMAGE_MAP_BYTES, {
      notAFile: (kind) => new Error(`it is ${kind}, not a regular file`),
      tooLarge: (size) => new Error(`it is larger than ${MAX_IMAGE_MAP_BYTES >> 20} MiB (${size} bytes): not an image map prebuilt wrote`),
    });
    return bytes.toString('utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/**
 * Writes the image map atomically; a file that already holds these very bytes (a redeploy that
 * changed nothing) is left as it is, without a write and its flush to disk.
 */
export async function writeImageMap(path: string, map: ImageMap): Promise<void> {
  const text = `${JSON.stringify(map, null, 2)}\n`;
  const current = await readImageMapText(path).catch(() => undefined);
  if (current === text) return;
  await writeFileAtomic(path, text, {
    setting: STATE_FILE_SETTING,
    // The setting names a file, not a directory.
    hint: `Set ${STATE_FILE_SETTING} to a file in a directory you can write (e.g. ${STATE_FILE_SETTING}=$HOME/images.json), or fix that directory's permissions.`,
  });
}

/**
 * The image map at `path` (a state file, or `build --json` output); undefined when there is none.
 * A file that cannot be read, is not JSON or has no `steps` object is an InputError (exit 2)
 * naming it (as `shown`) with `hint`.
 */
export async function readImageMap(path: string, options: { shown: string; hint: string }): Promise<ImageMap | undefined> {
  const { shown, hint } = options;
  let text: string | undefined;
  try {
    text = await readImageMapText(path);
  } catch (error) {
    throw new InputError(`Reading the image map ${shown} failed: ${errorMessage(error)}.`, { file: path, hint });
  }
  if (text === undefined) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    // Not the parser's message: it quotes the file's first characters, and a state file that is a
    // symlink (a cloned repository's `.prebuilt/<Flow>/images.json -> ~/.config/gh/hosts.yml`) would
    // have them printed — in a CI log, say.
    throw new InputError(`The image map ${shown} is not valid: it is not JSON.`, { file: path, hint });
  }
  try {
    const imageMap = parsed as ImageMap | null;
    if (typeof imageMap !== 'object' || imageMap === null || Array.isArray(imageMap)) throw new Error('it is not a JSON object');
    if (typeof imageMap.steps !== 'object' || imageMap.steps === null) throw new Error('it has no steps');
    return imageMap;
  } catch (error) {
    throw new InputError(`The image map ${shown} is not valid: ${errorMessage(error)}.`, { file: path, hint });
  }
}
