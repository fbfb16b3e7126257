import { afterAll, beforeAll, expect, it } from 'vitest';
import type { ImageRegistry, ImageRegistryDefinition, RegistryCredentials } from '../contracts.js';
import type { CondaPlatform } from '../env-model.js';
import { PrebuiltError } from '../errors.js';
import {
  DIGEST_PATTERN,
  TAGGED_REFERENCE_PATTERN,
  describeError,
  isCancelledError,
  isSecretLike,
  randomEnvId,
  rejectionOf,
  renderings,
} from './conformance-checks.js';
import { createUnderTest, definitionCheck, describeSuite, expectNamed } from './suite-setup.js';

export interface ImageRegistryConformanceOptions {
  /** Shown in the suite's title, e.g. `local`. */
  name: string;
  /** The backend's definition (its package's default export). When given, its shape is checked. */
  definition?: ImageRegistryDefinition;
  /** Creates the registry under test. Default: `definition.create(createOptions ?? {}, { env: process.env, cwd })`. */
  create?: () => ImageRegistry | Promise<ImageRegistry>;
  /** Options for `definition.create` when `create` is not given. */
  createOptions?: Record<string, unknown>;
  /**
   * Pushes a small image to `pushTag` (a tag the registry made with imageTag, never pushed before)
   * and returns the manifest digest the registry now has under it — e.g. with skopeo, the docker
   * CLI or an OCI upload — and, when it knows them, the manifest's annotations (`{}` for none):
   * then a registry that reads annotations must return exactly these. The registry is given for
   * its pushCredentials.
   */
  push: (pushTag: string, registry: ImageRegistry) => Promise<{ digest: string; annotations?: Record<string, string> }>;
  /** Two different platforms for tag checks. Default `linux-64` and `linux-aarch64`. */
  platforms?: readonly [CondaPlatform, CondaPlatform];
  /** Values (passwords, tokens) the backend was configured with that must never be printed or serialised. */
  secrets?: readonly string[];
  /** Per-test timeout, ms. Default 60000. */
  timeoutMs?: number;
  /** When set, the whole suite is skipped and this reason is shown. */
  skip?: string | false;
}

/**
 * The image registry contract, as vitest tests. Call it at the top level of a test file:
 *
 * ```ts
 * import { runImageRegistryConformance } from '@prebuilt/core/conformance';
 * runImageRegistryConformance({ name: 'acme', definition, push: (tag) => pushWithSkopeo(tag) });
 * ```
 */
export function runImageRegistryConformance(options: ImageRegistryConformanceOptions): void {
  describeSuite(`image registry conformance: ${options.name}`, options.skip, () => {
    const suite = registrySuite(options);
    beforeAll(async () => {
      suite.registry = await createUnderTest(options, 'runImageRegistryConformance');
    });
    afterAll(async () => {
      await suite.registry?.close?.();
    });
    shapeChecks(suite);
    tagChecks(suite);
    existenceChecks(suite);
    secretChecks(suite);
    cancelChecks(suite);
  });
}

/** What the checks of one suite share: the registry under test (set in beforeAll) and a tag pushed once. */
interface RegistrySuite {
  options: ImageRegistryConformanceOptions;
  registry: ImageRegistry;
  platformA: CondaPlatform;
  platformB: CondaPlatform;
  timeout: number;
  /** A tag pushed by the suite, shared by the tests that need one. */
  pushOnce(): Promise<{ tag: string; digest: string; annotations?: Record<string, string> }>;
  /** Everything secret: the configured values plus whatever pushCredentials reveals. */
  knownSecrets(credentials: RegistryCredentials | undefined): string[];
}

function registrySuite(options: ImageRegistryConformanceOptions): RegistrySuite {
  const [platformA, platformB] = options.platforms ?? (['linux-64', 'linux-aarch64'] as const);
  let pushed: Promise<{ tag: string; digest: string; annotations?: Record<string, string> }> | undefined;
  const suite: RegistrySuite = {
    options,
    registry: undefined as unknown as ImageRegistry,
    platformA,
    platformB,
    timeout: options.timeoutMs ?? 60_000,
    pushOnce() {
      pushed ??= (async () => {
        const tag = suite.registry.imageTag({ envId: randomEnvId(), platform: platformA });
        const { digest, annotations } = await options.push(tag, suite.registry);
        return { tag, digest, ...(annotations ? { annotations } : {}) };
      })();
      return pushed;
    },
    knownSecrets: (credentials) =>
      [
        ...(options.secrets ?? []),
        ...Object.values(credentials ?? {})
          .filter(isSecretLike)
          .map((s) => s.reveal()),
      ].filter((s) => s.length > 0),
  };
  return suite;
}

