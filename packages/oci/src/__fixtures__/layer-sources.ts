// The files the seekable-layer tests (estargz.test.ts, zstd-chunked.test.ts) put in a layer: a
// 9 MiB file (three 4 MiB chunks), a small one, an empty one, a symlink and a long name.
import { randomBytes } from 'node:crypto';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { LayerEntry } from '../layer.js';

export const LONG_NAME = `opt/env/lib/${'d'.repeat(90)}/${'f'.repeat(60)}.py`;

/** Writes the sources under `dir/src`; the entries and the big file's bytes. */
export async function layerSources(dir: string): Promise<{ entries: LayerEntry[]; big: Buffer }> {
  const big = Buffer.concat([randomBytes(3 << 20), Buffer.alloc(6 << 20, 'a')]);
  await mkdir(join(dir, 'src'), { recursive: true });
  await writeFile(join(dir, 'src/big.bin'), big);
  await writeFile(join(dir, 'src/small.py'), 'print(1)\n');
  await writeFile(join(dir, 'src/empty'), '');
  await writeFile(join(dir, 'src/long.py'), 'x = 1\n');
  await symlink('small.py', join(dir, 'src/link'));
  const entries: LayerEntry[] = [
    { path: 'opt/env/big.bin', kind: 'file', source: join(dir, 'src/big.bin'), mode: 0o755 },
    { path: 'opt/env/small.py', kind: 'file', source: join(dir, 'src/small.py'), mode: 0o644 },
    { path: 'opt/env/empty', kind: 'file', source: join(dir, 'src/empty'), mode: 0o644 },
    { path: 'opt/env/link', kind: 'symlink', source: join(dir, 'src/link') },
    { path: LONG_NAME, kind: 'file', source: join(dir, 'src/long.py'), mode: 0o644 },
  ];
  return { entries, big };
}
