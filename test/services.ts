// Helpers for tests that use the test services (scripts/test-services.sh, provided by
// test/global-setup.ts) or anything else .ci/run provides. Tests that need a component the machine
// lacks skip with a title that says what is missing and how to provide it; in CI (CI=true) they fail
// saying so instead. They never pass silently.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, inject, it } from 'vitest';

export interface RegistryEndpoint {
  /** host:port on 127.0.0.1, no scheme (plain HTTP). */
  host: string;
}
export interface BasicRegistryEndpoint extends RegistryEndpoint {
  username: string;
  password: string;
}
export interface TokenRegistryEndpoint extends BasicRegistryEndpoint {
  /** The token server's URL, as in the registry's `WWW-Authenticate: Bearer realm=...`. */
  realm: string;
  service: string;
  issuer: string;
}

/** What `scripts/test-services.sh up` writes to services.json; tests get it with `inject('services')`. */
export interface TestServices {
  /** DOCKER_HOST of a running daemon (no bridge: use host networking), or null. */
  dockerHost: string | null;
  /** The reference registry in three flavours (no auth, htpasswd Basic, Bearer token), or null. */
  registries: {
    plain: RegistryEndpoint;
    basic: BasicRegistryEndpoint;
    token: TokenRegistryEndpoint;
  } | null;
  /** A debootstrap bookworm minbase image (python3-minimal, ca-certificates) in the plain registry. */
  baseImage: { ref: string; digest: string } | null;
  /**
   * A second, modern Docker Engine (Debian trixie's 26.1 with its containerd 1.7, unpacked under
   * `root`) beside the one of `dockerHost`: DOCKER_HOST and server version, or null. Absent in a
   * services.json written before it existed.
   */
  modernDocker?: { host: string; version: string; root: string } | null;
  /**
   * A third Docker Engine: the modern one's binaries with the containerd image store (the default
   * of Docker Engine 29 and Docker Desktop; `docker info` driver-type io.containerd.snapshotter.v1),
   * or null. Absent in a services.json written before it existed.
   */
  containerdStoreDocker?: { host: string; version: string; root: string } | null;
  /** The docker CLI's buildx plugin (`docker buildx version` works), or null. */
  buildx?: { version: string } | null;
  /**
   * containerd >= 2.1 (Debian forky's, unpacked under `root`: binaries in `root`/usr/bin) for the
   * erofs snapshotter and differ, with the mkfs.erofs >= 1.8 its differ runs; no daemon runs: tests
   * start their own (packages/oci/src/__fixtures__/erofs-containerd.ts). Or null; absent in a
   * services.json written before it existed.
   */
  erofsContainerd?: { version: string; root: string; mkfsErofs: { path: string; version: string } } | null;
  /** What could not be provided, and how to provide it. */
  missing: string[];
  stateDir?: string;
  writtenAt?: string;
}

declare module 'vitest' {
  export interface ProvidedContext {
    services: TestServices;
  }
}

export const NO_SERVICES: TestServices = {
  dockerHost: null,
  registries: null,
  baseImage: null,
  modernDocker: null,
  containerdStoreDocker: null,
  buildx: null,
  erofsContainerd: null,
  missing: ['test services were not provided: run the tests from the repo root (vitest.config.ts runs test/global-setup.ts)'],
};

/** The test services provided by test/global-setup.ts. */
export function getServices(): TestServices {
  try {
    return inject('services') ?? NO_SERVICES;
  } catch {
    return NO_SERVICES;
  }
}

export type Need = 'docker' | 'registries' | 'baseImage' | 'modernDocker' | 'containerdStoreDocker' | 'buildx' | 'erofsContainerd';

const HOW = 'run `bash scripts/test-services.sh up` as root (or let test/global-setup.ts do it)';

/** Why a test needing `needs` cannot run here, or undefined when everything is there. */
export function missingFor(needs: readonly Need[], services: TestServices = getServices()): string | undefined {
  const absent: string[] = [];
  if (needs.includes('docker') && !services.dockerHost) absent.push('Docker daemon');
  if (needs.includes('registries') && !services.registries) absent.push('test registries');
  if (needs.includes('baseImage') && !services.baseImage) absent.push('base image');
  if (needs.includes('modernDocker') && !services.modernDocker) absent.push('modern Docker daemon (Docker Engine 26)');
  if (needs.includes('containerdStoreDocker') && !services.containerdStoreDocker) absent.push('Docker daemon with the containerd image store (Docker Engine 26)');
  if (needs.includes('buildx') && !services.buildx) absent.push('docker buildx plugin');
  if (needs.includes('erofsContainerd') && !services.erofsContainerd) absent.push('containerd 2.1 with mkfs.erofs >= 1.8 (erofs snapshotter)');
  if (absent.length === 0) return undefined;
  const why = services.missing.length > 0 ? services.missing.join('; ') : HOW;
  return `needs ${absent.join(', ')}: ${why}`;
}

