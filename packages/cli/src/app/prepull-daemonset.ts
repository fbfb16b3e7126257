/**
 * A DaemonSet of `prebuilt prepull`: one per placement of a flow's steps, whose pods pull those
 * steps' images on each matching node through init containers, then hold the node's place with a pause container.
 */
import type { V1Container, V1DaemonSet, V1Toleration } from '@kubernetes/client-node';
import { canonicalJson, sha256Hex } from '@prebuilt/core';
import type { PrepullImage } from './prepull-images.js';

export const MANAGED_BY = { 'app.kubernetes.io/managed-by': 'prebuilt' } as const;
/** Annotation: the hash of everything prebuilt sets, so a run with the same images and options changes nothing. */
export const SPEC_HASH_ANNOTATION = 'prebuilt.dev/prepull-hash';
export const FLOW_ANNOTATION = 'prebuilt.dev/flow';
/** Annotation: the pinned images (with their digests) the pods pull, as a JSON list. */
export const IMAGES_ANNOTATION = 'prebuilt.dev/images';

export interface PrepullSpec {
  flow: string;
  /** The DaemonSet's name ({@link prepullName}). */
  name: string;
  namespace: string;
  images: readonly PrepullImage[];
  pullSecrets: readonly string[];
  nodeSelector: Record<string, string>;
  tolerations: readonly V1Toleration[];
  pauseImage: string;
}

/**
 * `prebuilt-prepull-<flow>-<hash>`: the flow's class name in kebab case (`TrainFlow` →
 * `train-flow`, cut to fit), and 6 hex digits of the name itself — with the placement's key when
 * the steps are placed (a node selector, tolerations, GPUs) — so two flows whose names fold to the
 * same label, or two placements of one flow, never share a DaemonSet. Stable: the same flow and
 * placement always get the same name (steps placed anywhere: the name of one DaemonSet per flow). ≤ 63 characters.
 */
export function prepullName(flow: string, placementKey?: string): string {
  const kebab = flow.replace(/([a-z0-9])([A-Z])/g, '$1-$2').toLowerCase().replace(/[^a-z0-9]+/g, '-').slice(0, 38).replace(/^-+|-+$/g, '');
  return `prebuilt-prepull-${kebab || 'flow'}-${sha256Hex(placementKey === undefined ? flow : `${flow}\n${placementKey}`).slice(0, 6)}`;
}

/** The labels of the DaemonSet and its pods; `selector` is also the pods' selector (which Kubernetes never lets change). */
/** Labels as a Kubernetes label selector (and as the command prints a node selector): `k=v,k2=v2`. */
export function labelSelector(labels: Record<string, string>): string {
  return Object.entries(labels).map(([key, value]) => `${key}=${value}`).join(',');
}

export function prepullLabels(name: string): { selector: Record<string, string>; labels: Record<string, string> } {
  const selector = { 'app.kubernetes.io/name': 'prebuilt-prepull', 'app.kubernetes.io/instance': name };
  return { selector, labels: { ...selector, ...MANAGED_BY } };
}

/** No privileges: the containers run one no-op each and write nothing (PodSecurity `restricted` admits them). */
const CONTAINER_SECURITY = { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } };

/**
 * An init container per image: it runs the step's own interpreter with nothing to do
 * (`python -I -S -c ''`: isolated, no site packages, no file written). The kubelet has to pull the
 * image to start it; the interpreter is the one file every env image has by construction (the
 * runner starts the step with it), so this needs no shell or coreutils in the image, and a node
 * that cannot run the image (another CPU architecture) fails here, as the step's task would.
 */
function pullContainer(image: PrepullImage): V1Container {
  return {
    name: image.container,
    image: image.image,
    imagePullPolicy: 'IfNotPresent',
    command: [image.python, '-I', '-S', '-c', ''],
    resources: { requests: { cpu: '10m', memory: '32Mi' }, limits: { cpu: '200m', memory: '128Mi' } },
    securityContext: CONTAINER_SECURITY,
  };
}

/** The DaemonSet for `spec`, its name, and the hash of what it asks for (also in its {@link SPEC_HASH_ANNOTATION}). */
export function prepullDaemonSet(spec: PrepullSpec): { daemonSet: V1DaemonSet; name: string; hash: string } {
  const name = spec.name;
  const { selector, labels } = prepullLabels(name);
  const template: V1DaemonSet['spec'] = {
    selector: { matchLabels: selector },
    // The pods serve nothing: replacing all of them at once lets every node pull in parallel.
    updateStrategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: '100%' } },
    template: {
      metadata: { labels, annotations: { [FLOW_ANNOTATION]: spec.flow } },
      spec: {
        initContainers: spec.images.map(pullContainer),
        containers: [
          {
            name: 'pause',
            image: spec.pauseImage,
            imagePullPolicy: 'IfNotPresent',
            resources: { requests: { cpu: '1m', memory: '8Mi' }, limits: { cpu: '10m', memory: '16Mi' } },
            securityContext: CONTAINER_SECURITY,
          },
        ],
        ...(spec.pullSecrets.length > 0 ? { imagePullSecrets: spec.pullSecrets.map((secret) => ({ name: secret })) } : {}),
        ...(Object.keys(spec.nodeSelector).length > 0 ? { nodeSelector: spec.nodeSelector } : {}),
        ...(spec.tolerations.length > 0 ? { tolerations: [...spec.tolerations] } : {}),
        securityContext: { runAsNonRoot: true, runAsUser: 65534, runAsGroup: 65534, seccompProfile: { type: 'RuntimeDefault' } },
        automountServiceAccountToken: false,
        enableServiceLinks: false,
        terminationGracePeriodSeconds: 1,
      },
    },
  };
  const hash = sha256Hex(canonicalJson(JSON.parse(JSON.stringify(template))));
  const daemonSet: V1DaemonSet = {
    apiVersion: 'apps/v1',
    kind: 'DaemonSet',
    metadata: {
      name,
      namespace: spec.namespace,
      labels,
      annotations: { [FLOW_ANNOTATION]: spec.flow, [SPEC_HASH_ANNOTATION]: hash, [IMAGES_ANNOTATION]: JSON.stringify(spec.images.map((image) => image.image)) },
    },
    spec: template,
  };
  return { daemonSet, name, hash };
}
