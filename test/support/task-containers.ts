// How the FAKE Argo controller and the FAKE AWS Batch run a task: one container per task with the
// Docker daemon (`docker run --network host`), the task's image, command, args and environment,
// host folders mounted for the pod's emptyDir volumes. The pulled image's digest is recorded.
import { spawn } from 'node:child_process';

export interface TaskContainer {
  /** What the task is called in the workflow (`body(1:2)`), for logs and failures. */
  name: string;
  image: string;
  /** Replaces the image's entrypoint when given. */
  command?: readonly string[];
  args?: readonly string[];
  env: Readonly<Record<string, string>>;
  /** Host folder → path in the container. */
  mounts?: ReadonlyArray<{ host: string; container: string }>;
}

export interface TaskResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  /** `repo@sha256:…` digests Docker reports for the image it ran (empty for a runner without pulls). */
  repoDigests: string[];
}

export type TaskRunner = (task: TaskContainer) => Promise<TaskResult>;

function docker(args: readonly string[], env: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done, fail) => {
    const child = spawn('docker', args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', fail);
    child.on('close', (code, signal) => done({ code: code ?? (signal ? 128 : 1), stdout, stderr }));
  });
}

/**
 * Runs each task with `docker run --rm --network host`: pulls the image first (so the digest that
 * ran is the registry's) and passes the environment through the docker CLI's own environment
 * (`-e NAME`), so no value lands on a command line.
 */
export function dockerTaskRunner(options: { dockerHost?: string } = {}): TaskRunner {
  const base: NodeJS.ProcessEnv = { PATH: process.env['PATH'], HOME: process.env['HOME'], ...(options.dockerHost ? { DOCKER_HOST: options.dockerHost } : {}) };
  return async (task) => {
    const pulled = await docker(['pull', '--quiet', task.image], base);
    if (pulled.code !== 0) throw new Error(`docker pull ${task.image} for task ${task.name} failed: ${pulled.stderr.trim()}`);
    const inspected = await docker(['image', 'inspect', '--format', '{{json .RepoDigests}}', task.image], base);
    const repoDigests = inspected.code === 0 ? (JSON.parse(inspected.stdout) as string[]) : [];
    const args = ['run', '--rm', '--network', 'host', '--pull', 'never'];
    for (const mount of task.mounts ?? []) args.push('-v', `${mount.host}:${mount.container}`);
    // The docker CLI's own variables cannot double as a task's: those go on the command line.
    for (const [name, value] of Object.entries(task.env)) args.push('-e', name in base ? `${name}=${value}` : name);
    if (task.command?.length) args.push('--entrypoint', task.command[0]!);
    args.push(task.image, ...(task.command?.slice(1) ?? []), ...(task.args ?? []));
    const ran = await docker(args, { ...task.env, ...base });
    return { exitCode: ran.code, stdout: ran.stdout, stderr: ran.stderr, repoDigests };
  };
}
