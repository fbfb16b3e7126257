/**
 * A `--with` decorator spec (`kubernetes:node_selector=pool=gpu,gpu=1`) as Metaflow 2.19 reads it,
 * and the attributes Metaflow's @kubernetes and @resources accept.
 */
import { ConfigError, InputError } from '@prebuilt/core';
import { metaflowSetting } from './pins.js';

export interface Decospec {
  /** The decorator's name: what comes before the first `:`. */
  name: string;
  /** Its attributes, each value parsed as Metaflow parses it (JSON, else an int, else a float, else the text). */
  attributes: Record<string, unknown>;
  /** The spec as given (for error messages: `--with <text>`). */
  text: string;
}

/**
 * The attribute names each decorator takes (Metaflow 2.19: `KubernetesDecorator.defaults` in
 * plugins/kubernetes/kubernetes_decorator.py, `ResourcesDecorator.defaults` in
 * plugins/resources_decorator.py). `Decorator.__init__` (decorators.py) refuses any other name
 * with InvalidDecoratorAttribute.
 */
export const DECORATOR_ATTRIBUTES: Readonly<Record<'kubernetes' | 'resources', readonly string[]>> = {
  kubernetes: [
    'cpu', 'memory', 'disk', 'image', 'image_pull_policy', 'image_pull_secrets', 'service_account', 'secrets', 'node_selector',
    'namespace', 'gpu', 'gpu_vendor', 'tolerations', 'labels', 'annotations', 'use_tmpfs', 'tmpfs_tempdir', 'tmpfs_size',
    'tmpfs_path', 'persistent_volume_claims', 'shared_memory', 'port', 'compute_pool', 'executable',
    'hostname_resolution_timeout', 'qos', 'extended_resources', 'security_context',
  ],
  resources: ['cpu', 'gpu', 'disk', 'memory', 'shared_memory'],
};

/** Python's `int(text)` (after `strip()`): digits, an optional sign, `_` between digits. */
const PYTHON_INT = /^[+-]?\d+(?:_\d+)*$/;
/** Python's `float(text)` for what `int` and JSON did not take: `1.`, `.5`, `1e3`, `inf`, `nan`. */
const PYTHON_FLOAT = /^[+-]?(?:(?:\d+(?:_\d+)*)?\.?\d*(?:_\d+)*(?:[eE][+-]?\d+(?:_\d+)*)?|inf(?:inity)?|nan)$/i;

/**
 * One attribute value as `Decorator.extract_args_kwargs_from_decorator_spec` (Metaflow 2.19
 * decorators.py) reads it: `json.loads(val.strip().replace('\\"', '"'))`, else `int(val.strip())`,
 * else `float(val.strip())`, else the stripped text.
 */
function decospecValue(raw: string): unknown {
  const text = raw.trim();
  try {
    return JSON.parse(text.replaceAll('\\"', '"'));
  } catch {
    if (PYTHON_INT.test(text)) return Number(text.replaceAll('_', ''));
    if (/\d|inf|nan/i.test(text) && PYTHON_FLOAT.test(text)) {
      const lower = text.toLowerCase().replaceAll('_', '');
      return lower.includes('nan') ? Number.NaN : lower.includes('inf') ? (lower.startsWith('-') ? -Infinity : Infinity) : Number(lower);
    }
    return text;
  }
}

/**
 * A `--with` spec as Metaflow 2.19 splits it (decorators.py, `extract_step_decorator_from_decospec`
 * and `extract_args_kwargs_from_decorator_spec`): the name before the first `:`, then the
 * attributes split at each `,` that is followed by `name=` (`re.split(r",(?=[\s\w]+=)", spec)`, so
 * `node_selector=a.io/x=1,b.io/y=2` stays one attribute but `node_selector=pool=gpu,zone=a` is two),
 * each at its first `=`; a later attribute of the same name wins. `source` names where the spec
 * came from (`--with`, METAFLOW_DEFAULT_DECOSPECS) in the error.
 * @throws InputError (exit 2) for an attribute without `=` (Metaflow stops with a Python traceback).
 */
export function parseDecospec(text: string, source = '--with'): Decospec {
  const colon = text.indexOf(':');
  const name = colon < 0 ? text : text.slice(0, colon);
  const rest = colon < 0 ? '' : text.slice(colon + 1);
  const attributes: Record<string, unknown> = {};
  if (rest.length === 0) return { name, attributes, text };
  // Python's \w in a str pattern is Unicode-aware: letters, digits, underscore.
  for (const part of rest.split(/,(?=[\s\p{L}\p{N}_]+=)/u)) {
    const eq = part.indexOf('=');
    if (eq < 0) {
      throw new InputError(`${source} ${text}: '${part}' is not an attribute=value, so Metaflow cannot read the spec.`, {
        hint: `Write ${name}:attribute=value,attribute2=value2 (a JSON value for a list or a dict, e.g. ${name}:tolerations=[{"key": "gpu", "operator": "Exists"}]).`,
      });
    }
    // Defined, not assigned: `__proto__=…` set the attributes' prototype (a node_selector read through it, unlisted).
    Object.defineProperty(attributes, part.slice(0, eq).trim(), { value: decospecValue(part.slice(eq + 1)), enumerable: true, writable: true, configurable: true });
  }
  return { name, attributes, text };
}

