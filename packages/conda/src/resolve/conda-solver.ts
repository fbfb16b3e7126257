/**
 * The conda part of an env, solved with rattler against the request's channels.
 */
import { LocalSourceRoots, ResolutionError, channelUrl, createLogger, errorMessage, fileUrlInsideSources, redactUrl, type EnvRequest, type LockedPackage } from '@prebuilt/core';
import { VIRTUAL_PREFIX, type ChannelServer, type VirtualPackages } from './channel-server.js';
import { condaSpec, pythonSpec, type CondaSpec } from './match-spec.js';
import type { Rattler } from './rattler.js';
import { remoteDigest, type RemoteFileOptions } from './remote-file.js';

const log = createLogger('conda:solve');

export interface CondaSolveInput {
  request: EnvRequest;
  /** Extra conda packages added at resolution (Metaflow's pins), name → spec. */
  pins: Record<string, string>;
  /** Steps that use this env, for error messages. */
  steps: readonly string[];
}

export interface CondaSolveContext {
  rattler: Rattler;
  server: ChannelServer;
  virtual: VirtualPackages;
  /** How package files are reached when the repodata lacks their hash or size. */
  remote?: RemoteFileOptions;
}

export interface CondaSolveResult {
  packages: LockedPackage[];
  /** Version of the solved `python` package. */
  pythonVersion: string;
}

function stepsText(steps: readonly string[]): string {
  return steps.length === 0 ? 'the env' : `step${steps.length === 1 ? '' : 's'} ${steps.join(', ')}`;
}

/** The match specs of a request: python, the user's conda packages, then the pins not already named. */
export function requestSpecs(rattler: Rattler, input: CondaSolveInput): CondaSpec[] {
  const specs = [pythonSpec(rattler, input.request.python, input.steps)];
  const named = new Set<string>(['python']);
  for (const [name, value] of Object.entries(input.request.conda).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const spec = condaSpec(rattler, name, value, input.steps);
    specs.push(spec);
    named.add(spec.name);
  }
  for (const [name, value] of Object.entries(input.pins).sort(([a], [b]) => (a < b ? -1 : 1))) {
    if (!named.has(name.toLowerCase())) specs.push(condaSpec(rattler, name, value, input.steps));
  }
  return specs;
}

/** Versions named in a hint, newest first; the rest counted. */
const VERSIONS_SHOWN = 10;

/**
 * For each package the solver found no candidates for ("No candidates were found for tinynum
 * ==9.9"), what the channels have of it: its versions, or that none has it (a misspelt name).
 * ' The channels have tinynum 1.4.0, 1.3.0.' — empty when the explanation names no such package
 * (a virtual package, `__cuda`, is the machine's, not a channel's: left to the solver's words).
 */
async function availableVersions(server: ChannelServer, views: readonly string[], subdirs: readonly string[], explanation: string): Promise<string> {
  const names = new Set([...explanation.matchAll(/No candidates were found for (?:[^\s:]+::)?([a-z0-9_][a-z0-9_.-]{0,127})/gi)].map((m) => m[1]!.toLowerCase()).filter((name) => !name.startsWith(VIRTUAL_PREFIX)));
  const where = views.length === 1 ? 'The channel has' : 'The channels have';
  const parts = await Promise.all(
    [...names].slice(0, 5).map(async (name) => {
      const versions = await server.versionsOf(views, subdirs, name);
      if (versions.length === 0) return ` No channel has a package named ${name} for ${subdirs.join(' or ')}.`;
      const more = versions.length > VERSIONS_SHOWN ? ` and ${versions.length - VERSIONS_SHOWN} older` : '';
      return ` ${where} ${name} ${versions.slice(0, VERSIONS_SHOWN).join(', ')}${more}.`;
    }),
  );
  return parts.join('');
}

export async function solveConda(input: CondaSolveInput, ctx: CondaSolveContext): Promise<CondaSolveResult> {
  const { request, steps } = input;
  const specs = requestSpecs(ctx.rattler, input);
  const channels = solveChannels(request, specs, steps);
  const subdirs = [request.platform, 'noarch'];
  const views = await Promise.all(channels.map((channel) => channelView(ctx, channel, specs, subdirs, input)));
  const virtualView = ctx.server.virtualView(request.platform, ctx.virtual);
  await ctx.server.prepare(virtualView, subdirs);

  const matchSpecs = specs.map((s) => s.spec);
  log('solving %s for %s on %o', matchSpecs.join(', '), request.platform, channels);
  let solved: Awaited<ReturnType<Rattler['simpleSolve']>>;
  try {
    solved = await ctx.rattler.simpleSolve(matchSpecs, [...views, virtualView], subdirs as never, undefined);
  } catch (error) {
    const text = (typeof error === 'string' ? error : errorMessage(error)).trim();
    const explanation = text.replace(/^Cannot solve the request because of:\s*/, '');
    const available = await availableVersions(ctx.server, views, subdirs, explanation);
    throw new ResolutionError(`Cannot resolve the conda env of ${stepsText(steps)}: ${explanation}`, {
      steps,
      cause: error,
      hint: `Requested: ${matchSpecs.join(', ')} on ${request.platform} from ${channels.join(', ')}.${available} Check the package names and versions, or loosen the version specs.`,
    });
  }

  const packages: LockedPackage[] = [];
  // Each file: channel's directory resolved once for the solve, not once per package.
  const roots = new LocalSourceRoots();
  for (const p of solved) {
    try {
      const locked = await lockedCondaPackage(p, ctx, channels, roots);
      if (locked) packages.push(locked);
    } finally {
      p.free();
    }
  }
  const pythonVersion = packages.findLast((p) => p.name === 'python')?.version;
  if (pythonVersion === undefined) {
    throw new ResolutionError(`The conda solve of ${stepsText(steps)} has no python package.`, { steps });
  }
  packages.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return { packages, pythonVersion };
}

