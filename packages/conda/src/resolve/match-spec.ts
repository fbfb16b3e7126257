/**
 * Turning a request's conda packages into conda match specs the solver accepts.
 *
 * Values follow Metaflow: `""` is any version, a bare version (`1.26.4`) is an exact pin
 * (`==1.26.4`), anything starting with an operator or holding `*`, `,` or `|` is a conda version
 * spec as written, and an optional second word is a build string glob (`1.26.4 py311*`).
 * `channel::name` asks for the package from that channel only. Every spec is checked here, before
 * the solver sees it: the WASM solver aborts the process on some malformed specs.
 */
import { ResolutionError, channelUrl, errorMessage, hasChannelToken, hasUrlCredentials, normalizeCondaName, redactUrl } from '@prebuilt/core';
import type { Rattler } from './rattler.js';

export interface CondaSpec {
  name: string;
  /** Channel URL the package must come from (`channel::name`), or null for any channel. */
  channel: string | null;
  /** The match spec without channel, e.g. `numpy ==1.26.4`. */
  spec: string;
}

const NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;
const BUILD = /^[A-Za-z0-9_.*+!-]+$/;

function invalid(message: string, steps: readonly string[], hint: string): ResolutionError {
  const where = steps.length > 0 ? ` (step${steps.length === 1 ? '' : 's'} ${steps.join(', ')})` : '';
  return new ResolutionError(`${message}${where}.`, { steps, hint });
}

function versionSpec(rattler: Rattler, name: string, raw: string, steps: readonly string[]): string {
  const exact = !/^[<>=!~]/.test(raw) && !/[*,|]/.test(raw);
  const spec = exact ? `==${raw}` : raw;
  try {
    new rattler.VersionSpec(spec).free();
  } catch (error) {
    throw invalid(
      `Invalid conda version spec '${raw}' for package '${name}': ${String(errorMessage(error)).split('\n')[0]}`,
      steps,
      "Use a conda version spec such as '1.26.4', '>=1.26,<2' or '1.26.*', optionally followed by a build string.",
    );
  }
  return spec;
}

/** One conda match spec from a request entry (`name` may carry `channel::`). */
export function condaSpec(rattler: Rattler, rawName: string, rawValue: string, steps: readonly string[] = []): CondaSpec {
  const normalized = normalizeCondaName(rawName);
  const sep = normalized.lastIndexOf('::');
  const name = sep === -1 ? normalized : normalized.slice(sep + 2);
  let channel: string | null = null;
  if (sep !== -1) {
    const rawChannel = normalized.slice(0, sep);
    if (hasUrlCredentials(rawChannel) || hasChannelToken(rawChannel)) {
      // The request is written to the lock file as is: a secret in it would be committed.
      throw invalid(
        `The channel of conda package '${redactUrl(rawName)}' carries credentials, which would be written to the lock file`,
        steps,
        'Write the channel without user:token@ or /t/<token> in the decorator, and put its URL with the credentials in METAFLOW_PREBUILT_CONDA_CHANNELS: a user:token@ is used for every URL of that host, a /t/<token> for every URL under that channel.',
      );
    }
    try {
      channel = channelUrl(rawChannel, `conda package '${rawName}'`);
    } catch (error) {
      throw invalid(`Invalid channel '${redactUrl(rawChannel)}' in conda package '${redactUrl(rawName)}': ${errorMessage(error)}`, steps, 'Write it as channel::package, with a channel name or URL.');
    }
  }
  if (!NAME.test(name)) {
    throw invalid(`Invalid conda package name '${rawName}'`, steps, 'Conda package names contain only letters, digits, _, - and .');
  }
  const words = rawValue.trim().split(/\s+/).filter((w) => w !== '');
  if (words.length > 2 || (words[1] !== undefined && !BUILD.test(words[1]))) {
    throw invalid(`Invalid conda spec '${rawValue}' for package '${name}'`, steps, "Give a version spec, optionally followed by a build string glob, e.g. '1.26.4 py311*'.");
  }
  const parts = [name];
  if (words[0] !== undefined) parts.push(versionSpec(rattler, name, words[0], steps));
  if (words[1] !== undefined) parts.push(words[1]);
  return { name, channel, spec: parts.join(' ') };
}

/** The spec for the env's python: `3.11` → any 3.11.x, `3.11.9` → exactly that, or a version spec. */
export function pythonSpec(rattler: Rattler, python: string, steps: readonly string[] = []): CondaSpec {
  const v = python.trim();
  if (/^\d+\.\d+$/.test(v)) return { name: 'python', channel: null, spec: `python ${v}.*` };
  return condaSpec(rattler, 'python', v, steps);
}
