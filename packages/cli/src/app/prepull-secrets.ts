/** Whether the pull secrets the prepull pods name exist: a missing one makes the kubelet pull without it. */
import type { CoreV1Api } from '@kubernetes/client-node';
import { kubernetesStatus } from './kubernetes.js';

/**
 * The names among `secrets` that the namespace does not have (404). A secret that cannot be read
 * (no permission to get secrets, say) counts as present: this is a warning, not a check.
 */
export async function missingPullSecrets(core: CoreV1Api, namespace: string, secrets: readonly string[]): Promise<string[]> {
  const missing: string[] = [];
  for (const name of secrets) {
    try {
      await core.readNamespacedSecret({ name, namespace });
    } catch (error) {
      if (kubernetesStatus(error) === 404) missing.push(name);
    }
  }
  return missing;
}
