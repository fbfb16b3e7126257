import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { BuildRequest, BuildResult, BuildService, BuildServiceDefinition, RegistryCredentials } from '../contracts.js';
import {
  DIGEST_PATTERN,
  describeError,
  isCancelledError,
  isSecretLike,
  randomLabel,
  rejectionOf,
} from './conformance-checks.js';
import { createUnderTest, definitionCheck, describeSuite, expectNamed } from './suite-setup.js';

export interface BuildServiceConformanceOptions {
  /** Shown in the suite's title, e.g. `docker`. */
  name: string;
  /** The backend's definition (its package's default export). When given, its shape is checked. */
  definition?: BuildServiceDefinition;
  /** Creates the service under test. Default: `definition.create(createOptions ?? {}, { env: process.env, cwd })`. */
  create?: () => BuildService | Promise<BuildService>;
  /** Options for `definition.create` when `create` is not given. */
  createOptions?: Record<string, unknown>;
  /** A base image the service can pull for `FROM` (pinned by digest is best). It needs no shell. */
  baseImage: string;
  /** A fresh tag the service can push to, e.g. `127.0.0.1:5000/conformance:<label>`. Called once per build. */
  imageTag: (label: string) => string | Promise<string>;
  /** Credentials for pushing to those tags, as the registry backend would hand them over. */
  pushCredentials?: () => RegistryCredentials | undefined | Promise<RegistryCredentials | undefined>;
  /** The Docker platform to build for. Default `linux/amd64`. */
  platform?: string;
  /**
   * The digest the registry now has under a tag (or undefined). When given, the suite checks that
   * a successful build really pushed the digest it returned.
   */
  pushedDigest?: (imageTag: string) => Promise<string | undefined>;
  /**
   * A Dockerfile instruction that keeps the build busy for ≥ 20 s, used to cancel a running build.
   * Default `RUN sleep 600` (needs a shell in the base image); `false` for a service that runs no
   * instruction: then the test cancels a build whose base is {@link slowBaseImage}, or is skipped
   * without one.
   */
  slowInstruction?: string | false;
  /**
   * For a service that runs no instruction (`slowInstruction: false`): a base image whose pull
   * never finishes — e.g. on a registry on 127.0.0.1 that answers `/v2/` and then holds every
   * request open — so the cancel test aborts a build waiting on the network.
   */
  slowBaseImage?: string;
  /** Milliseconds to let the slow build run before aborting it. Default 1500. */
  cancelAfterMs?: number;
  /** Per-test timeout for building tests, ms. Default 120000. */
  timeoutMs?: number;
  /** When set, the whole suite is skipped and this reason is shown (e.g. `no Docker daemon at /var/run/docker.sock`). */
  skip?: string | false;
}

/**
 * The build service contract, as vitest tests. Call it at the top level of a test file:
 *
 * ```ts
 * import { runBuildServiceConformance } from '@prebuilt/core/conformance';
 * runBuildServiceConformance({ name: 'acme', definition, baseImage, imageTag: (l) => `127.0.0.1:5000/t:${l}` });
 * ```
 */
export function runBuildServiceConformance(options: BuildServiceConformanceOptions): void {
  describeSuite(`build service conformance: ${options.name}`, options.skip, () => {
    const suite = buildSuite(options);
    beforeAll(async () => {
      suite.contextDir = mkdtempSync(join(tmpdir(), 'prebuilt-conformance-'));
      suite.nonce = randomLabel();
      writeFileSync(join(suite.contextDir, 'conformance.txt'), `prebuilt conformance ${suite.nonce}\n`);
      suite.service = await createUnderTest(options, 'runBuildServiceConformance');
    });
    afterAll(async () => {
      await suite.service?.close?.();
      if (suite.contextDir) rmSync(suite.contextDir, { recursive: true, force: true });
    });
    shapeChecks(suite);
    buildChecks(suite);
    cancelChecks(suite);
  });
}

/** What the checks of one suite share: the service under test and its build context (set in beforeAll). */
interface BuildSuite {
  options: BuildServiceConformanceOptions;
  service: BuildService;
  contextDir: string;
  /** A random label in the context's file, so no build is cached from another run. */
  nonce: string;
  timeout: number;
  /** A build request for `dockerfile` to a fresh tag. */
  request(dockerfile: string, extra?: Partial<BuildRequest>): Promise<BuildRequest>;
}

function buildSuite(options: BuildServiceConformanceOptions): BuildSuite {
  const platform = options.platform ?? 'linux/amd64';
  const suite: BuildSuite = {
    options,
    service: undefined as unknown as BuildService,
    contextDir: '',
    nonce: '',
    timeout: options.timeoutMs ?? 120_000,
    request: async (dockerfile, extra = {}) => ({
      dockerfile,
      contextDir: suite.contextDir,
      imageTag: await options.imageTag(randomLabel()),
      pushCredentials: await options.pushCredentials?.(),
      platform,
      ...extra,
    }),
  };
  return suite;
}