/** The definition's and the created registry's shape. */
function shapeChecks(suite: RegistrySuite): void {
  definitionCheck(suite.options.definition, 'image-registry');

  it('create() gives a registry with a name and every method of the contract', () => {
    const { registry } = suite;
    expectNamed(registry, 'registry');
    for (const method of ['imageTag', 'pushCredentials', 'pullConfig', 'imageExists', 'baseImageIdentity'] as const) {
      expect(typeof registry[method], `registry.${method}`).toBe('function');
    }
    if (registry.pullTag !== undefined) expect(typeof registry.pullTag, 'registry.pullTag').toBe('function');
  });
}

/** imageTag and pullTag: valid, deterministic, distinct per env and platform. */
function tagChecks(suite: RegistrySuite): void {
  const { platformA, platformB } = suite;
  it('imageTag is a tagged reference, the same for the same env and different for another env or platform', () => {
    const { registry } = suite;
    const envId = randomEnvId();
    const tag = registry.imageTag({ envId, platform: platformA });
    expect(tag, 'imageTag is a valid tagged image reference').toMatch(TAGGED_REFERENCE_PATTERN);
    expect(registry.imageTag({ envId, platform: platformA }), 'same input, same tag').toBe(tag);
    expect(registry.imageTag({ envId: randomEnvId(), platform: platformA }), 'another envId, another tag').not.toBe(tag);
    expect(registry.imageTag({ envId, platform: platformB }), 'another platform, another tag').not.toBe(tag);
  });

  it('pullTag, when defined, is a deterministic tagged reference', () => {
    const { registry } = suite;
    const tag = registry.imageTag({ envId: randomEnvId(), platform: platformA });
    const pull = registry.pullTag ? registry.pullTag(tag) : tag;
    expect(pull, 'pull tag is a valid tagged image reference').toMatch(TAGGED_REFERENCE_PATTERN);
    if (registry.pullTag) expect(registry.pullTag(tag), 'same push tag, same pull tag').toBe(pull);
  });
}

/** imageExists and baseImageIdentity before and after a push. */
function existenceChecks(suite: RegistrySuite): void {
  const { platformB, timeout } = suite;
  it('imageExists is false (without a digest) for a tag never pushed', { timeout }, async () => {
    const tag = suite.registry.imageTag({ envId: randomEnvId(), platform: platformB });
    const existence = await suite.registry.imageExists(tag);
    expect(existence.exists, `imageExists(${tag}).exists`).toBe(false);
    expect(existence.digest, 'no digest for a missing image').toBeUndefined();
    expect(await suite.registry.imageExists(tag, { annotations: true }), 'a missing image, annotations asked: { exists: false } alone').toEqual({ exists: false });
  });

  it('imageExists is true, with the pushed digest, after a push', { timeout }, async () => {
    const { tag, digest } = await suite.pushOnce();
    expect(digest, 'the push hook returned a digest').toMatch(DIGEST_PATTERN);
    const existence = await suite.registry.imageExists(tag);
    expect(existence, `imageExists(${tag})`).toEqual({ exists: true, digest });
  });

  it('imageExists(tag, { annotations: true }) after a push: the pushed digest, and the manifest\'s annotations (string values, {} for none) or no annotations field', { timeout }, async () => {
    const pushed = await suite.pushOnce();
    const existence = await suite.registry.imageExists(pushed.tag, { annotations: true });
    expect(existence.exists, `imageExists(${pushed.tag}, { annotations: true }).exists`).toBe(true);
    expect(existence.digest, 'the pushed digest, annotations asked or not').toBe(pushed.digest);
    expect(Object.keys(existence).filter((k) => !['exists', 'digest', 'annotations', 'layerMediaTypes'].includes(k)), 'no other fields').toEqual([]);
    if (existence.layerMediaTypes !== undefined) {
      // What a build checks against the layer types its runners cannot pull (ImageLayout.refusedLayers).
      expect(Array.isArray(existence.layerMediaTypes) && existence.layerMediaTypes.every((type) => typeof type === 'string'), 'layerMediaTypes is a list of media types').toBe(true);
      expect(existence.annotations, 'layerMediaTypes comes with annotations').toBeDefined();
    }
    if (existence.annotations === undefined) return; // a registry that cannot read the manifest's annotations leaves them out
    const { annotations } = existence;
    expect(typeof annotations === 'object' && annotations !== null && !Array.isArray(annotations), 'annotations is a plain object').toBe(true);
    for (const [key, value] of Object.entries(annotations)) expect(typeof value, `annotation ${key} is a string`).toBe('string');
    if (pushed.annotations) expect(annotations, 'the annotations of the manifest as pushed').toEqual(pushed.annotations);
    expect(await suite.registry.imageExists(pushed.tag), 'annotations not asked: { exists, digest } alone').toEqual({ exists: true, digest: pushed.digest });
  });

  it('baseImageIdentity resolves a pushed tag to its digest and pins it', { timeout }, async () => {
    const { tag, digest } = await suite.pushOnce();
    const identity = await suite.registry.baseImageIdentity(tag, 'linux/amd64');
    expect(identity.ref, 'identity.ref is the reference as given').toBe(tag);
    expect(identity.digest, 'identity.digest').toBe(digest);
    expect(identity.pinned.endsWith(`@${digest}`), `identity.pinned (${identity.pinned}) ends with @<digest>`).toBe(true);
    expect((await suite.registry.baseImageIdentity(tag, 'linux/amd64')).digest, 'same ref, same digest').toBe(digest);
  });

  it('baseImageIdentity of a tag never pushed rejects with a typed prebuilt error', { timeout }, async () => {
    const tag = suite.registry.imageTag({ envId: randomEnvId(), platform: platformB });
    const error = await rejectionOf(suite.registry.baseImageIdentity(tag, 'linux/amd64'));
    expect(PrebuiltError.isInstance(error), `expected a PrebuiltError, got ${describeError(error)}`).toBe(true);
  });
}

