import { createHash } from 'node:crypto';
import { lstatSync } from 'node:fs';
import { lstat, readFile } from 'node:fs/promises';
import { join, posix, relative, resolve, sep } from 'node:path';
import {
  CancelledError,
  InputError,
  MediaType,
  PREFIX_LAYERS_FILE,
  listTree,
  parsePrefixLayers,
  type ImageManifest,
  type OciDescriptor,
  type PrefixLayers,
  type RegistryClient,
} from '@prebuilt/core/backend';
import { expand, parseDockerfile, renderWord, type Instruction } from './dockerfile.js';
import { imagePath, type LayerEntry } from './layer.js';
import { GROUPING, layerGroups, type LayeringPolicy } from './layering.js';

/** Media types of an image in the Docker v2 or the OCI format. */
export interface ImageFormat {
  manifest: string;
  config: string;
  layer: string;
}

const DOCKER_FORMAT: ImageFormat = {
  manifest: MediaType.dockerManifest,
  config: 'application/vnd.docker.container.image.v1+json',
  layer: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
};

const OCI_FORMAT: ImageFormat = {
  manifest: MediaType.ociManifest,
  config: 'application/vnd.oci.image.config.v1+json',
  layer: 'application/vnd.oci.image.layer.v1.tar+gzip',
};

/** OCI media types of the Docker v2 layer types (same bytes). */
const OCI_LAYER_OF_DOCKER: Record<string, string> = {
  'application/vnd.docker.image.rootfs.diff.tar.gzip': 'application/vnd.oci.image.layer.v1.tar+gzip',
  'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip': 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
};

/**
 * The base restated in the OCI format (an OCI base is returned as is): the same config and layer
 * blobs, with the OCI media types. Needed to add layers only OCI can describe (tar+zstd).
 */
export function ociFormatOf(base: BaseImage): BaseImage {
  if (base.format === OCI_FORMAT) return base;
  const layers = base.layers.map((layer) => {
    const mediaType = OCI_LAYER_OF_DOCKER[layer.mediaType];
    if (!mediaType) throw new BuildInputProblem(`the base image ${base.ref ?? 'scratch'} has a layer of type ${layer.mediaType}, which has no OCI equivalent; use gzip layers with this base.`);
    return { ...layer, mediaType };
  });
  return { ...base, format: OCI_FORMAT, layers };
}

/** A layer to build: its entries, and what the history says made it. */
export interface PlannedLayer {
  /** Short name for logs, e.g. `python-3.11.2-h1_0.tar.bz2` or `env`. */
  name: string;
  entries: LayerEntry[];
  createdBy: string;
  /**
   * For a layer of packages whose entries all have a content key (prefix-layers.json): a hash of
   * the keys and of the entries the layer takes from each, which stands for the layer's content —
   * the service may reuse an earlier build's blob of the same key without reading the files.
   */
  contentKey?: string;
}

export interface BaseImage {
  /** `scratch`, or the registry/repository the base layers come from. */
  ref: string | null;
  registry: string | null;
  repository: string | null;
  format: ImageFormat;
  layers: OciDescriptor[];
  /** The base config, parsed (key order kept). */
  config: Record<string, unknown>;
}

/** What the Dockerfile asks for, ready to push: the base, the new layers in order, and the config changes. */
export interface ImagePlan {
  base: BaseImage;
  layers: PlannedLayer[];
  env: Map<string, string>;
  labels: Map<string, string>;
  workdir: string | undefined;
  user: string | undefined;
  cmd: string[] | undefined;
  entrypoint: string[] | undefined;
  /** History entries of instructions that add no layer (ENV, LABEL, …), in Dockerfile order, with the layer count before them. */
  emptyHistory: { createdBy: string; afterLayers: number }[];
}

/** A build that cannot proceed for a reason the user can fix in the Dockerfile or the context. */
export class BuildInputProblem extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BuildInputProblem';
  }
}

const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

function envMap(config: Record<string, unknown>): Map<string, string> {
  const env = new Map<string, string>();
  const list = ((config['config'] as Record<string, unknown> | undefined)?.['Env'] ?? []) as unknown;
  if (Array.isArray(list)) {
    for (const item of list) {
      if (typeof item !== 'string') continue;
      const at = item.indexOf('=');
      if (at > 0) env.set(item.slice(0, at), item.slice(at + 1));
    }
  }
  return env;
}

function labelMap(config: Record<string, unknown>): Map<string, string> {
  const labels = (config['config'] as Record<string, unknown> | undefined)?.['Labels'];
  const out = new Map<string, string>();
  if (labels && typeof labels === 'object') for (const [k, v] of Object.entries(labels)) if (typeof v === 'string') out.set(k, v);
  return out;
}

/**
 * Fetches the base image's manifest for `platform` and its config (both by digest). `scratch` gives
 * an empty OCI image for the platform.
 */
