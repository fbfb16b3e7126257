/**
 * The private containerd + stargz snapshotter fixture is ready only when a snapshot call through
 * containerd reaches the snapshotter (estargz-base.test.ts once failed with "connection refused"
 * on the snapshotter's socket: containerd's proxy dialled a socket file that did not listen yet).
 */
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { accepts, stargzMissing, startStargzNode } from './containerd.js';
import { describeOrFailInCi } from './services.js';

const exec = promisify(execFile);
const stargzReason = await stargzMissing();

describe('accepts: a unix socket is ready when something listens on it', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'prebuilt-accepts-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('a socket file left by a killed server (no listener: connection refused) is not ready; a missing one neither; a listening one is', async () => {
    const path = join(dir, 's.sock');
    expect(await accepts(path)).toBe(false);
    const server = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(path)}, () => console.log('up'))`], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise((r) => server.stdout!.once('data', r));
    expect(await accepts(path)).toBe(true);
    server.kill('SIGKILL');
    await new Promise((r) => server.once('exit', r));
    expect((await exec('stat', ['-c', '%F', path])).stdout.trim()).toBe('socket');
    expect(await accepts(path)).toBe(false);
  });
});

describeOrFailInCi('startStargzNode: ready means the snapshotter answers through containerd', stargzReason, () => {
  it('three nodes in a row: a snapshot prepared through containerd right after the start succeeds, and stop removes the directory', async () => {
    for (let i = 0; i < 3; i++) {
      const node = await startStargzNode('no_prometheus = true\n');
      try {
        const snapshots = ['-a', node.socket, 'snapshots', '--snapshotter', 'stargz'];
        await exec('ctr', [...snapshots, 'prepare', `first-call-${i}`], { timeout: 10_000 });
        await exec('ctr', [...snapshots, 'rm', `first-call-${i}`], { timeout: 10_000 });
      } finally {
        await node.stop();
      }
      await expect(exec('test', ['-e', node.dir])).rejects.toThrow();
    }
  }, 180_000);
});