/** pushCredentials and pullConfig never show a secret. */
function secretChecks(suite: RegistrySuite): void {
  const { platformA, timeout } = suite;
  it('pushCredentials are undefined or { registry, source } with every secret redacted in JSON, inspect and strings', { timeout }, async () => {
    const credentials = await suite.registry.pushCredentials();
    expect(credentials === undefined || (typeof credentials === 'object' && credentials !== null), 'pushCredentials result').toBe(true);
    if (credentials === undefined) return;
    expect(typeof credentials.registry, 'credentials.registry').toBe('string');
    expect(credentials.registry.length, 'credentials.registry is not empty').toBeGreaterThan(0);
    expect(typeof credentials.source, 'credentials.source').toBe('string');
    for (const field of ['password', 'identityToken', 'registryToken'] as const) {
      const value: unknown = credentials[field];
      if (value !== undefined) expect(isSecretLike(value), `credentials.${field} is a Secret, not a plain string`).toBe(true);
    }
    const secrets = suite.knownSecrets(credentials);
    for (const text of renderings(credentials)) {
      for (const secret of secrets) expect(text.includes(secret), `a secret leaked into: ${text.replace(secret, '<the secret>')}`).toBe(false);
    }
  });

  it('pullConfig is plain JSON data without secrets', { timeout }, async () => {
    const { registry } = suite;
    const tag = registry.imageTag({ envId: randomEnvId(), platform: platformA });
    const config = await registry.pullConfig(registry.pullTag ? registry.pullTag(tag) : tag);
    expect(typeof config, 'pullConfig result').toBe('object');
    expect(JSON.parse(JSON.stringify(config)), 'pullConfig round-trips through JSON').toEqual(config);
    const secrets = suite.knownSecrets(await registry.pushCredentials());
    for (const secret of secrets) expect(JSON.stringify(config).includes(secret), 'a secret leaked into pullConfig').toBe(false);
  });
}

/** An operation given an aborted signal is cancelled. */
function cancelChecks(suite: RegistrySuite): void {
  const { platformA, timeout } = suite;
  it('an already aborted signal makes imageExists reject with CancelledError', { timeout }, async () => {
    const controller = new AbortController();
    controller.abort();
    const tag = suite.registry.imageTag({ envId: randomEnvId(), platform: platformA });
    const error = await rejectionOf(suite.registry.imageExists(tag, { signal: controller.signal }));
    expect(isCancelledError(error), `expected CancelledError, got ${describeError(error)}`).toBe(true);
  });
}
