/**
 * @sharelora/core: WebGPU tensors with autograd. This entry is platform-neutral (browser and Node);
 * `@sharelora/core/node` adds Dawn device creation and file I/O.
 */
export { backward } from './autograd.js';
export { Device, type DeviceInfo } from './device/device.js';
export { MEMORY_CATEGORIES, type MemoryCategory, type MemoryReport } from './device/memory.js';
export {
  chromeTrace,
  formatProfile,
  kernelKind,
  type OpProfile,
  type ProfileReport,
  type TraceEvent,
  type TransferKind,
  type TransferProfile,
} from './device/profiler.js';
export { type DType, type FloatDType, type HalfDType, isHalf } from './dtype.js';
export * from './errors.js';
export {
  bf16BitsToF32,
  decodeBF16,
  decodeF16,
  encodeBF16,
  encodeF16,
  f16BitsToF32,
  f32ToBf16Bits,
  f32ToF16Bits,
} from './float-codecs.js';
export { formatBytes } from './format.js';
export { initBrowser } from './init-browser.js';
/**
 * Kernels of the single-token decoder (matrix-vector products, rotary and cache writes, cache
 * attention, sampling) and the program that runs a step of them; models' LLaMA decoder uses them.
 */
export * as decode from './kernels/decode/index.js';
export { matmulPath } from './kernels/matmul/run-texture.js';
export * from './nn/index.js';
export * from './ops/index.js';
export * from './optim/index.js';
export * from './quant/index.js';
export { record } from './record.js';
export * from './rng.js';
export { getDevice, hasDevice, isGradEnabled, keep, noGrad, setDevice, tidy } from './runtime.js';
export * from './safetensors/index.js';
export { type SelfCheckResult, selfCheck } from './selfcheck.js';
export { numel, type Shape } from './shape.js';
export { Tensor } from './tensor.js';
