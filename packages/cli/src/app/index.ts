/**
 * The CLI's application layer: what a command does, without rendering it. Commands (and the
 * Metaflow extension's entry, `prebuilt metaflow build`) call these; they parse options before and
 * render the result after. Nothing here prints.
 */
export type { AppScope } from './app-scope.js';
export { checkSelectedBackends, createSelectedBackend, type BackendCheck, type SelectedBackend } from './backends.js';
export { imagesWithSboms, pushBuildSboms, sbomJson, sbomsEnabled } from './build-sboms.js';
export { buildFlow, buildFailure, type BuildFlowOptions, type BuildFlowResult } from './build-flow.js';
export { deployFlow, type DeployFlowOptions, type DeployFlowResult } from './deploy-flow.js';
export { DEFAULT_BASE_IMAGE, deploySettings, type DeploySettings } from './deploy-settings.js';
export { runWithImages, type RunWithImagesHooks, type RunWithImagesResult } from './run-flow.js';
export { lockFlow, type LockFlowOptions, type LockFlowResult } from './lock-flow.js';
export { directUrlNotes, directUrlWheels, flowDirectUrlWheels, lockedEnvs, type DirectUrlWheel, type FlowDirectUrlWheel, type FlowLockEnv } from './direct-url-wheels.js';
export { checkStateFileSetting, readImageMap, stateFilePath, writeImageMap } from './state-file.js';
export { fileArgument, shellWord, shownPath } from './shown-path.js';
export { missingStepsError } from './image-map-checks.js';
export { createOrReplace, kubernetesError, kubernetesStatus, loadKubeConfig, loadKubernetesClient, type K8s } from './kubernetes.js';
export { garbageCollect, parseMinAge, type GcOptions, type GcProgress, type GcResult } from './gc-run.js';
export { keepFromFlows, keepFromImageMaps } from './gc-keep-sources.js';
export { ARGO_RESOURCES, keepFromKubernetes, type KubernetesKeepOptions } from './gc-kubernetes.js';
export { checkNamespace, isObjectName } from './kubernetes-names.js';
export {
  PULL_SECRET_TYPE,
  applyPullSecret,
  checkSecretTarget,
  dockerConfigJson,
  podPullHost,
  type AppliedPullSecret,
  type ApplyPullSecretOptions,
} from './pull-secret.js';
export { planPrepull, prepullFlow, removePrepull, type PlannedDaemonSet, type PrepullPlan, type PrepullPlanOptions, type PrepullDaemonSet, type PrepullFlowOptions, type PrepullProgress, type PrepullResult, type RemovePrepullResult } from './prepull.js';
export { DEFAULT_PAUSE_IMAGE, PAUSE_IMAGE_SETTING, parseNodeSelector, parseToleration, pauseImage } from './prepull-options.js';
export { labelSelector } from './prepull-daemonset.js';
export type { PrepullImage } from './prepull-images.js';
export { POD_MESSAGE_MAX, type PodProblem } from './prepull-pods.js';
export type { PrepullNodes } from './prepull-wait.js';
export { DEFAULT_PROFILE_MAX_PATHS, DEFAULT_PROFILE_TIMEOUT_MS, PROFILE_MAX_OUTPUT_BYTES, ProfileRunError, profileFlow, type ProfileEnv, type ProfileFlowOptions, type ProfileFlowResult, type ProfileProgress, type ProfileStep } from './profile-flow.js';
export { LAYER_COMPRESSION_SETTING, PREFETCH_SETTING, prefetchProfileOf, profileFilePath, profileUnusedBy, withPrefetchProfile, type PrefetchProfile } from './prefetch-profile.js';
