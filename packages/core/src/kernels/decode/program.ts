import type { Device } from '../../device/device.js';
import { DeviceError } from '../../errors.js';

/** One dispatch of a decode step: its kernel and the whole buffers it binds, in binding order. */
export interface DecodeDispatch {
  key: string;
  wgsl: string;
  buffers: readonly GPUBuffer[];
  workgroups: readonly [number, number, number];
}

const pipelines = new WeakMap<Device, Map<string, GPUComputePipeline>>();

function pipeline(dev: Device, key: string, wgsl: string): GPUComputePipeline {
  let byKey = pipelines.get(dev);
  if (!byKey) {
    byKey = new Map();
    pipelines.set(dev, byKey);
  }
  let p = byKey.get(key);
  if (!p) {
    const module = dev.gpu.createShaderModule({ code: wgsl, label: key });
    p = dev.gpu.createComputePipeline({
      layout: 'auto',
      compute: { module, entryPoint: 'main' },
      label: key,
    });
    byKey.set(key, p);
  }
  return p;
}

/**
 * A decode step prepared once: pipelines and bind groups over fixed buffers, so that encoding a step
 * is a few calls per dispatch and any number of steps go to the GPU in one command buffer. Everything
 * a step depends on (token, position) lives in GPU buffers the step itself updates.
 */
export class DecodeProgram {
  private readonly steps: Array<{ pipeline: GPUComputePipeline; group: GPUBindGroup; wg: readonly number[] }>;

  constructor(
    private readonly dev: Device,
    dispatches: readonly DecodeDispatch[],
  ) {
    this.steps = dispatches.map((d) => {
      const p = pipeline(dev, d.key, d.wgsl);
      const group = dev.gpu.createBindGroup({
        layout: p.getBindGroupLayout(0),
        entries: d.buffers.map((buffer, binding) => ({ binding, resource: { buffer } })),
      });
      return { pipeline: p, group, wg: d.workgroups };
    });
    dev.throwPendingError();
  }

  /** Dispatches per step. */
  get dispatches(): number {
    return this.steps.length;
  }

  /**
   * Records `count` steps, then `after` (copies of results), and submits them after the device's own
   * pending work.
   */
  submit(count: number, after?: (encoder: GPUCommandEncoder) => void): void {
    if (this.dev.isDestroyed) throw new DeviceError('DEVICE_LOST', 'the device was destroyed');
    this.dev.flush();
    const encoder = this.dev.gpu.createCommandEncoder();
    const pass = encoder.beginComputePass();
    for (let i = 0; i < count; i++) {
      for (const s of this.steps) {
        pass.setPipeline(s.pipeline);
        pass.setBindGroup(0, s.group);
        pass.dispatchWorkgroups(s.wg[0], s.wg[1], s.wg[2]);
      }
    }
    pass.end();
    after?.(encoder);
    this.dev.gpu.queue.submit([encoder.finish()]);
    this.dev.stats.dispatches += count * this.steps.length;
    this.dev.stats.submits++;
  }
}
