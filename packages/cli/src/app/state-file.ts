/** Where the image map of a flow is written (the state file the Metaflow extension reads), and the atomic write. */
import { dirname, join, resolve } from 'node:path';
import { writeFileAtomic, type ImageMap } from '@prebuilt/core';

/** The state file: METAFLOW_PREBUILT_STATE_FILE, else `.prebuilt/<Flow>/images.json` beside the flow. */
export function stateFilePath(flowFile: string, flowName: string, env: Record<string, string | undefined>, cwd: string): string {
  const explicit = env.METAFLOW_PREBUILT_STATE_FILE?.trim();
  if (explicit) return resolve(cwd, explicit);
  return join(dirname(resolve(cwd, flowFile)), '.prebuilt', flowName, 'images.json');
}

export async function writeImageMap(path: string, map: ImageMap): Promise<void> {
  await writeFileAtomic(path, `${JSON.stringify(map, null, 2)}\n`, { setting: 'METAFLOW_PREBUILT_STATE_FILE' });
}
