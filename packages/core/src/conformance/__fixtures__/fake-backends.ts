/**
 * FAKE backends for proving the conformance suites: an in-memory image registry and a build
 * service that "builds" by interpreting a few Dockerfile instructions and writes to it. They
 * follow the contract on purpose; the broken variants break one rule each.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  defineBuildService,
  defineImageRegistry,
  type BuildRequest,
  type BuildResult,
  type BuildService,
  type BuildServiceDefinition,
  type ImageRegistry,
  type ImageRegistryDefinition,
} from '../../contracts.js';
import { CancelledError, RegistryError } from '../../errors.js';
import { sleep } from '../../registry/retry.js';
import { Secret } from '../../secret.js';

export const FAKE_HOST = 'fake-registry.test:5000';

/** The fake's storage: reference (`host/repo:tag`) → manifest digest. */
export class FakeImageStore {
  readonly tags = new Map<string, string>();
  /** Reference → the manifest's annotations (none stored: `{}`). */
  readonly annotations = new Map<string, Record<string, string>>();
  constructor(readonly credentials: { username: string; password: string }) {}

  put(ref: string, content: string): string {
    const digest = `sha256:${createHash('sha256').update(content).digest('hex')}`;
    this.tags.set(ref, digest);
    return digest;
  }

  digestOf(ref: string): string | undefined {
    const at = ref.indexOf('@');
    if (at >= 0) {
      const digest = ref.slice(at + 1);
      return [...this.tags.values()].includes(digest) ? digest : undefined;
    }
    return this.tags.get(ref);
  }
}

function checkSignal(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new CancelledError('The fake operation was cancelled.');
}

async function fakeWork(ms: number, signal: AbortSignal | undefined): Promise<void> {
  checkSignal(signal);
  await sleep(ms, signal).catch(() => {
    throw new CancelledError('The fake build was cancelled.');
  });
}

export interface FakeRegistryBehaviour {
  /** Broken: the tag ignores the platform. */
  tagIgnoresPlatform?: boolean;
  /** Broken: the password is a plain string. */
  plainPassword?: boolean;
  /** Broken: every tag "exists". */
  alwaysExists?: boolean;
  /** Broken: imageExists reports annotations the manifest does not have. */
  wrongAnnotations?: boolean;
}

export function fakeImageRegistry(store: FakeImageStore, behaviour: FakeRegistryBehaviour = {}): ImageRegistry {
  return {
    name: 'fake-memory',
    imageTag: ({ envId, platform }) =>
      behaviour.tagIgnoresPlatform ? `${FAKE_HOST}/prebuilt/envs:${envId}` : `${FAKE_HOST}/prebuilt/envs:${platform}-${envId.slice(0, 40)}`,
    pullTag: (pushTag) => pushTag.replace(FAKE_HOST, 'fake-registry.cluster.test'),
    async pushCredentials() {
      return {
        registry: FAKE_HOST,
        username: store.credentials.username,
        password: (behaviour.plainPassword ? store.credentials.password : new Secret(store.credentials.password)) as Secret,
        source: 'fake registry options',
      };
    },
    async pullConfig() {
      return { kubernetes: { imagePullSecrets: ['fake-pull-secret'] } };
    },
    async imageExists(pushTag, opts) {
      checkSignal(opts?.signal);
      const digest = store.digestOf(pushTag);
      if (behaviour.alwaysExists && digest === undefined) return { exists: true, digest: `sha256:${'f'.repeat(64)}` };
      if (digest === undefined) return { exists: false };
      if (!opts?.annotations) return { exists: true, digest };
      const annotations = behaviour.wrongAnnotations ? { 'org.opencontainers.image.title': 'not what was pushed' } : { ...store.annotations.get(pushTag) };
      return { exists: true, digest, annotations };
    },
    async baseImageIdentity(ref, _platform, opts) {
      checkSignal(opts?.signal);
      const digest = store.digestOf(ref);
      if (digest === undefined) throw new RegistryError(`The fake registry has no image ${ref}.`, { registry: FAKE_HOST, status: 404 });
      return { ref, digest, pinned: `${ref.replace(/[:@][^/]*$/, '')}@${digest}` };
    },
  };
}

