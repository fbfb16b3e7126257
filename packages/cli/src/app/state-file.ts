/** Where the image map of a flow is written (the state file the Metaflow extension reads), the atomic write and the reader. */
import { readFile, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { ConfigError, errorMessage, InputError, writeFileAtomic, type ImageMap } from '@prebuilt/core';

/** The state file: METAFLOW_PREBUILT_STATE_FILE, else `.prebuilt/<Flow>/images.json` beside the flow. */
export function stateFilePath(flowFile: string, flowName: string, env: Record<string, string | undefined>, cwd: string): string {
  const explicit = env.METAFLOW_PREBUILT_STATE_FILE?.trim();
  if (explicit) return resolve(cwd, explicit);
  return join(dirname(resolve(cwd, flowFile)), '.prebuilt', flowName, 'images.json');
}

/**
 * A METAFLOW_PREBUILT_STATE_FILE that names a directory is a ConfigError (exit 2), said before a
 * build starts rather than when its image map cannot be written at the end.
 */
export async function checkStateFileSetting(env: Record<string, string | undefined>, cwd: string): Promise<void> {
  const explicit = env.METAFLOW_PREBUILT_STATE_FILE?.trim();
  if (!explicit) return;
  const found = await stat(resolve(cwd, explicit)).catch(() => undefined);
  if (found?.isDirectory()) {
    throw new ConfigError(`METAFLOW_PREBUILT_STATE_FILE='${explicit}' is a directory; the image map is a file.`, {
      setting: 'METAFLOW_PREBUILT_STATE_FILE',
      hint: `Set METAFLOW_PREBUILT_STATE_FILE to a file path, e.g. ${join(explicit, 'images.json')}, or unset it (.prebuilt/<Flow>/images.json beside the flow).`,
    });
  }
}

/**
 * Writes the image map atomically; a file that already holds these very bytes (a redeploy that
 * changed nothing) is left as it is, without a write and its flush to disk.
 */
export async function writeImageMap(path: string, map: ImageMap): Promise<void> {
  const text = `${JSON.stringify(map, null, 2)}\n`;
  const current = await readFile(path, 'utf8').catch(() => undefined);
  if (current === text) return;
  await writeFileAtomic(path, text, { setting: 'METAFLOW_PREBUILT_STATE_FILE' });
}

/**
 * The image map at `path` (a state file, or `build --json` output); undefined when there is none.
 * A file that cannot be read, is not JSON or has no `steps` object is an InputError (exit 2)
 * naming it (as `shown`) with `hint`.
 */
export async function readImageMap(path: string, options: { shown: string; hint: string }): Promise<ImageMap | undefined> {
  const { shown, hint } = options;
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new InputError(`Reading the image map ${shown} failed: ${errorMessage(error)}.`, { file: path, hint });
  }
  try {
    const imageMap = JSON.parse(text) as ImageMap | null;
    if (typeof imageMap !== 'object' || imageMap === null || Array.isArray(imageMap)) throw new Error('it is not a JSON object');
    if (typeof imageMap.steps !== 'object' || imageMap.steps === null) throw new Error('it has no steps');
    return imageMap;
  } catch (error) {
    throw new InputError(`The image map ${shown} is not valid: ${errorMessage(error)}.`, { file: path, hint });
  }
}