export async function fetchBase(client: RegistryClient, ref: string, platform: string, signal: AbortSignal | undefined): Promise<BaseImage> {
  if (ref === 'scratch') {
    const [os, architecture, variant] = platform.split('/');
    return {
      ref: null,
      registry: null,
      repository: null,
      format: OCI_FORMAT,
      layers: [],
      config: { architecture, os, ...(variant ? { variant } : {}), config: {}, rootfs: { type: 'layers', diff_ids: [] }, history: [] },
    };
  }
  const result = await client.getManifest(ref, { platform, ...(signal ? { signal } : {}) });
  const manifest = result.manifest as ImageManifest;
  const format = result.mediaType === MediaType.dockerManifest ? DOCKER_FORMAT : OCI_FORMAT;
  const configBytes = await client.getBlob(result.ref, manifest.config.digest, signal ? { signal } : {});
  let config: Record<string, unknown>;
  try {
    config = JSON.parse(Buffer.from(configBytes).toString('utf8')) as Record<string, unknown>;
  } catch (error) {
    throw new InputError(`the config of base image ${ref} is not JSON`, { cause: error });
  }
  return { ref, registry: result.ref.registry, repository: result.ref.repository, format, layers: manifest.layers, config };
}

/** Resolves a COPY source inside the context, refusing anything that leaves it. */
function contextPath(contextDir: string, source: string): string {
  const root = resolve(contextDir);
  const full = resolve(root, source.replace(/^\/+/, ''));
  if (full !== root && !full.startsWith(root + sep)) throw new BuildInputProblem(`COPY source '${source}' is outside the build context.`);
  return full;
}

/**
 * Plans the layers and config changes of a Dockerfile against a base. A COPY of the materialized
 * prefix directory (named by `prefix-layers.json` in the context) becomes the package layers of the
 * layering policy plus one layer for the entries no package owns (`single`: one layer); any other
 * COPY becomes one layer.
 */
export async function planImage(
  instructions: Instruction[],
  base: BaseImage,
  contextDir: string,
  signal: AbortSignal | undefined,
  layering: LayeringPolicy = 'grouped',
): Promise<ImagePlan> {
  const env = envMap(base.config);
  const labels = labelMap(base.config);
  const baseConfig = (base.config['config'] ?? {}) as Record<string, unknown>;
  const plan: ImagePlan = {
    base,
    layers: [],
    env,
    labels,
    workdir: typeof baseConfig['WorkingDir'] === 'string' && baseConfig['WorkingDir'] !== '' ? baseConfig['WorkingDir'] : undefined,
    user: typeof baseConfig['User'] === 'string' && baseConfig['User'] !== '' ? baseConfig['User'] : undefined,
    cmd: undefined,
    entrypoint: undefined,
    emptyHistory: [],
  };
  const prefixLayers = await readPrefixLayers(contextDir);
  for (const instruction of instructions) {
    if (signal?.aborted) throw new CancelledError('The build was cancelled.', { cause: signal.reason });
    switch (instruction.kind) {
      case 'from':
        break;
      case 'env': {
        const values = instruction.pairs.map(([k, v]) => [renderWord(k, env), renderWord(v, env)] as const);
        for (const [k, v] of values) {
          if (k === '') throw new BuildInputProblem(`line ${instruction.line}: ENV has an empty name.`);
          env.set(k, v);
        }
        plan.emptyHistory.push({ createdBy: instruction.text, afterLayers: plan.layers.length });
        break;
      }
      case 'label': {
        for (const [k, v] of instruction.pairs) labels.set(renderWord(k, env), renderWord(v, env));
        plan.emptyHistory.push({ createdBy: instruction.text, afterLayers: plan.layers.length });
        break;
      }
      case 'workdir': {
        const path = expand(instruction.path, env);
        plan.workdir = posix.resolve(plan.workdir ?? '/', path);
        plan.emptyHistory.push({ createdBy: instruction.text, afterLayers: plan.layers.length });
        break;
      }
      case 'user':
        plan.user = expand(instruction.user, env);
        plan.emptyHistory.push({ createdBy: instruction.text, afterLayers: plan.layers.length });
        break;
      case 'cmd':
        plan.cmd = instruction.args;
        plan.emptyHistory.push({ createdBy: instruction.text, afterLayers: plan.layers.length });
        break;
      case 'entrypoint':
        plan.entrypoint = instruction.args;
        plan.cmd = undefined;
        plan.emptyHistory.push({ createdBy: instruction.text, afterLayers: plan.layers.length });
        break;
      case 'copy':
        plan.layers.push(...(await planCopy(instruction, contextDir, env, plan.workdir, layering === 'single' ? undefined : prefixLayers, layering)));
        break;
    }
  }
  return plan;
}