/** The definition's and the created service's shape. */
function shapeChecks(suite: BuildSuite): void {
  definitionCheck(suite.options.definition, 'build-service');

  it('create() gives a service with a name and buildAndPush()', () => {
    const { service } = suite;
    expectNamed(service, 'service');
    expect(typeof service.buildAndPush, 'service.buildAndPush').toBe('function');
  });
}

/** A good build pushes and returns its digest without leaking push secrets; a failing one is a result. */
function buildChecks(suite: BuildSuite): void {
  const { options, timeout } = suite;
  it('a good Dockerfile builds and pushes: { ok: true, digest: "sha256:…" }', { timeout }, async () => {
    const lines: string[] = [];
    const req = await suite.request(
      `FROM ${options.baseImage}\nCOPY conformance.txt /prebuilt-conformance/conformance.txt\n`,
      { log: (line) => lines.push(line) },
    );
    const result: BuildResult = await suite.service.buildAndPush(req);
    expect(result, `result of the build: ${JSON.stringify(result)}`).toMatchObject({ ok: true });
    const digest = (result as { digest?: unknown }).digest;
    expect(digest, 'result.digest').toMatch(DIGEST_PATTERN);
    expect(JSON.parse(JSON.stringify(result)), 'the result is plain JSON data').toEqual(result);
    for (const line of lines) expect(typeof line, 'log lines are strings').toBe('string');
    if (options.pushedDigest) {
      expect(await options.pushedDigest(req.imageTag), `digest the registry has for ${req.imageTag}`).toBe(digest);
    }
    // Push credentials never reach the log or the result.
    const secrets = Object.values(req.pushCredentials ?? {}).filter(isSecretLike).map((s) => s.reveal());
    for (const secret of secrets) {
      expect(lines.some((l) => l.includes(secret)), 'a push secret appeared in a log line').toBe(false);
      expect(JSON.stringify(result).includes(secret), 'a push secret appeared in the result').toBe(false);
    }
  });

  it('a failing Dockerfile is a result { ok: false, reason, logTail }, not an exception', { timeout }, async () => {
    const req = await suite.request(`FROM ${options.baseImage}\nCOPY missing-${suite.nonce}.txt /missing.txt\n`);
    let result: BuildResult | undefined;
    let thrown: unknown;
    try {
      result = await suite.service.buildAndPush(req);
    } catch (error) {
      thrown = error;
    }
    expect(thrown, `buildAndPush threw: ${describeError(thrown)}`).toBeUndefined();
    expect(result?.ok, 'result.ok').toBe(false);
    const failed = result as { reason?: unknown; logTail?: unknown };
    expect(typeof failed.reason, 'result.reason').toBe('string');
    expect((failed.reason as string).length, 'result.reason is not empty').toBeGreaterThan(0);
    expect(Array.isArray(failed.logTail), 'result.logTail is an array').toBe(true);
    for (const line of failed.logTail as unknown[]) expect(typeof line, 'logTail lines are strings').toBe('string');
    if (options.pushedDigest) {
      expect(await options.pushedDigest(req.imageTag), 'nothing is pushed for a failed build').toBeUndefined();
    }
  });
}

/** An aborted signal, before or during a build, is a CancelledError. */
function cancelChecks(suite: BuildSuite): void {
  const { options, timeout } = suite;
  it('an already aborted signal rejects with CancelledError', { timeout }, async () => {
    const controller = new AbortController();
    controller.abort();
    const req = await suite.request(`FROM ${options.baseImage}\nCOPY conformance.txt /c.txt\n`, { signal: controller.signal });
    const error = await rejectionOf(suite.service.buildAndPush(req));
    expect(isCancelledError(error), `expected CancelledError, got ${describeError(error)}`).toBe(true);
  });

  const slowDockerfile = options.slowInstruction !== false
    ? `FROM ${options.baseImage}\n${options.slowInstruction || 'RUN sleep 600'}\n`
    : options.slowBaseImage !== undefined ? `FROM ${options.slowBaseImage}\nCOPY conformance.txt /c.txt\n` : undefined;
  it.skipIf(slowDockerfile === undefined)(
    `aborting a running build rejects with CancelledError promptly${slowDockerfile === undefined ? ' (skipped: slowInstruction is false and no slowBaseImage)' : ''}`,
    { timeout },
    async () => {
      const controller = new AbortController();
      const req = await suite.request(slowDockerfile!, { signal: controller.signal });
      const started = Date.now();
      const timer = setTimeout(() => controller.abort(), options.cancelAfterMs ?? 1500);
      try {
        const error = await rejectionOf(suite.service.buildAndPush(req));
        expect(isCancelledError(error), `expected CancelledError, got ${describeError(error)}`).toBe(true);
        expect(Date.now() - started, 'ms until the build stopped').toBeLessThan((options.cancelAfterMs ?? 1500) + 15_000);
      } finally {
        clearTimeout(timer);
      }
    },
  );
}
