import { Device } from './device/device.js';
import { setDevice } from './runtime.js';

/** Creates the device from `navigator.gpu` and makes it current. */
export async function initBrowser(options: { powerPreference?: GPUPowerPreference } = {}): Promise<Device> {
  const gpu = (globalThis as { navigator?: { gpu?: GPU } }).navigator?.gpu;
  const device = await Device.fromGPU(gpu, options);
  setDevice(device);
  return device;
}