/** Channels in priority order, then the ones only named by `channel::pkg`; none is a ResolutionError. */
function solveChannels(request: EnvRequest, specs: readonly CondaSpec[], steps: readonly string[]): string[] {
  const channels = request.channels.map((c) => channelUrl(c, 'channels'));
  for (const spec of specs) if (spec.channel !== null && !channels.includes(spec.channel)) channels.push(spec.channel);
  if (channels.length === 0) {
    throw new ResolutionError(`No conda channel is configured for ${stepsText(steps)}.`, {
      steps,
      hint: 'Set METAFLOW_PREBUILT_CONDA_CHANNELS to channel URLs or names, e.g. conda-forge.',
    });
  }
  return channels;
}

/** One channel as the solver sees it, its repodata ready; a channel with none for these subdirs is a ResolutionError. */
async function channelView(ctx: CondaSolveContext, channel: string, specs: readonly CondaSpec[], subdirs: string[], { request, steps }: CondaSolveInput): Promise<string> {
  // A package pinned to a channel is hidden in every other channel.
  const exclude = new Set(specs.filter((s) => s.channel !== null && s.channel !== channel).map((s) => s.name));
  const view = ctx.server.channelView(channel, request.platform, exclude);
  const found = await ctx.server.prepare(view, subdirs);
  if (found.length === 0) {
    throw new ResolutionError(
      `Conda channel ${channel} has no repodata for ${subdirs.join(' or ')} (${channel}/noarch/repodata.json: 404).`,
      { steps, hint: 'Check the channel URL (METAFLOW_PREBUILT_CONDA_CHANNELS, or channel::package in a decorator).' },
    );
  }
  return view;
}

/**
 * A package of a `file:` channel is locked only when it lies inside one of the env's `file:`
 * channels, `..` and symlinks resolved (core's local-source; a lock naming anything else is refused
 * when it is read): a symlink in the channel pointing out, or a filename climbing out of it, named a
 * file of this machine. Checked before the file is hashed or sized.
 */
async function checkInsideChannel(url: string, filename: string, channels: readonly string[], roots: LocalSourceRoots): Promise<void> {
  const local = channels.filter((c) => /^file:/i.test(c));
  if (await fileUrlInsideSources(url, local, roots)) return;
  throw new ResolutionError(
    `Conda channel ${local.map(redactUrl).join(' or ')} names ${filename} at ${redactUrl(url)}, which is not inside the channel once \`..\` and symlinks are resolved; refusing to lock it.`,
    { hint: 'A file: channel holds its packages itself: copy the package file into the channel directory instead of linking to a file outside it.' },
  );
}

/**
 * A solved record as a locked package (hashing the file when the repodata lacks sha256 or size);
 * none for a virtual package. A package the repodata places elsewhere (`info.base_url`, a CDN) must
 * be at an http(s) URL: a remote channel naming `file:///…` pointed the lock at files of the
 * machines that lock and build (hashed, /dev/zero forever, when the repodata gave no sha256).
 */
async function lockedCondaPackage(p: Awaited<ReturnType<Rattler['simpleSolve']>>[number], ctx: CondaSolveContext, channels: readonly string[], roots: LocalSourceRoots): Promise<LockedPackage | undefined> {
  if (p.packageName.startsWith(VIRTUAL_PREFIX)) return undefined;
  const url = ctx.server.upstreamUrl(p.url);
  if (url === undefined) return undefined;
  if (url === p.url && !/^https?:\/\//i.test(url)) {
    throw new ResolutionError(`Conda channel ${channels.join(' or ')} names ${p.filename} at ${redactUrl(url)} (its repodata's base_url), which is not an http(s) URL; refusing to lock it.`, {
      hint: 'The channel is misconfigured or hostile; remove it from METAFLOW_PREBUILT_CONDA_CHANNELS (or the decorator naming it), or ask its maintainers to fix its base_url.',
    });
  }
  if (/^file:/i.test(url)) await checkInsideChannel(url, p.filename, channels, roots);
  let sha256 = p.sha256;
  let size = p.size === undefined ? undefined : Number(p.size);
  // The lock's reader takes a safe integer only: a lock holding more could not be read again.
  if (size !== undefined && !(Number.isSafeInteger(size) && size >= 0)) {
    throw new ResolutionError(`Conda channel ${channels.join(' or ')} gives ${p.filename} the size ${String(p.size)}, which is not a byte count a lock can hold; refusing to lock it.`, {
      hint: 'The channel is misconfigured or hostile; remove it from METAFLOW_PREBUILT_CONDA_CHANNELS (or the decorator naming it).',
    });
  }
  if (sha256 === undefined || size === undefined) {
    log('repodata has no sha256/size for %s; hashing the file', url);
    const digest = await remoteDigest(url, ctx.remote);
    sha256 ??= digest.sha256;
    size ??= digest.size;
  }
  return {
    kind: 'conda',
    name: p.packageName,
    version: p.version,
    build: p.build,
    url,
    sha256,
    size,
    filename: p.filename,
    ...(p.subdir !== undefined ? { subdir: p.subdir } : {}),
  };
}
