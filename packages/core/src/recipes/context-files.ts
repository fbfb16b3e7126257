import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { ContextFile } from './recipe.js';

/** Writes context files below `dir`, creating directories. */
export async function writeContextFiles(dir: string, files: readonly ContextFile[]): Promise<void> {
  for (const file of files) {
    const path = join(dir, file.path);
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, file.content, { mode: file.mode ?? 0o644 });
  }
}