/**
 * The attributes of `spec` that `decorator` does not take (Metaflow refuses the spec with
 * "Decorator '<name>' does not support the attribute '<attr>'"): none for a decorator this list does not know.
 */
export function unknownDecospecAttributes(spec: Decospec): string[] {
  // Own names only: `constructor:…` found Object (no list) and failed with a TypeError.
  const known = Object.hasOwn(DECORATOR_ATTRIBUTES, spec.name) ? DECORATOR_ATTRIBUTES[spec.name as keyof typeof DECORATOR_ATTRIBUTES] : undefined;
  return known ? Object.keys(spec.attributes).filter((attribute) => !known.includes(attribute)) : [];
}

/** A decospec the command attaches, and where it came from (for people and errors). */
export interface SourcedDecospec extends Decospec {
  /** `--with <text>`, `METAFLOW_DEFAULT_DECOSPECS (<text>)` or `METAFLOW_DEFAULT_DECOSPECS in <config file> (<text>)`. */
  source: string;
  /** The command line's `--with`, or Metaflow's default decospecs. */
  from: 'with' | 'default';
}

/** The setting Metaflow attaches after the command line's `--with` specs. */
const DEFAULTS_SETTING = 'METAFLOW_DEFAULT_DECOSPECS';

/**
 * METAFLOW_DEFAULT_DECOSPECS as Metaflow 2.19's `from_conf` reads it ({@link metaflowSetting}):
 * the environment variable when it is set — empty too, which turns the configuration files' off —
 * else the key in the project's `.metaflow/config.json` found from `cwd`, else in
 * $METAFLOW_HOME/config[_$METAFLOW_PROFILE].json.
 */
function defaultDecospecs(env: Record<string, string | undefined>, cwd: string): { value: string; setting: string } | undefined {
  const found = metaflowSetting(DEFAULTS_SETTING, env, cwd);
  return found && { value: found.value, setting: found.source === DEFAULTS_SETTING ? DEFAULTS_SETTING : `${DEFAULTS_SETTING} in ${found.source}` };
}

/**
 * The decospecs a Metaflow command attaches to every step, in Metaflow 2.19's order: `withSpecs`,
 * then METAFLOW_DEFAULT_DECOSPECS (space-separated; {@link defaultDecospecs}), then `afterDefaults`
 * — `run`/`resume` put their own `--with` before the defaults and the top-level `--with` after
 * them (cli_components/run_cmds.py `config_callback` and `before_run`); every other command puts
 * the top-level `--with` first (cli.py `start`). `decorators._attach_decorators_to_step` gives a
 * step a decorator only when it has none of that name, so for each name the first spec wins and a
 * step's own decorator wins over all of them. Each spec is parsed, and a @kubernetes / @resources
 * attribute Metaflow does not know is refused as Metaflow refuses it, naming where the spec came from.
 * `cwd` is where the command runs: Metaflow finds the project's configuration from there.
 * @throws InputError (exit 2) for a spec Metaflow cannot read, ConfigError for an unknown attribute.
 */
export function attachedDecospecs(withSpecs: readonly string[], env: Record<string, string | undefined>, afterDefaults: readonly string[] = [], cwd: string = process.cwd()): SourcedDecospec[] {
  const fromWith = (text: string): SourcedDecospec => ({ ...parseDecospec(text, '--with'), source: `--with ${text}`, from: 'with' });
  const defaults = defaultDecospecs(env, cwd);
  const specs = [
    ...withSpecs.map(fromWith),
    ...(defaults?.value.split(/\s+/).filter(Boolean) ?? []).map((text): SourcedDecospec => ({ ...parseDecospec(text, defaults!.setting), source: `${defaults!.setting} (${text})`, from: 'default' })),
    ...afterDefaults.map(fromWith),
  ];
  for (const spec of specs) {
    const unknown = unknownDecospecAttributes(spec);
    if (unknown.length > 0) {
      throw new ConfigError(`${spec.source}: Metaflow's @${spec.name} does not support the attribute '${unknown[0]}'.`, {
        hint: `The attributes of @${spec.name}: ${DECORATOR_ATTRIBUTES[spec.name as keyof typeof DECORATOR_ATTRIBUTES].join(', ')}.`,
      });
    }
  }
  return specs;
}

/** The first spec of each decorator name: the one Metaflow attaches to a step without that decorator of its own. */
export function firstDecospecs(specs: readonly SourcedDecospec[]): Map<string, SourcedDecospec> {
  const first = new Map<string, SourcedDecospec>();
  for (const spec of specs) if (!first.has(spec.name)) first.set(spec.name, spec);
  return first;
}