/** A test title that says why the test is skipped, when it is. */
export function skipTitle(name: string, reason: string | undefined): string {
  return reason ? `${name} [skipped: ${reason}]` : name;
}

/**
 * `describe` for a suite that cannot run when `reason` is set: it skips saying why (its title) on a
 * developer's machine, and in CI (CI=true) stands as one failing test that says why, since CI must
 * run it (.ci/run provides everything it needs).
 */
export function describeOrFailInCi(name: string, reason: string | undefined, body: () => void, env: NodeJS.ProcessEnv = process.env): void {
  registerOrFailInCi(name, reason, () => (reason ? describe.skip(skipTitle(name, reason), body) : describe(name, body)), env);
}

/**
 * `register` (tests that skip, saying why, when `reason` is set: e.g. a conformance suite of
 * `@prebuilt/core/conformance` given `skip: reason`), except in CI (CI=true) when `reason` is set:
 * then one failing suite `name` saying why, by the rule of {@link describeOrFailInCi}.
 */
export function registerOrFailInCi(name: string, reason: string | undefined, register: () => void, env: NodeJS.ProcessEnv = process.env): void {
  if (reason && inCi(env)) describe(name, () => it(mustRun(reason), failInCi(name, reason)));
  else register();
}

/** `it` by the same rule as {@link describeOrFailInCi}: skipped saying why, or in CI one failing test saying why. */
export function itOrFailInCi(name: string, reason: string | undefined, body: () => Promise<void> | void, timeout?: number, env: NodeJS.ProcessEnv = process.env): void {
  if (!reason) it(name, body, timeout);
  else if (inCi(env)) it(`${name} [${mustRun(reason)}]`, failInCi(name, reason));
  else it.skip(skipTitle(name, reason), body, timeout);
}

/** Whether the tests run in CI (`.ci/run` sets CI=true), which provides everything they need. */
const inCi = (env: NodeJS.ProcessEnv): boolean => env['CI'] === 'true';

/** What a test that cannot run says in CI. */
const mustRun = (reason: string): string => `cannot run here, and CI must run it: ${reason}`;

function failInCi(name: string, reason: string): () => never {
  return () => {
    throw new Error(`${name}: cannot run: ${reason}`);
  };
}

/**
 * Inside a test, for a need known only once it runs (`ctx` is the test's context): skips the test
 * saying why on a developer's machine; in CI (CI=true) fails it saying why, by the rule of
 * {@link describeOrFailInCi}.
 */
export function skipOrFailInCi(ctx: { skip(note?: string): never }, reason: string, env: NodeJS.ProcessEnv = process.env): never {
  if (inCi(env)) throw new Error(mustRun(reason));
  return ctx.skip(reason);
}

/** `describe` that skips, saying what is missing, when the machine lacks one of `needs` (in CI: fails, {@link describeOrFailInCi}). */
export function describeWith(needs: readonly Need[], name: string, body: () => void): void {
  describeOrFailInCi(name, missingFor(needs), body);
}

/** `it` that skips, saying what is missing, when the machine lacks one of `needs` (in CI: fails, {@link itOrFailInCi}). */
export function itWith(needs: readonly Need[], name: string, body: () => Promise<void> | void, timeout?: number): void {
  itOrFailInCi(name, missingFor(needs), body, timeout);
}

/** A suite that needs the Docker daemon. */
export function describeWithDocker(name: string, body: () => void): void {
  describeWith(['docker'], name, body);
}

/** A suite that needs the three test registries. */
export function describeWithRegistries(name: string, body: () => void): void {
  describeWith(['registries'], name, body);
}

/**
 * The Metaflow source checkout the tests that run real Metaflow use (PREBUILT_TEST_METAFLOW_SOURCE,
 * a directory holding `metaflow/`) and, when it is absent, why those tests cannot run.
 */
export function metaflowSource(env: NodeJS.ProcessEnv = process.env): { source: string | undefined; missing: string | undefined } {
  const source = env['PREBUILT_TEST_METAFLOW_SOURCE'];
  const found = source !== undefined && existsSync(join(source, 'metaflow', '__init__.py'));
  return {
    source: found ? source : undefined,
    missing: found
      ? undefined
      : 'needs a Metaflow source checkout: set PREBUILT_TEST_METAFLOW_SOURCE=$(bash scripts/metaflow-source.sh), which unpacks the vendored one (scripts/test.sh does)',
  };
}

/** Environment for a child `docker` CLI talking to the test daemon (and a private config dir, if given). */
export function dockerEnv(services: TestServices = getServices(), dockerConfig?: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  if (services.dockerHost) env['DOCKER_HOST'] = services.dockerHost;
  if (dockerConfig) env['DOCKER_CONFIG'] = dockerConfig;
  return env;
}

/** `Authorization: Basic ...` for a user and password. */
export function basicAuthorization(username: string, password: string): string {
  return `Basic ${Buffer.from(`${username}:${password}`, 'utf8').toString('base64')}`;
}
