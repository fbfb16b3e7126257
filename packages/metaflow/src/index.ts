export {
  readFlow,
  checkFlowFile,
  READ_FLOW_SCRIPT,
  type FlowFile,
  type FlowStep,
  type FlowImport,
  type EnvDecorator,
  type EnvDecoratorName,
  type RemoteDecorator,
  type RemoteDecoratorName,
  type PlacementArg,
  type ReadFlowOptions,
} from './read-flow.js';
export { taskImports, importStatement, importCode } from './task-imports.js';
export { hostPython, runPythonScript, type HostPythonOptions } from './host-python.js';
export { mergeStepEnv, mergeFlowEnvs, stepGpus, type StepEnv } from './merge.js';
export {
  flowEnvs,
  flowEnvsJson,
  defaultPython,
  type FlowEnvs,
  type FlowEnvsJson,
  type FlowEnvsOptions,
  type StepEnvWithRequest,
} from './flow-envs.js';
export {
  metaflowPins,
  metaflowDatastore,
  metaflowSetting,
  type MetaflowPins,
  type MetaflowPinsOptions,
  type MetaflowDatastore,
} from './pins.js';
export {
  remoteSteps,
  commandLineGpuSteps,
  givenDatastore,
  commandLineDecospecs,
  stepRemote,
  metaflowCommand,
  startsRemoteSteps,
  metaflowCommandText,
  givenEnvironment,
  metaflowArgs,
  checkRemoteFlowFileName,
  SCHEDULERS,
  type RemoteSelection,
  type RemoteReason,
  type StepRemote,
} from './run-steps.js';
export { parseDecospec, unknownDecospecAttributes, attachedDecospecs, firstDecospecs, DECORATOR_ATTRIBUTES, type Decospec, type SourcedDecospec } from './decospec.js';
export { runFlow, type RunFlowOptions, type RunFlowResult } from './run-flow.js';
export { EXTENSION_PYTHONPATH, EXTENSION_DIR, IMAGE_MAP_ENV, extensionFiles, extensionEnv } from './extension-files.js';
export {
  installExtension,
  uninstallExtension,
  extensionStatus,
  installedExtension,
  type InstalledExtension,
  pythonSite,
  MANIFEST_NAME,
  type InstallManifest,
  type InstallResult,
  type ExtensionStatus,
  type ExtensionOptions,
  type PythonSite,
} from './extension-install.js';
