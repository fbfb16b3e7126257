import { spawn, type ChildProcess } from 'node:child_process';
import { createLogger, errorMessage, programNotFound, type BuildLog } from '@prebuilt/core/backend';
import { dockerPath, type Exit } from './buildx-cli.js';

const debug = createLogger('buildx');

export type BuildxOutcome =
  | { kind: 'exit'; exit: Exit }
  | { kind: 'timeout' }
  | { kind: 'cancelled' }
  | { kind: 'spawn-error'; error: unknown };

export interface BuildxRun {
  docker: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  /** The Dockerfile, written to the command's stdin. */
  dockerfile: string;
  log: BuildLog;
  signal: AbortSignal | undefined;
  timeoutMs: number;
  /** Between SIGINT and SIGKILL when the build is stopped. */
  killGraceMs: number;
}

/**
 * Runs `docker buildx build` in its own process group, its output into the log. A timeout or an
 * aborted signal stops the whole group (SIGINT, then SIGKILL after the grace period).
 */
export function runBuildx(run: BuildxRun): Promise<BuildxOutcome> {
  return new Promise<BuildxOutcome>((resolve) => {
    let file: string | undefined;
    try {
      file = dockerPath(run.docker, run.env);
    } catch (error) {
      return resolve({ kind: 'spawn-error', error });
    }
    if (file === undefined) return resolve({ kind: 'spawn-error', error: programNotFound(run.docker) });
    // Its own process group, so stopping the build stops the buildx plugin under docker too.
    const child: ChildProcess = spawn(file, run.args, { env: run.env, stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    let stopped: 'timeout' | 'cancelled' | undefined;
    let killTimer: NodeJS.Timeout | undefined;
    const stop = (why: 'timeout' | 'cancelled') => {
      if (stopped || child.exitCode !== null || child.signalCode !== null) return;
      stopped = why;
      debug('stopping docker buildx build (%s)', why);
      signalGroup(child, 'SIGINT');
      killTimer = setTimeout(() => signalGroup(child, 'SIGKILL'), run.killGraceMs);
    };
    const onAbort = () => stop('cancelled');
    run.signal?.addEventListener('abort', onAbort, { once: true });
    const timeout = setTimeout(() => stop('timeout'), run.timeoutMs);
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => run.log.write(chunk));
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => run.log.write(chunk));
    child.stdin!.on('error', (error) => debug('stdin of docker buildx build: %s', errorMessage(error)));
    child.stdin!.end(run.dockerfile);
    let settled = false;
    const finish = (outcome: BuildxOutcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(timeout);
      if (killTimer) clearTimeout(killTimer);
      run.signal?.removeEventListener('abort', onAbort);
      resolve(outcome);
    };
    child.on('error', (error) => finish({ kind: 'spawn-error', error }));
    child.on('close', (code, sig) => {
      // Anything left in the group (a plugin that ignored SIGINT) goes too.
      if (stopped) signalGroup(child, 'SIGKILL');
      finish(stopped ? { kind: stopped } : { kind: 'exit', exit: { code, signal: sig } });
    });
    if (run.signal?.aborted) stop('cancelled');
  });
}

function signalGroup(child: ChildProcess, sig: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, sig);
  } catch {
    // The group is gone already.
  }
}