async function readPrefixLayers(contextDir: string): Promise<PrefixLayers | undefined> {
  const file = join(contextDir, PREFIX_LAYERS_FILE);
  const text = await readFile(file, 'utf8').catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return undefined;
    throw error;
  });
  return text === undefined ? undefined : parsePrefixLayers(text, file);
}

async function planCopy(
  instruction: Extract<Instruction, { kind: 'copy' }>,
  contextDir: string,
  env: Map<string, string>,
  workdir: string | undefined,
  prefixLayers: PrefixLayers | undefined,
  layering: LayeringPolicy,
): Promise<PlannedLayer[]> {
  const rawDest = expand(instruction.dest, env);
  const dest = posix.resolve(workdir ?? '/', rawDest);
  const destIsDir = rawDest.endsWith('/') || instruction.sources.length > 1;
  const entries: LayerEntry[] = [];
  for (const source of instruction.sources) {
    const full = contextPath(contextDir, expand(source, env));
    const info = await lstat(full).catch(() => undefined);
    if (!info) throw new BuildInputProblem(`line ${instruction.line}: COPY source '${source}' is not in the build context (${contextDir}).`);
    if (info.isDirectory()) {
      const rel = relative(resolve(contextDir), full).split(sep).join('/');
      if (instruction.sources.length === 1 && prefixLayers && rel === prefixLayers.prefixDir) {
        return splitPrefix(full, dest, prefixLayers, instruction.text, layering);
      }
      for (const entry of await listTree(full, 'an image layer')) {
        entries.push({ path: imagePath(dest, entry.rel), kind: entry.kind, mode: entry.mode, ...(entry.kind === 'directory' ? {} : { source: join(full, entry.rel) }), ...(entry.kind === 'file' ? { size: entry.size } : {}) });
      }
      entries.push({ path: imagePath(dest, ''), kind: 'directory' });
    } else if (info.isFile() || info.isSymbolicLink()) {
      const name = posix.basename(source);
      const path = destIsDir ? imagePath(dest, name) : imagePath(dest, '');
      entries.push({ path, kind: info.isFile() ? 'file' : 'symlink', mode: info.mode, source: full });
    } else {
      throw new BuildInputProblem(`line ${instruction.line}: COPY source '${source}' is neither a file nor a directory.`);
    }
  }
  return [{ name: instruction.text.slice(5), entries, createdBy: instruction.text }];
}

/**
 * The prefix cut into layers by the policy (see layering.ts): each package's own entries (a file two
 * packages list belongs to the first), one layer per package or per group of packages, then one
 * layer with every entry no package owns.
 */
async function splitPrefix(dir: string, dest: string, layers: PrefixLayers, text: string, layering: LayeringPolicy): Promise<PlannedLayer[]> {
  const tree = await listTree(dir, 'an image layer');
  const byRel = new Map(tree.map((e) => [e.rel, e]));
  const owned = new Set<string>();
  const entryOf = (rel: string): LayerEntry => {
    const e = byRel.get(rel);
    if (!e) throw new BuildInputProblem(`${PREFIX_LAYERS_FILE} lists '${rel}', which is not in the prefix directory ${dir}; prepare the build context again.`);
    return { path: imagePath(dest, rel), kind: e.kind, mode: e.mode, ...(e.kind === 'directory' ? {} : { source: join(dir, rel) }), ...(e.kind === 'file' ? { size: e.size } : {}) };
  };
  const own = layers.packages.map((pkg) => pkg.files.filter((rel) => !owned.has(rel) && owned.add(rel)).map(entryOf));
  const root: LayerEntry = { path: imagePath(dest, ''), kind: 'directory' };
  const sized = layers.packages.map((pkg, i) => ({ kind: pkg.kind, name: pkg.name, bytes: fileBytes(own[i]!, layering, layers.packages.length) }));
  const out: PlannedLayer[] = layerGroups(sized, layering).map((group) => {
    const pkgs = group.map((i) => layers.packages[i]!);
    const entries = [...group.flatMap((i) => own[i]!), root];
    const key = groupContentKey(dest, group.map((i) => ({ contentKey: layers.packages[i]!.contentKey, entries: own[i]! })));
    const keyed = key ? { contentKey: key } : {};
    if (pkgs.length === 1) {
      const pkg = pkgs[0]!;
      return { name: pkg.filename, entries, createdBy: `${text} # ${pkg.kind} package ${pkg.filename} (sha256 ${pkg.sha256.slice(0, 12)})`, ...keyed };
    }
    const names = pkgs.map((p) => p.filename);
    return { name: `group of ${pkgs.length} (${names[0]}, …)`, entries, createdBy: `${text} # ${pkgs.length} packages: ${names.join(' ')}`, ...keyed };
  });
  const rest: LayerEntry[] = tree.filter((e) => !owned.has(e.rel)).map((e) => entryOf(e.rel));
  rest.push(root);
  out.push({ name: 'env', entries: rest, createdBy: `${text} # env files no package owns (conda-meta, metadata)` });
  return out;
}

