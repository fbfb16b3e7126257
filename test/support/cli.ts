// Runs the real `prebuilt` CLI (packages/cli/bin/prebuilt.js, after `pnpm build`) as a child
// process, asynchronously: the test process keeps serving the fixture channel, the index and the
// fault proxy while the CLI runs.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FixtureServer, GeneratedFixtures } from '../../packages/fixtures/dist/index.js';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const BIN = join(ROOT, 'packages', 'cli', 'bin', 'prebuilt.js');

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** stdout + stderr. */
  output: string;
}

export interface CliRun {
  child: ChildProcess;
  result: Promise<CliResult>;
  /** Resolves once stderr or stdout matches (rejects when the process ends first). */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<void>;
  readonly stdout: string;
  readonly stderr: string;
}

/** The environment of a CLI run: this process's, minus every prebuilt/pip/debug/docker setting. */
export function cleanEnv(extra: Record<string, string | undefined> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (value === undefined || /^(METAFLOW_|PIP_|DEBUG$|DOCKER_CONFIG$|AWS_|GOOGLE_)/.test(key)) continue;
    env[key] = value;
  }
  for (const [key, value] of Object.entries(extra)) {
    if (value === undefined) delete env[key];
    else env[key] = value;
  }
  return env;
}

export function startCli(args: readonly string[], options: { cwd: string; env: Record<string, string> }): CliRun {
  const child = spawn(process.execPath, [BIN, ...args], { cwd: options.cwd, env: options.env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  const watchers = new Set<() => void>();
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
    for (const check of watchers) check();
  });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
    for (const check of watchers) check();
  });
  const result = new Promise<CliResult>((resolve) => {
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr, output: `${stdout}${stderr}` }));
  });
  return {
    child,
    result,
    get stdout() {
      return stdout;
    },
    get stderr() {
      return stderr;
    },
    waitFor(pattern, timeoutMs = 120_000) {
      return new Promise<void>((resolve, reject) => {
        const check = (): void => {
          if (pattern.test(stdout) || pattern.test(stderr)) {
            cleanup();
            resolve();
          }
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`timed out waiting for ${pattern} in the CLI output:\n${stdout}${stderr}`));
        }, timeoutMs);
        const cleanup = (): void => {
          clearTimeout(timer);
          watchers.delete(check);
        };
        watchers.add(check);
        void result.then((r) => {
          if (!watchers.has(check)) return;
          cleanup();
          if (pattern.test(r.stdout) || pattern.test(r.stderr)) resolve();
          else reject(new Error(`the CLI ended (code ${r.code}, signal ${r.signal}) before ${pattern} appeared:\n${r.output}`));
        });
        check();
      });
    },
  };
}

/** Runs the CLI to its end. */
export function runCli(args: readonly string[], options: { cwd: string; env: Record<string, string> }): Promise<CliResult> {
  return startCli(args, options).result;
}

/** Lines that look like a JavaScript stack frame. */
export function stackLines(text: string): string[] {
  return text.split('\n').filter((line) => /^\s+at /.test(line));
}

/** The example channel and index, served on 127.0.0.1 by this process, and a temp work dir. */
export interface World {
  dir: string;
  fixtures: GeneratedFixtures;
  server: FixtureServer;
  pythonVersion: string;
  /** Environment for a CLI run against the example channel/index (no registry or build service yet). */
  env(extra?: Record<string, string | undefined>): Record<string, string>;
  /** Writes a flow file into a fresh subdirectory; returns its directory. */
  flow(name: string, source: string): Promise<string>;
  close(): Promise<void>;
}

export async function createWorld(prefix: string): Promise<World> {
  const { generateExampleFixtures, startFixtureServer } = await import('../../packages/fixtures/dist/index.js');
  const dir = await mkdtemp(join(tmpdir(), `prebuilt-${prefix}-`));
  const fixtures = await generateExampleFixtures(join(dir, 'fixtures'), { python: {} });
  const server = await startFixtureServer({ channels: { example: fixtures.channelDir }, indexes: { example: fixtures.indexDir } });
  const dockerConfig = join(dir, 'docker-config');
  await mkdir(dockerConfig, { recursive: true });
  const pythonVersion = fixtures.python[0]!.record.version;
  let flows = 0;
  return {
    dir,
    fixtures,
    server,
    pythonVersion,
    env(extra = {}) {
      return cleanEnv({
        METAFLOW_PREBUILT_CONDA_CHANNELS: server.channelUrl,
        METAFLOW_PREBUILT_PYPI_INDEX_URL: server.indexUrl,
        METAFLOW_PREBUILT_PIP_ISOLATED: '1',
        METAFLOW_PREBUILT_DEFAULT_PYTHON: pythonVersion,
        METAFLOW_PREBUILT_CACHE_DIR: join(dir, 'cache'),
        DOCKER_CONFIG: dockerConfig,
        ...extra,
      });
    },
    async flow(name, source) {
      const flowDir = join(dir, `flow-${++flows}`);
      await mkdir(flowDir, { recursive: true });
      await writeFile(join(flowDir, name), source);
      return flowDir;
    },
    close: () => server.close(),
  };
}

/** A one-step flow whose env is conda only (python + tinycli + its dependencies). */
export const SMALL_FLOW = `from metaflow import FlowSpec, conda, step


class SmallFlow(FlowSpec):
    @conda(python="3.11", packages={"tinycli": ""})
    @step
    def start(self):
        self.next(self.end)

    @conda(python="3.11", packages={"tinycli": ""})
    @step
    def end(self):
        pass


if __name__ == "__main__":
    SmallFlow()
`;

/** The peak resident memory (VmHWM) of a process so far, in MiB; undefined once it is gone. */
async function peakRssMiB(pid: number): Promise<number | undefined> {
  const { readFile } = await import('node:fs/promises');
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const match = /^VmHWM:\s+(\d+)\s+kB/m.exec(status);
    return match ? Number(match[1]) / 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** Runs the CLI to its end, sampling its peak resident memory (Linux /proc) every 50 ms. */
export async function runCliMeasured(args: readonly string[], options: { cwd: string; env: Record<string, string> }): Promise<CliResult & { peakRssMiB: number }> {
  const run = startCli(args, options);
  let peak = 0;
  let done = false;
  const sample = async (): Promise<void> => {
    while (!done) {
      const now = run.child.pid === undefined ? undefined : await peakRssMiB(run.child.pid);
      if (now !== undefined) peak = Math.max(peak, now);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  };
  const sampling = sample();
  const result = await run.result;
  done = true;
  await sampling;
  return { ...result, peakRssMiB: peak };
}

/** Every file under `dir` (recursively); none when it does not exist. */
export async function filesUnder(dir: string): Promise<string[]> {
  const { readdir } = await import('node:fs/promises');
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await filesUnder(path)));
    else if (entry.isFile()) out.push(path);
  }
  return out;
}
