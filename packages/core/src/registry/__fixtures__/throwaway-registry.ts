// A registry of its own for one test: the reference registry (distribution, `docker-registry`, the one
// the shared test registries run) on a free 127.0.0.1 port, plain HTTP, no auth, its storage in a
// temp dir removed when it is disposed. For a test that stores what the shared registries should not
// keep (e.g. a blob over 2 GiB on every run).
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../../../../test/free-port.js';

export interface ThrowawayRegistry {
  /** host:port on 127.0.0.1. */
  host: string;
  /** Stops the registry and removes its storage. */
  [Symbol.asyncDispose](): Promise<void>;
}


export async function startThrowawayRegistry(): Promise<ThrowawayRegistry> {
  const dir = await mkdtemp(join(tmpdir(), 'prebuilt-throwaway-registry-'));
  const port = await freePort();
  const config = join(dir, 'config.yml');
  const lines = ['version: 0.1', 'log:', '  level: error', '  accesslog:', '    disabled: true', 'storage:', '  filesystem:', `    rootdirectory: ${join(dir, 'data')}`, 'http:', `  addr: 127.0.0.1:${port}`, ''];
  await writeFile(config, lines.join('\n'));
  const registry = spawn('docker-registry', ['serve', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  registry.stderr.on('data', (chunk: Buffer) => (log = (log + chunk.toString()).slice(-2000)));
  const spawned = new Promise<Error | undefined>((resolve) => {
    registry.once('error', resolve);
    registry.once('spawn', () => resolve(undefined));
  });
  const dispose = async (): Promise<void> => {
    if (registry.pid !== undefined && registry.exitCode === null && registry.signalCode === null) {
      const exited = new Promise((resolve) => registry.once('exit', resolve));
      registry.kill('SIGTERM');
      await exited;
    }
    await rm(dir, { recursive: true, force: true });
  };
  const failed = await spawned;
  if (failed) {
    await dispose();
    throw new Error(`docker-registry could not be started (apt-get install -y docker-registry): ${failed.message}`);
  }
  const host = `127.0.0.1:${port}`;
  for (let i = 0; i < 100 && registry.exitCode === null; i++) {
    try {
      const response = await fetch(`http://${host}/v2/`, { signal: AbortSignal.timeout(1000) });
      if (response.status === 200) return { host, [Symbol.asyncDispose]: dispose };
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  await dispose();
  throw new Error(`the throwaway registry did not start on ${host}: ${log}`);
}
