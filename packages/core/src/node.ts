/** Node entry: everything in the platform-neutral entry plus Dawn-backed init() and file I/O. */
import { quietDawnStart } from './device/dawn-stderr.js';
import { waitWithoutSpinning } from './device/dawn-wait.js';
import { Device } from './device/device.js';
import { separateShaderCacheByVectorWidth } from './device/shader-cache.js';
import { NoAdapterError } from './errors.js';
import { getDevice, hasDevice, setDevice } from './runtime.js';

export { writeFileAtomic } from './atomic-file.js';
export * from './index.js';
export {
  DEFAULT_MAX_INPUT_BYTES,
  InputFileError,
  type InputFileErrorCode,
  type ReadInputOptions,
  readInputFile,
} from './input-file.js';
export { SafetensorsReader, writeSafetensors } from './safetensors/node-file.js';

let dawn: { gpu: GPU } | null = null;

/**
 * Creates a WebGPU device through Dawn (npm `webgpu`) and makes it current. Idempotent: returns the
 * current device if one exists. Call shutdown() when done so the process can exit. `dawnFlags`
 * (Dawn instance toggles) take effect on the first call in a process only.
 */
export async function init(
  options: { powerPreference?: GPUPowerPreference; dawnFlags?: string[] } = {},
): Promise<Device> {
  if (hasDevice()) return getDevice();
  process.env.XDG_RUNTIME_DIR ??= '/tmp';
  separateShaderCacheByVectorWidth();
  let mod: { create: (flags: string[]) => GPU; globals: Record<string, unknown> };
  try {
    mod = (await import('webgpu')) as unknown as typeof mod;
  } catch (e) {
    throw new NoAdapterError(`the npm package "webgpu" could not be loaded: ${(e as Error).message}`);
  }
  Object.assign(globalThis, mod.globals);
  // One Dawn instance per process: creating a second one after the first is released crashes Dawn,
  // while a kept instance does not hold the process open once its devices are destroyed.
  const device = await quietDawnStart(() => {
    dawn ??= { gpu: mod.create(options.dawnFlags ?? []) };
    return Device.fromGPU(dawn.gpu, options);
  });
  device.waitFor = waitWithoutSpinning;
  setDevice(device);
  return device;
}

/** Destroys the current device so Node can exit; init() may be called again afterwards. */
export function shutdown(): void {
  if (hasDevice()) getDevice().destroy();
  setDevice(null);
}
