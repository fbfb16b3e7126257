/**
 * A FAKE kaniko executor (not kaniko) for the fake Kubernetes API: it reads its arguments the way
 * kaniko does, fetches the `--context` tar.gz from the (fake) bucket, and "builds" the Dockerfile
 * in it: `COPY <src>` fails when `<src>` is not in the context, `RUN sleep <n>` sleeps until the
 * pod is deleted or the time is up, `RUN exit <n>` fails. On success it writes a sha256 of the
 * Dockerfile, destination and copied files to the termination log, as `--digest-file` does.
 */
import { createHash } from 'node:crypto';
import { untarGz } from '@prebuilt/fixtures';
import type { FakeExecution, FakeExecutor } from './fake-kubernetes.js';

export interface FakeKanikoOptions {
  /** Fetches a `gs://` or `s3://` context URL. */
  fetchContext(url: string): Promise<Buffer>;
  /** Called with every execution, before the build starts (for assertions on args, secrets, …). */
  onExecution?: (execution: FakeExecution, args: Record<string, string>) => void;
  /**
   * Pushes for real: gets the destination and the docker config.json mounted at /kaniko/.docker
   * (undefined when none is), returns the pushed digest. Default: nothing is pushed and the digest
   * is a hash of the inputs.
   */
  push?: (destination: string, dockerConfig: string | undefined) => Promise<string>;
}

export function fakeKanikoExecutor(options: FakeKanikoOptions): FakeExecutor {
  return async (execution) => {
    const args: Record<string, string> = {};
    for (const arg of execution.container['args'] as string[]) {
      const m = /^--([^=]+)=(.*)$/.exec(arg);
      if (m) args[m[1]!] = m[2]!;
    }
    options.onExecution?.(execution, args);
    const { log, signal } = execution;
    log(`INFO[0000] Retrieving build context from ${args['context']}`);
    const files = await untarGz(await options.fetchContext(args['context']!));
    const dockerfile = files.get(args['dockerfile']!);
    if (!dockerfile) {
      log(`Error: error resolving dockerfile path: please provide a valid path to a Dockerfile within the build context with --dockerfile`);
      return { exitCode: 1 };
    }
    const hash = createHash('sha256').update(dockerfile).update(args['destination']!).update(args['custom-platform'] ?? '');
    for (const raw of dockerfile.toString('utf8').split('\n')) {
      const line = raw.trim();
      if (line === '' || line.startsWith('#')) continue;
      const [instruction, ...rest] = line.split(/\s+/);
      log(`INFO[0001] ${line}`);
      if (/^FROM$/i.test(instruction!)) log(`INFO[0001] Retrieving image manifest ${rest[0]}`);
      if (/^COPY$/i.test(instruction!)) {
        const content = files.get(rest[0]!);
        if (!content) {
          log(`error building image: error building stage: failed to execute command: resolving src: failed to get fileinfo for /kaniko/buildcontext/${rest[0]}: lstat /kaniko/buildcontext/${rest[0]}: no such file or directory`);
          return { exitCode: 1 };
        }
        hash.update(content);
      }
      if (/^RUN$/i.test(instruction!) && rest[0] === 'sleep') {
        log(`INFO[0002] Running: [/bin/sh -c ${rest.join(' ')}]`);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, Number(rest[1]) * 1000);
          signal.addEventListener('abort', () => (clearTimeout(timer), resolve()), { once: true });
        });
        if (signal.aborted) return { exitCode: 137 };
      }
      if (/^RUN$/i.test(instruction!) && rest[0] === 'exit') {
        log(`error building image: error building stage: failed to execute command: waiting for process to exit: exit status ${rest[1]}`);
        return { exitCode: 1 };
      }
    }
    log(`INFO[0003] Pushing image to ${args['destination']}`);
    let digest = `sha256:${hash.digest('hex')}`;
    if (options.push) {
      // The config.json kaniko would read: the mounted secret's `.dockerconfigjson`.
      const mounted = Object.values(execution.secrets)[0]?.['.dockerconfigjson'];
      try {
        digest = await options.push(args['destination']!, mounted);
      } catch (error) {
        log(`error pushing image: ${String(error)}`);
        return { exitCode: 1 };
      }
    }
    log(`INFO[0004] Pushed ${args['destination']!.replace(/:[^:/]+$/, '')}@${digest}`);
    return { exitCode: 0, terminationMessage: digest };
  };
}
