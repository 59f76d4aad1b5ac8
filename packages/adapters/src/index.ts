/**
 * @sharelora/adapters: LoRA and ShareLoRA adapters for any @sharelora/core module tree: config and
 * presets, parameter counting from shapes, injection, merge/unmerge, several adapters per model, and
 * PEFT's format in memory. This entry is platform-neutral; `@sharelora/adapters/node` adds
 * saveAdapter/loadAdapter for adapter directories.
 */
export {
  type AdapterConfig,
  type AdapterConfigInput,
  adapterConfig,
  METHODS,
  type Method,
  methodOf,
  PRESETS,
  presetConfig,
  RECOMMENDED,
  type SharingGroup,
  type SharingSpec,
  scalingFactor,
  TASK_TYPES,
  type TaskType,
} from './config.js';
export { type CrossTypeMatrix, countParameters, type ModuleTypeCount, type ParameterCount } from './count.js';
export { AdapterError, type AdapterErrorCode } from './errors.js';
export {
  ChildDict,
  cloneModule,
  type LoraBranch,
  LoraLinear,
  type LoraSlot,
  ModulesToSaveWrapper,
} from './layers.js';
export {
  type AdapterInfo,
  adapterParameters,
  DEFAULT_FUSED,
  deleteAdapter,
  disableAdapters,
  getAdapter,
  type InjectedAdapter,
  type InjectOptions,
  injectAdapter,
  linearModules,
  listAdapters,
  mergeAdapter,
  mergeAndUnload,
  setActiveAdapter,
  trainableParameters,
  unmergeAdapter,
} from './model.js';
export {
  type AdapterTensorSource,
  adapterGradients,
  configFromPeft,
  exportAdapter,
  importAdapter,
  PEFT_PREFIX,
  type PeftAdapterFiles,
  SHARELORA_FORMAT_VERSION,
} from './peft.js';
export { type AdapterPlan, type AdapterSite, type MatrixGroup, planAdapter } from './plan.js';
export {
  DEFAULT_TARGETS,
  type LinearModuleInfo,
  matchesSuffix,
  parseModuleName,
  patternValue,
  resolveTargets,
  selectTargets,
  TARGET_ALIASES,
  type TargetSelection,
  targetAliasesOf,
} from './targets.js';