/** Part of every layer content key: bump when the same packages' entries could give another tar. */
const LAYER_KEY_FORMAT = 'oci-layer-content-v1';

/**
 * The content key of a layer of packages (see {@link PlannedLayer.contentKey}): their content keys
 * and the image paths the layer takes from each (a package's entries another package listed first
 * are not in it), under `dest`; undefined when a package has no content key.
 */
function groupContentKey(dest: string, members: { contentKey: string | undefined; entries: LayerEntry[] }[]): string | undefined {
  if (members.some((m) => m.contentKey === undefined)) return undefined;
  const hash = createHash('sha256').update(`${LAYER_KEY_FORMAT}\n${dest}\n`);
  for (const member of members) {
    hash.update(`${member.contentKey}\n`);
    for (const entry of member.entries) hash.update(`${entry.path}\0`);
    hash.update('\n');
  }
  return `sha256:${hash.digest('hex')}`;
}

/** Bytes of a package's files, when the policy needs sizes (grouped, more packages than layers); else 0. */
function fileBytes(entries: LayerEntry[], layering: LayeringPolicy, packages: number): number {
  if (layering !== 'grouped' || packages <= GROUPING.maxSolo + GROUPING.groups) return 0;
  let bytes = 0;
  // The size listed with the entry; else one synchronous call, where the promise version costs a thread-pool round trip.
  for (const entry of entries) if (entry.kind === 'file' && entry.source) bytes += entry.size ?? lstatSync(entry.source).size;
  return bytes;
}

/** The Dockerfile's instructions, or the problem that stops this service from building it. */
export function dockerfileInstructions(dockerfile: string): Instruction[] {
  const parsed = parseDockerfile(dockerfile);
  if (!parsed.ok) throw new BuildInputProblem(parsed.reason);
  return parsed.instructions;
}

/** The FROM reference of parsed instructions. */
export function fromRef(instructions: Instruction[]): string {
  const from = instructions[0];
  if (from?.kind !== 'from') throw new BuildInputProblem('the first instruction must be FROM.');
  return from.image;
}

/** The image config: the base's, with the new env, labels, working dir, user, command, diff_ids and history. */
export function imageConfig(plan: ImagePlan, diffIds: string[], created: string): Record<string, unknown> {
  const base = plan.base.config;
  const inner: Record<string, unknown> = { ...((base['config'] as Record<string, unknown> | undefined) ?? {}) };
  if (!plan.env.has('PATH') && plan.base.ref === null) plan.env.set('PATH', DEFAULT_PATH);
  inner['Env'] = [...plan.env].map(([k, v]) => `${k}=${v}`);
  if (plan.labels.size > 0) inner['Labels'] = Object.fromEntries(plan.labels);
  if (plan.workdir !== undefined) inner['WorkingDir'] = plan.workdir;
  if (plan.user !== undefined) inner['User'] = plan.user;
  if (plan.entrypoint !== undefined) inner['Entrypoint'] = plan.entrypoint;
  if (plan.cmd !== undefined) inner['Cmd'] = plan.cmd;
  const baseRootfs = (base['rootfs'] ?? { type: 'layers', diff_ids: [] }) as { type: string; diff_ids?: string[] };
  const history = Array.isArray(base['history']) ? [...(base['history'] as unknown[])] : [];
  const entry = (createdBy: string, empty: boolean): Record<string, unknown> => ({
    created,
    created_by: createdBy,
    comment: 'prebuilt oci',
    ...(empty ? { empty_layer: true } : {}),
  });
  let pending = [...plan.emptyHistory];
  plan.layers.forEach((layer, i) => {
    for (const e of pending.filter((p) => p.afterLayers <= i)) history.push(entry(e.createdBy, true));
    pending = pending.filter((p) => p.afterLayers > i);
    history.push(entry(layer.createdBy, false));
  });
  for (const e of pending) history.push(entry(e.createdBy, true));
  return {
    ...base,
    created,
    config: inner,
    rootfs: { type: baseRootfs.type ?? 'layers', diff_ids: [...(baseRootfs.diff_ids ?? []), ...diffIds] },
    history,
  };
}

/** A manifest naming the config and every layer (base first), in the base's format. */
export function imageManifest(format: ImageFormat, config: OciDescriptor, layers: OciDescriptor[], annotations?: Record<string, string>): Record<string, unknown> {
  return {
    schemaVersion: 2,
    mediaType: format.manifest,
    config: { mediaType: config.mediaType, digest: config.digest, size: config.size },
    layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size, ...(l.annotations ? { annotations: l.annotations } : {}) })),
    ...(annotations ? { annotations } : {}),
  };
}

