import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface HtpasswdRegistry {
  /** host:port on 127.0.0.1 (plain HTTP). */
  host: string;
  /** Stops the registry process this fixture started and removes its directory. */
  stop(): Promise<void>;
}

/** Why a private htpasswd registry cannot be started here, or undefined when it can. */
export async function htpasswdRegistryMissing(): Promise<string | undefined> {
  for (const [command, pkg] of [['docker-registry', 'docker-registry'], ['htpasswd', 'apache2-utils']] as const) {
    try {
      await run('sh', ['-c', `command -v ${command}`]);
    } catch {
      return `${command} is not installed (apt-get install -y ${pkg})`;
    }
  }
  return undefined;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

/**
 * Starts the reference registry (distribution 2.8) on a free 127.0.0.1 port with Basic auth from a
 * bcrypt htpasswd file holding one user, e.g. `AWS` with an ECR token as the password.
 */
export async function startHtpasswdRegistry(username: string, password: string): Promise<HtpasswdRegistry> {
  const dir = await mkdtemp(join(tmpdir(), 'prebuilt-htpasswd-registry-'));
  const child = await new Promise<ChildProcess>((resolve, reject) => {
    const htpasswd = spawn('htpasswd', ['-B', '-i', '-c', join(dir, 'htpasswd'), username], { stdio: ['pipe', 'ignore', 'pipe'] });
    let stderr = '';
    htpasswd.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    htpasswd.on('error', reject);
    htpasswd.on('close', (code) => (code === 0 ? resolve(htpasswd) : reject(new Error(`htpasswd failed (${code}): ${stderr}`))));
    htpasswd.stdin.end(password);
  });
  void child;
  const port = await freePort();
  await writeFile(
    join(dir, 'config.yml'),
    [
      'version: 0.1',
      'log:',
      '  level: error',
      '  accesslog:',
      '    disabled: true',
      'storage:',
      '  filesystem:',
      `    rootdirectory: ${join(dir, 'data')}`,
      '  delete:',
      '    enabled: true',
      'http:',
      `  addr: 127.0.0.1:${port}`,
      'auth:',
      '  htpasswd:',
      '    realm: prebuilt-test',
      `    path: ${join(dir, 'htpasswd')}`,
      '',
    ].join('\n'),
  );
  const registry = spawn('docker-registry', ['serve', join(dir, 'config.yml')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  registry.stderr.on('data', (chunk: Buffer) => (log = (log + chunk.toString()).slice(-2000)));
  const stop = async (): Promise<void> => {
    if (registry.exitCode === null && registry.signalCode === null) {
      const exited = new Promise((resolve) => registry.once('exit', resolve));
      registry.kill('SIGTERM');
      await exited;
    }
    await rm(dir, { recursive: true, force: true });
  };
  const host = `127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    if (registry.exitCode !== null) break;
    try {
      const response = await fetch(`http://${host}/v2/`, { signal: AbortSignal.timeout(1000) });
      if (response.status === 401) return { host, stop };
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  await stop();
  throw new Error(`the htpasswd registry did not start on ${host}: ${log}`);
}
