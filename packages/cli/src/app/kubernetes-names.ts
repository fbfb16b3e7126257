/** Checks of the Kubernetes names and labels a command takes from the user, before anything is sent. */
import { ConfigError } from '@prebuilt/core';

/** An object name (a DNS subdomain: secrets, DaemonSets). */
const OBJECT_NAME = /^[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?$/;
const NAMESPACE = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
/** A label name (or the name part of a prefixed key): ≤ 63 characters, alphanumerics at both ends. */
const LABEL_NAME = /^[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$/;
/** A DNS subdomain: the optional prefix of a label key (`kubernetes.io/arch`). */
const DNS_SUBDOMAIN = /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*$/;

/** @throws ConfigError (exit 2) when `namespace` (given with `option`) is not a namespace name (a DNS label). */
export function checkNamespace(namespace: string, option = '--namespace'): void {
  if (!NAMESPACE.test(namespace)) throw new ConfigError(`'${namespace}' is not a Kubernetes namespace name.`, { hint: `Pass ${option} with a DNS label, e.g. metaflow.` });
}

/** Whether `name` is a Kubernetes object name (lowercase letters, digits, - and ., ≤ 253 characters). */
export function isObjectName(name: string): boolean {
  return OBJECT_NAME.test(name);
}

/** Whether `key` is a label key: `name` or `prefix/name`. */
export function isLabelKey(key: string): boolean {
  const slash = key.lastIndexOf('/');
  if (slash < 0) return LABEL_NAME.test(key);
  return DNS_SUBDOMAIN.test(key.slice(0, slash)) && LABEL_NAME.test(key.slice(slash + 1));
}

/** Whether `value` is a label value (empty, or ≤ 63 characters with alphanumerics at both ends). */
export function isLabelValue(value: string): boolean {
  return value === '' || LABEL_NAME.test(value);
}
