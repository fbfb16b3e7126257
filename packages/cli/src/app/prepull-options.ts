/** The placement options of `prebuilt prepull`: node selector, tolerations, the pause image. */
import type { V1Toleration } from '@kubernetes/client-node';
import { ConfigError, errorMessage } from '@prebuilt/core';
import { parseImageRef } from '@prebuilt/core/backend';
import { isLabelKey, isLabelValue } from './kubernetes-names.js';

/** The main container's image: it only holds the pod (and the pulled images' place on the node). */
export const DEFAULT_PAUSE_IMAGE = 'registry.k8s.io/pause:3.9';
export const PAUSE_IMAGE_SETTING = 'METAFLOW_PREBUILT_PAUSE_IMAGE';

const EFFECTS = ['NoSchedule', 'PreferNoSchedule', 'NoExecute'] as const;

/** `--node-selector k=v` (repeatable) → the pod's nodeSelector. */
export function parseNodeSelector(terms: readonly string[]): Record<string, string> {
  const selector: Record<string, string> = {};
  for (const term of terms) {
    const eq = term.indexOf('=');
    const key = eq < 0 ? term : term.slice(0, eq);
    const value = eq < 0 ? undefined : term.slice(eq + 1);
    if (value === undefined || !isLabelKey(key) || !isLabelValue(value)) {
      throw new ConfigError(`--node-selector ${term} is not a node label of the form key=value.`, {
        hint: 'Write a label key and value, e.g. --node-selector kubernetes.io/arch=amd64 (repeat the option for more labels; a node must have all).',
      });
    }
    selector[key] = value;
  }
  return selector;
}

/**
 * `--toleration` → a toleration: `key=value:Effect` (Equal), `key:Effect` or `key` (Exists; without
 * an effect, every effect), `*` (every taint).
 */
export function parseToleration(text: string): V1Toleration {
  if (text === '*') return { operator: 'Exists' };
  const colon = text.lastIndexOf(':');
  const effect = colon < 0 ? undefined : text.slice(colon + 1);
  const match = colon < 0 ? text : text.slice(0, colon);
  const eq = match.indexOf('=');
  const key = eq < 0 ? match : match.slice(0, eq);
  const value = eq < 0 ? undefined : match.slice(eq + 1);
  if (!isLabelKey(key) || (value !== undefined && !isLabelValue(value)) || (effect !== undefined && !(EFFECTS as readonly string[]).includes(effect))) {
    throw new ConfigError(`--toleration ${text} is not a toleration.`, {
      hint: `Write key=value:Effect, key:Effect, key or * (every taint); Effect is one of ${EFFECTS.join(', ')}. E.g. --toleration nvidia.com/gpu:NoSchedule.`,
    });
  }
  return { key, operator: value === undefined ? 'Exists' : 'Equal', ...(value === undefined ? {} : { value }), ...(effect ? { effect } : {}) };
}

/** --pause-image, else METAFLOW_PREBUILT_PAUSE_IMAGE, else {@link DEFAULT_PAUSE_IMAGE}. */
export function pauseImage(option: string | undefined, env: Record<string, string | undefined>): string {
  const image = option?.trim() || env[PAUSE_IMAGE_SETTING]?.trim() || DEFAULT_PAUSE_IMAGE;
  try {
    parseImageRef(image);
  } catch (error) {
    throw new ConfigError(`The pause image '${image}' (--pause-image or ${PAUSE_IMAGE_SETTING}) is not an image reference: ${errorMessage(error)}`, {
      setting: PAUSE_IMAGE_SETTING,
      hint: `Give a reference such as ${DEFAULT_PAUSE_IMAGE} (a mirror of it for clusters without access to registry.k8s.io).`,
    });
  }
  return image;
}
