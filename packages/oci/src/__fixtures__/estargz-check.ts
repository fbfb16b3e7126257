// The stargz snapshotter's own reader as a test oracle: estargz-check/main.go, built with Debian's
// Go and its stargz-snapshotter library (GOPATH mode, offline; scripts/setup.sh installs both), once
// per source version under the temp directory.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const exec = promisify(execFile);
const GOPATH = '/usr/share/gocode';
const SOURCE = new URL('./estargz-check/main.go', import.meta.url).pathname;

/** What the Go reader found in a blob: the TOC digest it computed, the unpacked tar's sha256, each regular file's sha256 by name. */
export interface EstargzCheck {
  tocDigest: string;
  diffId: string;
  files: Record<string, string>;
  chunks: number;
}

/** The checker binary, or why it cannot be built here. */
export async function estargzChecker(): Promise<{ bin: string } | { reason: string }> {
  if (!existsSync(join(GOPATH, 'src/github.com/containerd/stargz-snapshotter/estargz/zstdchunked/zstdchunked.go'))) {
    return { reason: "the stargz snapshotter's Go library is missing (apt-get install golang-github-containerd-stargz-snapshotter-dev)" };
  }
  if (!(await exec('go', ['version']).then(() => true, () => false))) return { reason: 'Go is not installed (apt-get install golang-go)' };
  const hash = createHash('sha256').update(await readFile(SOURCE)).digest('hex').slice(0, 16);
  const dir = join(tmpdir(), 'prebuilt-estargz-check');
  const bin = join(dir, `estargz-check-${hash}`);
  if (existsSync(bin)) return { bin };
  await mkdir(dir, { recursive: true });
  const env = { ...process.env, GOPATH, GO111MODULE: 'off', GOFLAGS: '', GOCACHE: join(dir, 'go-cache') };
  const tmp = `${bin}.${process.pid}`;
  await exec('go', ['build', '-o', tmp, SOURCE], { env, timeout: 600_000 });
  await rename(tmp, bin);
  return { bin };
}

/** Reads `blob` (a file) with the snapshotter's reader, verifying the TOC against `tocDigest` and every chunk against its digest. */
export async function checkWithSnapshotterReader(bin: string, blob: string, tocDigest: string): Promise<EstargzCheck> {
  const { stdout } = await exec(bin, [blob, tocDigest], { maxBuffer: 1 << 26 });
  return JSON.parse(stdout) as EstargzCheck;
}
