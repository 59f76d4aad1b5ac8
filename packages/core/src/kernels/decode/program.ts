import type { Device } from '../../device/device.js';
import { DeviceError } from '../../errors.js';
import { TEX_WIDTH } from '../matmul/texture.js';

/**
 * One dispatch of a decode step: its kernel and what it binds, in binding order: whole buffers, or
 * weight textures (see uploadWeightTexture).
 */
export interface DecodeDispatch {
  key: string;
  wgsl: string;
  buffers: readonly (GPUBuffer | GPUTexture)[];
  workgroups: readonly [number, number, number];
}

const isTexture = (r: GPUBuffer | GPUTexture): r is GPUTexture => 'createView' in r;

/**
 * Uploads f32 values into a read-only storage texture (rgba32float, TEX_WIDTH texels per row, the
 * values in order, zero after the last), counted as weights until `release`. Kernels read element
 * i with WeightRef.texture; the device must have readable storage textures.
 */
export function uploadWeightTexture(
  dev: Device,
  values: Float32Array,
): { texture: GPUTexture; release(): void } {
  const rows = Math.max(1, Math.ceil(values.length / 4 / TEX_WIDTH));
  const padded = new Float32Array(rows * TEX_WIDTH * 4);
  padded.set(values);
  const texture = dev.gpu.createTexture({
    size: [TEX_WIDTH, rows],
    format: 'rgba32float',
    usage: 0x8 /* STORAGE_BINDING */ | 0x2 /* COPY_DST */,
    label: 'decode-weights',
  });
  dev.gpu.queue.writeTexture({ texture }, padded, { bytesPerRow: TEX_WIDTH * 16, rowsPerImage: rows }, [
    TEX_WIDTH,
    rows,
  ]);
  dev.memory.add('weights', padded.byteLength);
  let released = false;
  return {
    texture,
    release() {
      if (released) return;
      released = true;
      dev.flush();
      texture.destroy();
      dev.memory.remove('weights', padded.byteLength);
    },
  };
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
        entries: d.buffers.map((r, binding) => ({
          binding,
          resource: isTexture(r) ? r.createView() : { buffer: r },
        })),
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
