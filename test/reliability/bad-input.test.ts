/**
 * The bad-input catalogue: one table of malformed inputs (flow files, decorator values, env vars,
 * lock files, Docker config files, credentials, channel and index answers), each run through the
 * real CLI. Every one must end with exit 2 (bad input or configuration) or 1 (a remote failure),
 * a message naming the input (file, variable or URL), and no stack trace.
 *
 * Rows that need the test registries (plan/build) skip, saying so, when they are absent (in CI they fail, saying so).
 */
import { cp, mkdir, mkdtemp, readdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SMALL_FLOW, createWorld, filesUnder, runCli, stackLines, type World } from '../support/cli.js';
import { getServices, itOrFailInCi, missingFor, type Need } from '../services.js';

const services = getServices();

interface Case {
  name: string;
  /** Command and options; the flow file is appended unless `noFlow`. */
  args: string[];
  /** Flow source (default: the small flow with its valid lock). */
  flow?: string;
  /** Extra environment (undefined removes a variable). */
  env?: (ctx: CaseContext) => Record<string, string | undefined>;
  /** Prepares the case directory (after the flow and its lock were copied there). */
  setup?: (ctx: CaseContext) => Promise<void>;
  /** Injects a fault into the fixture server for the run; returns its remover. */
  fault?: (ctx: CaseContext) => () => void;
  code: 1 | 2;
  /** Strings or patterns the output must contain: the input's name, and more. */
  names: (ctx: CaseContext) => (string | RegExp)[];
  /** Strings the output must not contain (another input's name). */
  absent?: string[];
  needs?: Need[];
  noFlow?: boolean;
  /** Checks after the run (what must not have been written). */
  check?: (ctx: CaseContext) => Promise<void>;
}

interface CaseContext {
  dir: string;
  world: World;
  lockFile: string;
  /** A package URL of the small flow's lock (tinycli). */
  packageUrl: string;
  packagePath: string;
}

const FLOW_FILE = 'small.py';
const LOCK_FILE = 'small.prebuilt.lock';
let world: World;
let baseDir: string;
let packageUrl = '';

const flowWith = (decorators: string, extra = ''): string =>
  `from metaflow import FlowSpec, conda, pypi, step\n${extra}\n\nclass BadFlow(FlowSpec):\n    ${decorators}\n    @step\n    def start(self):\n        self.next(self.end)\n\n    @step\n    def end(self):\n        pass\n`;

const editLock = (edit: (lock: Record<string, any>) => void) => async (ctx: CaseContext) => {
  const lock = JSON.parse(await readFile(ctx.lockFile, 'utf8')) as Record<string, any>;
  edit(lock);
  await writeFile(ctx.lockFile, JSON.stringify(lock, null, 2));
};
/** The marker inside the planted wheel a hostile index page links by a file: URL. */
const CANARY = 'canary-9d41c3a7-never-in-lock-or-cache';
const canaryUrl = (ctx: CaseContext): string => pathToFileURL(join(ctx.dir, 'home', 'tinyhttp-9.9.9-py3-none-any.whl')).href;

/** A file of this machine a hostile lock points a wheel at through a symlink in a file: index. */
const SECRET = '{"auths":{"registry.example":{"auth":"c2VjcmV0OnNlY3JldA=="}}}\n';

const firstEnv = (lock: Record<string, any>): Record<string, any> => Object.values(lock['envs'] as Record<string, any>)[0] as Record<string, any>;

const writeDockerConfig = (config: unknown) => async (ctx: CaseContext) => {
  await mkdir(join(ctx.dir, 'docker'), { recursive: true });
  await writeFile(join(ctx.dir, 'docker', 'config.json'), typeof config === 'string' ? config : JSON.stringify(config));
};

/** Env for plan/build against a registry (+ the base image in the plain registry), a namespace no image is in. */
const registryEnv = (registry: 'plain' | 'basic' | 'token', extra: Record<string, string | undefined> = {}) => (ctx: CaseContext) => ({
  METAFLOW_PREBUILT_IMAGE_REGISTRY: 'local',
  METAFLOW_PREBUILT_LOCAL_REGISTRY: services.registries?.[registry].host ?? '127.0.0.1:1',
  METAFLOW_PREBUILT_BASE_IMAGE: services.baseImage?.ref ?? 'missing',
  METAFLOW_PREBUILT_IMAGE_NAMESPACE: `reliability/bad-input-${process.pid}`,
  DOCKER_CONFIG: join(ctx.dir, 'docker'),
  ...(services.dockerHost ? { DOCKER_HOST: services.dockerHost } : {}),
  ...extra,
});
const REGISTRY: Need[] = ['registries', 'baseImage'];
const BUILD: Need[] = ['registries', 'baseImage', 'docker'];
const basicHost = (): string => services.registries?.basic.host ?? '';