export interface FakeBuildBehaviour {
  /** Broken: a failing build throws instead of returning { ok: false }. */
  throwOnFailure?: boolean;
  /** Broken: the signal is ignored. */
  ignoreSignal?: boolean;
}

/**
 * Interprets FROM, COPY <file> <dest>, RUN sleep <s> and RUN exit <n>; anything else fails the
 * build. The digest covers the base digest, the instructions and the copied files.
 */
export function fakeBuildService(store: FakeImageStore, behaviour: FakeBuildBehaviour = {}): BuildService {
  return {
    name: 'fake-builder',
    async buildAndPush(request: BuildRequest): Promise<BuildResult> {
      const signal = behaviour.ignoreSignal ? undefined : request.signal;
      checkSignal(signal);
      const logTail: string[] = [];
      const log = (line: string): void => {
        logTail.push(line);
        request.log?.(line);
      };
      const fail = (reason: string): BuildResult => {
        if (behaviour.throwOnFailure) throw new Error(reason);
        return { ok: false, reason, logTail: logTail.slice(-20) };
      };
      request.onPhase?.('building');
      const hash = createHash('sha256');
      const instructions = request.dockerfile.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
      for (const [index, instruction] of instructions.entries()) {
        log(`step ${index + 1}/${instructions.length}: ${instruction}`);
        const [op, ...args] = instruction.split(/\s+/);
        hash.update(`${instruction}\n`);
        if (op === 'FROM') {
          const digest = store.digestOf(args[0] ?? '');
          if (digest === undefined) return fail(`base image ${args[0]} not found in the fake registry`);
          hash.update(digest);
        } else if (op === 'COPY') {
          try {
            hash.update(readFileSync(join(request.contextDir, args[0] ?? '')));
          } catch {
            return fail(`COPY failed: ${args[0]} is not in the build context`);
          }
        } else if (op === 'RUN' && args[0] === 'sleep') {
          if (behaviour.ignoreSignal) continue;
          await fakeWork(Number(args[1]) * 1000, signal);
        } else if (op === 'RUN' && args[0] === 'exit') {
          if (args[1] !== '0') return fail(`RUN exit ${args[1]} returned a non-zero code: ${args[1]}`);
        } else {
          return fail(`the fake builder does not support: ${instruction}`);
        }
      }
      request.onPhase?.('pushing');
      const credentials = request.pushCredentials;
      if (credentials?.username !== store.credentials.username || credentials.password?.reveal() !== store.credentials.password) {
        return fail(`push to ${FAKE_HOST} denied: wrong credentials`);
      }
      checkSignal(signal);
      const digest = store.put(request.imageTag, hash.digest('hex'));
      log(`pushed ${request.imageTag}@${digest}`);
      return { ok: true, digest };
    },
  };
}

export function fakeRegistryDefinition(store: FakeImageStore): ImageRegistryDefinition {
  return defineImageRegistry({ name: 'fake-memory', description: 'FAKE in-memory registry', create: () => fakeImageRegistry(store) });
}

export function fakeBuildServiceDefinition(store: FakeImageStore): BuildServiceDefinition {
  return defineBuildService({ name: 'fake-builder', description: 'FAKE Dockerfile interpreter', create: () => fakeBuildService(store) });
}

/** Pushes a small "image" into the fake store, as a real push hook would with skopeo. */
export async function fakePush(store: FakeImageStore, pushTag: string): Promise<{ digest: string; annotations: Record<string, string> }> {
  const annotations = { 'org.opencontainers.image.ref.name': pushTag };
  store.annotations.set(pushTag, annotations);
  return { digest: store.put(pushTag, `fake image for ${pushTag} ${Math.random()}`), annotations };
}
