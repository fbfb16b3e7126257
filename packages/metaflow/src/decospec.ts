/**
 * A `--with` decorator spec (`kubernetes:node_selector=pool=gpu,gpu=1`) as Metaflow 2.19 reads it,
 * and the attributes Metaflow's @kubernetes and @resources accept.
 */
import { InputError } from '@prebuilt/core';

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
    attributes[part.slice(0, eq).trim()] = decospecValue(part.slice(eq + 1));
  }
  return { name, attributes, text };
}

/**
 * The attributes of `spec` that `decorator` does not take (Metaflow refuses the spec with
 * "Decorator '<name>' does not support the attribute '<attr>'"): none for a decorator this list does not know.
 */
export function unknownDecospecAttributes(spec: Decospec): string[] {
  const known = DECORATOR_ATTRIBUTES[spec.name as keyof typeof DECORATOR_ATTRIBUTES];
  return known ? Object.keys(spec.attributes).filter((attribute) => !known.includes(attribute)) : [];
}