const CASES: Case[] = [
  // ---- flow files
  { name: 'flow: syntax error', args: ['envs'], flow: 'from metaflow import FlowSpec\nclass Broken(FlowSpec:\n    pass\n', code: 2, names: () => [FLOW_FILE] },
  { name: 'flow: no FlowSpec class', args: ['envs'], flow: 'x = 1\n', code: 2, names: () => [FLOW_FILE, /FlowSpec/] },
  {
    name: 'flow: two FlowSpec classes (ambiguous)',
    args: ['envs'],
    flow: 'from metaflow import FlowSpec, step\n\nclass A(FlowSpec):\n    @step\n    def start(self):\n        pass\n\nclass B(FlowSpec):\n    @step\n    def start(self):\n        pass\n',
    code: 2,
    names: () => [FLOW_FILE, /\bA\b/, /\bB\b/],
  },
  { name: 'flow: file does not exist', args: ['envs', 'missing_flow.py'], noFlow: true, code: 2, names: () => ['missing_flow.py'] },
  { name: 'flow: a directory instead of a file', args: ['envs', '.'], noFlow: true, code: 2, names: () => [/\.|director/] },
  { name: 'flow: dynamic packages value', args: ['envs'], flow: flowWith('@conda(packages=make_packages())', '\ndef make_packages():\n    return {}\n'), code: 2, names: () => [FLOW_FILE, /packages/] },
  { name: 'flow: @conda and @pypi on one step', args: ['envs'], flow: flowWith('@conda(packages={"tinynum": ""})\n    @pypi(packages={"tinyhttp": ""})'), code: 2, names: () => [FLOW_FILE, /start/] },
  { name: 'flow: unknown decorator argument', args: ['envs'], flow: flowWith('@conda(packages={"tinynum": ""}, pkgs={})'), code: 2, names: () => [FLOW_FILE, /pkgs/] },
  { name: 'flow: packages is a list', args: ['envs'], flow: flowWith('@conda(packages=["tinynum"])'), code: 2, names: () => [FLOW_FILE, /packages/] },
  { name: 'flow: not UTF-8', args: ['envs'], flow: '\xff\xfe\x00bad', code: 2, names: () => [FLOW_FILE] },
  // ---- decorator values
  { name: 'decorator: version is not a string', args: ['envs'], flow: flowWith('@conda(packages={"tinynum": {"min": "1.4"}})'), code: 2, names: () => [FLOW_FILE, /tinynum|packages/] },
  { name: 'decorator: bad python version', args: ['envs'], flow: flowWith('@conda(python="three", packages={"tinynum": ""})'), code: 2, names: () => [FLOW_FILE, /three/] },
  { name: 'decorator: python version is a list', args: ['envs'], flow: flowWith('@conda(python=["3.11"], packages={"tinynum": ""})'), code: 2, names: () => [FLOW_FILE, /python/] },
  { name: 'decorator: malformed version spec', args: ['lock'], flow: flowWith('@conda(python="3.11", packages={"tinynum": ">=>1.4"})'), code: 2, names: () => [/tinynum/, />=>1\.4/] },
  { name: 'decorator: unknown package', args: ['lock'], flow: flowWith('@conda(python="3.11", packages={"no-such-package-xyz": ""})'), code: 2, names: () => [/no-such-package-xyz/] },
  { name: 'decorator: unsatisfiable version', args: ['lock'], flow: flowWith('@conda(python="3.11", packages={"tinynum": "99.0"})'), code: 2, names: () => [/tinynum/] },
  // ---- env vars
  { name: 'env: METAFLOW_PREBUILT_PLATFORM unknown', args: ['lock'], env: () => ({ METAFLOW_PREBUILT_PLATFORM: 'win-64' }), code: 2, names: () => ['METAFLOW_PREBUILT_PLATFORM', 'win-64'] },
  { name: 'env: METAFLOW_PREBUILT_BUILD_WORKERS=0', args: ['build'], env: () => ({ METAFLOW_PREBUILT_BUILD_WORKERS: '0', METAFLOW_PREBUILT_IMAGE_REGISTRY: 'local', METAFLOW_PREBUILT_LOCAL_REGISTRY: '127.0.0.1:1' }), code: 2, names: () => ['METAFLOW_PREBUILT_BUILD_WORKERS'] },
  { name: 'env: METAFLOW_PREBUILT_BUILD_WORKERS not a number', args: ['build'], env: () => ({ METAFLOW_PREBUILT_BUILD_WORKERS: 'many', METAFLOW_PREBUILT_IMAGE_REGISTRY: 'local', METAFLOW_PREBUILT_LOCAL_REGISTRY: '127.0.0.1:1' }), code: 2, names: () => ['METAFLOW_PREBUILT_BUILD_WORKERS', 'many'] },
  { name: 'option: --workers 1000', args: ['build', '--workers', '1000'], env: () => ({ METAFLOW_PREBUILT_IMAGE_REGISTRY: 'local', METAFLOW_PREBUILT_LOCAL_REGISTRY: '127.0.0.1:1' }), code: 2, names: () => ['--workers', '1000'] },
  { name: 'env: METAFLOW_PREBUILT_PRUNE unknown preset', args: ['build'], env: () => ({ METAFLOW_PREBUILT_PRUNE: 'tests,docs', METAFLOW_PREBUILT_IMAGE_REGISTRY: 'local', METAFLOW_PREBUILT_LOCAL_REGISTRY: '127.0.0.1:1' }), code: 2, names: () => ['METAFLOW_PREBUILT_PRUNE', "'docs'", 'tests, static-libs, headers'] },
  { name: 'option: --prune unknown preset', args: ['plan', '--prune', 'testing'], env: () => ({ METAFLOW_PREBUILT_IMAGE_REGISTRY: 'local', METAFLOW_PREBUILT_LOCAL_REGISTRY: '127.0.0.1:1' }), code: 2, names: () => ['--prune', "'testing'"] },
  { name: 'env: METAFLOW_PREBUILT_PRUNE with the micromamba recipe', args: ['plan'], env: () => ({ METAFLOW_PREBUILT_PRUNE: 'tests', METAFLOW_PREBUILT_RECIPE: 'micromamba', METAFLOW_PREBUILT_IMAGE_REGISTRY: 'local', METAFLOW_PREBUILT_LOCAL_REGISTRY: '127.0.0.1:1' }), code: 2, names: () => ['METAFLOW_PREBUILT_PRUNE (tests) needs the materialized recipe', 'Unset METAFLOW_PREBUILT_PRUNE'], absent: ['--prune'] },
  { name: 'option: --prune with the micromamba recipe', args: ['plan', '--prune', 'tests'], env: () => ({ METAFLOW_PREBUILT_RECIPE: 'micromamba', METAFLOW_PREBUILT_IMAGE_REGISTRY: 'local', METAFLOW_PREBUILT_LOCAL_REGISTRY: '127.0.0.1:1' }), code: 2, names: () => ['--prune (tests) needs the materialized recipe', 'Leave out --prune'], absent: ['METAFLOW_PREBUILT_PRUNE'] },
  { name: 'env: METAFLOW_PREBUILT_REGISTRY_CACHE not a flag', args: ['plan'], env: () => ({ METAFLOW_PREBUILT_REGISTRY_CACHE: 'sometimes', METAFLOW_PREBUILT_IMAGE_REGISTRY: 'local', METAFLOW_PREBUILT_LOCAL_REGISTRY: '127.0.0.1:1' }), code: 2, names: () => ['METAFLOW_PREBUILT_REGISTRY_CACHE', 'sometimes'] },
  { name: 'env: METAFLOW_PREBUILT_RECIPE unknown', args: ['plan'], env: () => ({ METAFLOW_PREBUILT_RECIPE: 'magic', METAFLOW_PREBUILT_IMAGE_REGISTRY: 'local', METAFLOW_PREBUILT_LOCAL_REGISTRY: '127.0.0.1:1' }), code: 2, names: () => ['METAFLOW_PREBUILT_RECIPE', 'magic'] },
  { name: 'env: METAFLOW_PREBUILT_CONDA_CHANNELS not a URL or name', args: ['lock'], env: () => ({ METAFLOW_PREBUILT_CONDA_CHANNELS: 'ftp://example.invalid/ch' }), code: 2, names: () => ['ftp://example.invalid/ch'] },
  { name: 'env: METAFLOW_PREBUILT_CONDA_CHANNELS unreachable', args: ['lock'], env: () => ({ METAFLOW_PREBUILT_CONDA_CHANNELS: 'http://127.0.0.1:1/channels/none' }), code: 2, names: () => ['http://127.0.0.1:1/channels/none'] },
  {
    name: 'env: METAFLOW_PREBUILT_PYPI_INDEX_URL not a URL',
    args: ['lock'],
    flow: flowWith('@pypi(python="3.11", packages={"tinyhttp": ""})'),
    env: () => ({ METAFLOW_PREBUILT_PYPI_INDEX_URL: 'not a url' }),
    code: 2,
    names: () => ['METAFLOW_PREBUILT_PYPI_INDEX_URL', 'not a url'],
  },
  { name: 'env: METAFLOW_PREBUILT_GLIBC_VERSION malformed', args: ['lock'], env: () => ({ METAFLOW_PREBUILT_GLIBC_VERSION: 'new' }), code: 2, names: () => ['METAFLOW_PREBUILT_GLIBC_VERSION', 'new'] },
  { name: 'env: METAFLOW_PREBUILT_DEFAULT_PYTHON malformed', args: ['envs'], flow: flowWith('@conda(packages={"tinynum": ""})'), env: () => ({ METAFLOW_PREBUILT_DEFAULT_PYTHON: 'latest' }), code: 2, names: () => ['METAFLOW_PREBUILT_DEFAULT_PYTHON', 'latest'] },
  { name: 'env: unknown build service name', args: ['build'], env: () => ({ METAFLOW_PREBUILT_BUILD_SERVICE: 'no-such-builder', METAFLOW_PREBUILT_REGISTRY_CACHE: '0', METAFLOW_PREBUILT_IMAGE_REGISTRY: 'local', METAFLOW_PREBUILT_LOCAL_REGISTRY: services.registries?.plain.host ?? '127.0.0.1:1', METAFLOW_PREBUILT_BASE_IMAGE: services.baseImage?.ref ?? 'missing' }), needs: REGISTRY, code: 2, names: () => ['METAFLOW_PREBUILT_BUILD_SERVICE', 'no-such-builder'] },
  { name: 'env: unknown image registry name', args: ['plan'], env: () => ({ METAFLOW_PREBUILT_IMAGE_REGISTRY: 'no-such-registry' }), code: 2, names: () => ['METAFLOW_PREBUILT_IMAGE_REGISTRY', 'no-such-registry'] },
  { name: 'env: METAFLOW_PREBUILT_LOCAL_REGISTRY missing', args: ['plan'], env: () => ({ METAFLOW_PREBUILT_IMAGE_REGISTRY: 'local' }), code: 2, names: () => ['METAFLOW_PREBUILT_LOCAL_REGISTRY'] },
  { name: 'env: METAFLOW_PREBUILT_LOCAL_REGISTRY is a URL', args: ['plan'], env: () => ({ METAFLOW_PREBUILT_IMAGE_REGISTRY: 'local', METAFLOW_PREBUILT_LOCAL_REGISTRY: 'http://127.0.0.1:5000' }), code: 2, names: () => ['METAFLOW_PREBUILT_LOCAL_REGISTRY', 'http://127.0.0.1:5000'] },
  { name: 'env: registry user without password', args: ['plan'], env: () => ({ METAFLOW_PREBUILT_IMAGE_REGISTRY: 'local', METAFLOW_PREBUILT_LOCAL_REGISTRY: '127.0.0.1:1', METAFLOW_PREBUILT_LOCAL_REGISTRY_USERNAME: 'someone' }), code: 2, names: () => ['METAFLOW_PREBUILT_LOCAL_REGISTRY_PASSWORD'] },
  { name: 'env: METAFLOW_PREBUILT_IMAGE_NAMESPACE invalid', args: ['plan'], env: () => ({ METAFLOW_PREBUILT_IMAGE_REGISTRY: 'local', METAFLOW_PREBUILT_LOCAL_REGISTRY: '127.0.0.1:1', METAFLOW_PREBUILT_IMAGE_NAMESPACE: 'Has Spaces' }), code: 2, names: () => ['METAFLOW_PREBUILT_IMAGE_NAMESPACE', 'Has Spaces'] },
  { name: 'env: METAFLOW_PREBUILT_BASE_IMAGE not an image reference', args: ['plan'], env: () => ({ METAFLOW_PREBUILT_IMAGE_REGISTRY: 'local', METAFLOW_PREBUILT_LOCAL_REGISTRY: '127.0.0.1:1', METAFLOW_PREBUILT_BASE_IMAGE: 'NOT::an image' }), code: 2, names: () => ['NOT::an image'] },
  { name: 'env: METAFLOW_PREBUILT_DOCKER_BUILDER unknown', args: ['build'], env: registryEnv('plain', { METAFLOW_PREBUILT_DOCKER_BUILDER: 'magic' }), needs: REGISTRY, code: 2, names: () => ['METAFLOW_PREBUILT_DOCKER_BUILDER', 'magic'] },
  // ---- lock files
  { name: 'lock file: not JSON', args: ['lock', '--frozen'], setup: async (ctx) => writeFile(ctx.lockFile, '{"envs": {'), code: 2, names: () => [LOCK_FILE, /JSON/] },
  { name: 'lock file: unknown version', args: ['lock', '--frozen'], setup: editLock((lock) => (lock['lockVersion'] = 99)), code: 2, names: () => [LOCK_FILE, /99/] },
  { name: 'lock file: malformed sha256', args: ['lock', '--frozen'], setup: editLock((lock) => (firstEnv(lock)['packages'][0].sha256 = 'abc123')), code: 2, names: () => [LOCK_FILE, /sha256/] },
  ...(['lock', 'build'] as const).map(
    (command): Case => ({
      name: `lock file: a wheel at a file: URL under an http(s) index (a file of this machine), ${command} --frozen`,
      args: [command, '--frozen'],
      setup: editLock((lock) =>
        firstEnv(lock)['packages'].push({ kind: 'pypi', name: 'canary', version: '1.0', build: '', url: 'file:///etc/passwd', sha256: '1'.repeat(64), size: 10, filename: 'canary-1.0-py3-none-any.whl' }),
      ),
      env: () => ({ METAFLOW_PREBUILT_IMAGE_REGISTRY: 'local', METAFLOW_PREBUILT_LOCAL_REGISTRY: '127.0.0.1:1' }),
      code: 2,
      names: () => [LOCK_FILE, 'file:///etc/passwd', /not a file: index/],
    }),
  ),
  {
    name: 'lock file: a wheel under a file: index at a symlink pointing out of it (refused before it is read: nothing of the file is printed)',
    args: ['build', '--frozen'],
    setup: async (ctx) => {
      const project = join(ctx.dir, 'index', 'simple', 'canary');
      await mkdir(project, { recursive: true });
      await mkdir(join(ctx.dir, 'home'), { recursive: true });
      await writeFile(join(ctx.dir, 'home', 'config.json'), SECRET);
      await symlink(join(ctx.dir, 'home', 'config.json'), join(project, 'canary-1.0-py3-none-any.whl'));
      await editLock((lock) => {
        firstEnv(lock)['request'].indexUrl = pathToFileURL(join(ctx.dir, 'index', 'simple')).href;
        const url = pathToFileURL(join(project, 'canary-1.0-py3-none-any.whl')).href;
        firstEnv(lock)['packages'].push({ kind: 'pypi', name: 'canary', version: '1.0', build: '', url, sha256: '1'.repeat(64), size: SECRET.length, filename: 'canary-1.0-py3-none-any.whl' });
      })(ctx);
    },
    env: () => ({ METAFLOW_PREBUILT_IMAGE_REGISTRY: 'local', METAFLOW_PREBUILT_LOCAL_REGISTRY: '127.0.0.1:1' }),
    code: 2,
    names: () => [`Lock file ${LOCK_FILE} locks the wheel canary-1.0-py3-none-any.whl (canary)`, /not inside the env's file: index/, 'prebuilt lock --update'],
    absent: [createHash('sha256').update(SECRET).digest('hex'), `${SECRET.length} bytes`],
  },
  { name: 'lock file: missing packages', args: ['lock', '--frozen'], setup: editLock((lock) => delete firstEnv(lock)['packages']), code: 2, names: () => [LOCK_FILE, /packages/] },
  { name: 'lock file: missing envs', args: ['plan', '--frozen'], setup: editLock((lock) => delete lock['envs']), env: () => ({ METAFLOW_PREBUILT_IMAGE_REGISTRY: 'local', METAFLOW_PREBUILT_LOCAL_REGISTRY: '127.0.0.1:1' }), code: 2, names: () => [LOCK_FILE, /envs/] },
  {
    name: 'lock file: stale under --frozen (flow changed)',
    args: ['build', '--frozen'],
    setup: async (ctx) => writeFile(join(ctx.dir, FLOW_FILE), SMALL_FLOW.replaceAll('"tinycli": ""', '"tinycli": "", "tinynum": ""')),
    env: () => ({ METAFLOW_PREBUILT_IMAGE_REGISTRY: 'local', METAFLOW_PREBUILT_LOCAL_REGISTRY: '127.0.0.1:1' }),
    code: 2,
    names: () => [LOCK_FILE, /--frozen|prebuilt lock/],
  },
  // ---- the state directory beside the flow: a cloned repository's symlink to ~/.ssh or anywhere
  {
    name: 'state dir: .prebuilt is a symlink',
    args: ['build', '--frozen'],
    setup: async (ctx) => {
      await mkdir(join(ctx.dir, 'elsewhere'));
      await symlink(join(ctx.dir, 'elsewhere'), join(ctx.dir, '.prebuilt'));
    },
    env: () => ({ METAFLOW_PREBUILT_IMAGE_REGISTRY: 'local', METAFLOW_PREBUILT_LOCAL_REGISTRY: '127.0.0.1:1' }),
    code: 2,
    names: () => ['.prebuilt is a symbolic link', 'rm .prebuilt', 'METAFLOW_PREBUILT_STATE_FILE'],
    check: async (ctx) => expect(await readdir(join(ctx.dir, 'elsewhere'))).toEqual([]),
  },
  {
    name: 'state dir: .prebuilt/<Flow> is a symlink (refused once locked, before any image is built)',
    args: ['build', '--frozen'],
    setup: async (ctx) => {
      await mkdir(join(ctx.dir, 'elsewhere'));
      await mkdir(join(ctx.dir, '.prebuilt'));
      await symlink(join(ctx.dir, 'elsewhere'), join(ctx.dir, '.prebuilt', 'SmallFlow'));
    },
    env: registryEnv('plain'),
    needs: BUILD,
    code: 2,
    names: () => ['.prebuilt/SmallFlow is a symbolic link', 'rm .prebuilt/SmallFlow'],
    check: async (ctx) => expect(await readdir(join(ctx.dir, 'elsewhere'))).toEqual([]),
  },
  // ---- Docker config files and credentials (the Basic-auth registry; no explicit credentials)
  { name: 'docker config: not JSON', args: ['plan'], setup: writeDockerConfig('{"auths": '), env: registryEnv('basic'), needs: REGISTRY, code: 2, names: () => ['config.json'] },
  {
    name: 'docker config: auth is not base64 of user:password',
    args: ['plan'],
    setup: writeDockerConfig({ auths: { [basicHost()]: { auth: '%%%not-base64%%%' } } }),
    env: registryEnv('basic'),
    needs: REGISTRY,
    code: 2,
    names: () => ['config.json', basicHost()],
  },
  {
    name: 'docker config: credential helper not installed',
    args: ['plan'],
    setup: writeDockerConfig({ credsStore: 'prebuilt-no-such-helper' }),
    env: registryEnv('basic'),
    needs: REGISTRY,
    code: 2,
    names: () => ['docker-credential-prebuilt-no-such-helper'],
  },
  {
    name: 'credentials: wrong password in the Docker config',
    args: ['plan'],
    setup: writeDockerConfig({ auths: { [basicHost()]: { auth: Buffer.from('prebuilt-test:wrong-password').toString('base64') } } }),
    env: registryEnv('basic'),
    needs: REGISTRY,
    code: 1,
    names: () => [basicHost(), 'config.json', /rejected|denied/],
  },
  {
    name: 'credentials: wrong password in the environment',
    args: ['plan'],
    env: registryEnv('basic', { METAFLOW_PREBUILT_LOCAL_REGISTRY_USERNAME: 'prebuilt-test', METAFLOW_PREBUILT_LOCAL_REGISTRY_PASSWORD: 'wrong-password' }),
    needs: REGISTRY,
    code: 1,
    names: () => [basicHost(), 'METAFLOW_PREBUILT_LOCAL_REGISTRY_USERNAME', /rejected|denied/],
  },
  {
    name: 'credentials: wrong password for a token registry',
    args: ['plan'],
    env: registryEnv('token', { METAFLOW_PREBUILT_LOCAL_REGISTRY_USERNAME: 'prebuilt-test', METAFLOW_PREBUILT_LOCAL_REGISTRY_PASSWORD: 'wrong-password' }),
    needs: REGISTRY,
    code: 1,
    names: () => [services.registries?.token.host ?? 'token', /token server|refused|denied/],
  },
  { name: 'registry: unreachable', args: ['plan'], env: () => ({ METAFLOW_PREBUILT_IMAGE_REGISTRY: 'local', METAFLOW_PREBUILT_LOCAL_REGISTRY: '127.0.0.1:1', METAFLOW_PREBUILT_BASE_IMAGE: '127.0.0.1:1/base:latest' }), code: 1, names: () => ['127.0.0.1:1'] },
  { name: 'registry: base image missing', args: ['plan'], env: registryEnv('plain', { METAFLOW_PREBUILT_BASE_IMAGE: `${services.registries?.plain.host ?? '127.0.0.1:1'}/reliability/no-such-base:latest` }), needs: REGISTRY, code: 2, names: () => ['reliability/no-such-base:latest', 'METAFLOW_PREBUILT_BASE_IMAGE'] },
];

/** Rows that fault the fixture server: run one at a time, each with a fresh cache. */
const FAULT_CASES: Case[] = [
  { name: 'channel: repodata.json is not JSON', args: ['lock'], flow: SMALL_FLOW, fault: (ctx) => ctx.world.server.fault(/\/repodata\.json$/, { type: 'bad-json' }), code: 2, names: () => [/repodata\.json/, /JSON/] },
  { name: 'channel: HTML error page instead of repodata', args: ['lock'], flow: SMALL_FLOW, fault: (ctx) => ctx.world.server.fault(/\/repodata\.json$/, { type: 'html-page' }), code: 2, names: () => [/repodata\.json/, /HTML|JSON/i] },
  { name: 'channel: repodata answers 500', args: ['lock'], flow: SMALL_FLOW, fault: (ctx) => ctx.world.server.fault(/\/repodata\.json$/, { type: 'status', status: 500 }), code: 2, names: () => [/repodata\.json|\/channels\/example/, /500/] },
  {
    name: 'index: PyPI simple page answers 500',
    args: ['lock'],
    flow: flowWith('@pypi(python="3.11", packages={"tinyhttp": ""})'),
    fault: (ctx) => ctx.world.server.fault(/^\/pypi\/example\/simple\//, { type: 'status', status: 500 }),
    code: 2,
    names: () => [/\/pypi\/example\/simple/, /500/],
  },
  {
    name: 'index: HTML error page instead of the project page',
    args: ['lock'],
    flow: flowWith('@pypi(python="3.11", packages={"tinyhttp": ""})'),
    fault: (ctx) => ctx.world.server.fault(/^\/pypi\/example\/simple\/tinyhttp\/$/, { type: 'html-page' }),
    code: 2,
    names: () => [/tinyhttp/],
  },
  {
    // pip follows the file: links of any index: the page names a wheel planted on this machine (a
    // credential's stand-in), which must reach neither the lock nor the cache.
    name: 'index: the project page links a file: URL of this machine',
    args: ['lock'],
    flow: flowWith('@pypi(python="3.11", packages={"tinyhttp": ""})'),
    setup: async (ctx) => {
      const { buildWheel } = await import('../../packages/fixtures/dist/index.js');
      const canary = buildWheel({ name: 'tinyhttp', version: '9.9.9', files: [{ path: 'tinyhttp/__init__.py', content: `SECRET = "${CANARY}"\n` }] });
      await mkdir(join(ctx.dir, 'home'));
      await writeFile(join(ctx.dir, 'home', canary.filename), canary.bytes);
    },
    fault: (ctx) =>
      ctx.world.server.fault(/^\/pypi\/example\/simple\/tinyhttp\/$/, {
        type: 'status',
        status: 200,
        contentType: 'text/html',
        body: `<!DOCTYPE html>\n<html><body><a href="${canaryUrl(ctx)}">tinyhttp-9.9.9-py3-none-any.whl</a></body></html>\n`,
      }),
    code: 2,
    names: (ctx) => [/PyPI index http:\/\/127\.0\.0\.1:\d+\/pypi\/example\/simple/, `names ${canaryUrl(ctx)} for tinyhttp`, /only a file: index/],
    check: async (ctx) => {
      expect(existsSync(ctx.lockFile)).toBe(false);
      const cached = await filesUnder(join(ctx.dir, 'cache'));
      for (const file of cached) expect((await readFile(file)).includes(CANARY), file).toBe(false);
    },
  },
  {
    name: 'package: downloaded file does not match the lock sha256',
    args: ['build', '--frozen'],
    env: registryEnv('plain'),
    needs: BUILD,
    fault: (ctx) => ctx.world.server.fault(ctx.packagePath, { type: 'corrupt' }),
    code: 1,
    names: (ctx) => [ctx.packageUrl, /expected sha256 [0-9a-f]{64}/, /got sha256 [0-9a-f]{64}/],
  },
  {
    name: 'package: truncated download',
    args: ['build', '--frozen'],
    env: registryEnv('plain'),
    needs: BUILD,
    fault: (ctx) => ctx.world.server.fault(ctx.packagePath, { type: 'truncate' }),
    code: 1,
    names: (ctx) => [ctx.packageUrl],
  },
  {
    name: 'package: gone from the channel (404)',
    args: ['build', '--frozen'],
    env: registryEnv('plain'),
    needs: BUILD,
    fault: (ctx) => ctx.world.server.fault(ctx.packagePath, { type: 'status', status: 404 }),
    code: 1,
    names: (ctx) => [ctx.packageUrl, /404/],
  },
];

beforeAll(async () => {
  world = await createWorld('bad-input');
  baseDir = await world.flow(FLOW_FILE, SMALL_FLOW);
  const locked = await runCli(['lock', FLOW_FILE], { cwd: baseDir, env: world.env() });
  if (locked.code !== 0) throw new Error(`prebuilt lock of the small flow failed:\n${locked.output}`);
  const lock = JSON.parse(await readFile(join(baseDir, LOCK_FILE), 'utf8')) as Record<string, any>;
  packageUrl = (firstEnv(lock)['packages'] as { name: string; url: string }[]).find((p) => p.name === 'tinycli')!.url;
}, 300_000);

afterAll(async () => {
  await world?.close();
});

async function runCase(row: Case): Promise<void> {
  const dir = await mkdtemp(join(world.dir, 'case-'));
  if (row.flow === undefined) {
    await cp(join(baseDir, FLOW_FILE), join(dir, FLOW_FILE));
    await cp(join(baseDir, LOCK_FILE), join(dir, LOCK_FILE));
  } else {
    await writeFile(join(dir, FLOW_FILE), row.flow, 'latin1');
  }
  const ctx: CaseContext = { dir, world, lockFile: join(dir, LOCK_FILE), packageUrl, packagePath: new URL(packageUrl).pathname };
  await row.setup?.(ctx);
  // A fresh cache for the rows that fault the server (cached repodata or packages would hide the fault).
  const env = world.env({ ...(row.fault ? { METAFLOW_PREBUILT_CACHE_DIR: join(dir, 'cache') } : {}), ...row.env?.(ctx) });
  const remove = row.fault?.(ctx);
  let result;
  try {
    result = await runCli(row.noFlow ? row.args : [...row.args, FLOW_FILE], { cwd: dir, env });
  } finally {
    remove?.();
  }
  const shown = `${row.name}: exit ${result.code}\n${result.output}`;
  expect(result.code, shown).toBe(row.code);
  expect(result.stderr, shown).toMatch(/^error: /m);
  expect(stackLines(result.output), shown).toEqual([]);
  expect(result.output, shown).not.toMatch(/this is unexpected/);
  for (const name of row.names(ctx)) {
    if (typeof name === 'string') expect(result.stderr, `${shown}\nmust name ${name}`).toContain(name);
    else expect(result.stderr, `${shown}\nmust match ${name}`).toMatch(name);
  }
  for (const name of row.absent ?? []) expect(result.output, `${shown}\nmust not name ${name}`).not.toContain(name);
  await row.check?.(ctx);
}

function define(row: Case, concurrent: boolean): void {
  const reason = row.needs ? missingFor(row.needs, services) : undefined;
  if (reason) itOrFailInCi(row.name, reason, () => runCase(row), 180_000);
  else (concurrent ? it.concurrent : it)(row.name, () => runCase(row), 180_000);
}

describe('bad input: exit 2 (or 1 for remote failures), a message naming the input, no stack trace', () => {
  it('the catalogue has at least 40 inputs', () => {
    expect(CASES.length + FAULT_CASES.length).toBeGreaterThanOrEqual(40);
  });
  describe('inputs', { concurrent: true }, () => {
    for (const row of CASES) define(row, true);
  });
  describe('channel, index and package faults (one at a time)', () => {
    for (const row of FAULT_CASES) define(row, false);
  });
});
