import { DeviceError, NoAdapterError } from '../errors.js';
import { BindGroupCache } from './bind-groups.js';
import { MemoryAccount, type MemoryReport } from './memory.js';
import { BufferPool } from './pool.js';
import { type ProfileReport, Profiler, type TransferKind } from './profiler.js';

/** Features we use when the adapter offers them. */
const WANTED_FEATURES = ['shader-f16', 'subgroups', 'timestamp-query'] as const;
/** Limits we raise to the adapter's maximum (WebGPU's defaults are far below what GPUs offer). */
const WANTED_LIMITS = [
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY',
  'maxComputeWorkgroupSizeZ',
  'maxComputeWorkgroupsPerDimension',
  'maxStorageBuffersPerShaderStage',
  'maxTextureDimension2D',
] as const;

/** Dispatches are recorded into one command encoder and submitted together: per-submit overhead dominates small ops. */
const MAX_DISPATCHES_PER_SUBMIT = 512;
/**
 * Dispatches in the first submit after the host waited for the GPU (which is then idle); each later
 * submit may hold twice as many as the one before, up to MAX_DISPATCHES_PER_SUBMIT. Encoding a
 * stories260K step's forward pass (125 dispatches) takes the host about 8 ms on lavapipe, which the
 * GPU spent idle when the whole pass went in one submit; with this it starts after 16 dispatches,
 * and a step takes 5 or 6 submits instead of 2.
 */
const FIRST_SUBMIT_DISPATCHES = 16;
const UNIFORM_SLOT = 256;

/**
 * What {@link Device.fromGPU} found: the adapter's identity, the features and limits the device was
 * created with, and capabilities kernels choose their variants by (`sharelora doctor` prints it).
 */
export interface DeviceInfo {
  /** Adapter identity as WebGPU's GPUAdapterInfo reports it; browsers may leave these empty. */
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  /** The backend's name where the implementation exposes it (Dawn: 'vulkan', 'metal', 'd3d12', ...), else 'webgpu'. */
  backend: string;
  /**
   * A CPU implementation (SwiftShader, llvmpipe/lavapipe, WARP, or a fallback adapter): matmuls may
   * then pack operands into textures, which pays off on CPUs.
   */
  isSoftware: boolean;
  /** The optional features requested because the adapter had them: of 'shader-f16', 'subgroups', 'timestamp-query'. */
  features: string[];
  /** The raised limits (each the adapter's maximum) and minStorageBufferOffsetAlignment. */
  limits: Record<string, number>;
  /** Smallest subgroup size, when the device has the 'subgroups' feature (kernels that share loads across lanes need it). */
  subgroupMinSize?: number;
  /** WGSL can read storage textures (the 'readonly_and_readwrite_storage_textures' language feature). */
  readableStorageTextures: boolean;
}

export interface DispatchSpec {
  /** Pipeline cache key: must change whenever the WGSL source would. */
  key: string;
  /** WGSL source, only called on a cache miss. */
  wgsl: () => string;
  /** Buffers bound at @binding(0..n-1), in order. The uniform block (if any) is bound after them. */
  buffers: GPUBufferBinding[];
  /** Explicit binding numbers for `buffers` and the uniform block, when the shader's layout is not sequential. */
  layout?: { buffers: readonly number[]; uniforms: number };
  uniforms?: ArrayBuffer;
  /** Storage textures to bind, by binding number (see storageTexture). */
  textures?: ReadonlyArray<{ binding: number; texture: GPUTexture }>;
  workgroups: readonly [number, number, number];
}

/** Bytes per texel of a scratch texture: 4 for r32uint, 8 for rg32uint, 16 for the four-channel formats. */
const texelBytes = (t: GPUTexture): number => (t.format === 'r32uint' ? 4 : t.format === 'rg32uint' ? 8 : 16);

/**
 * A WebGPU device and the runtime every op dispatches through: pipeline cache, command batching
 * (up to 512 dispatches per submit), buffer pool, memory accounting and profiling. Create one with
 * `init()` (from `@sharelora/core/node`) or {@link initBrowser}, which also make it current; ops find
 * it with {@link getDevice}. {@link Device.fromGPU} creates one without making it current.
 *
 * Ops only record work: it reaches the GPU on {@link Device.flush}, and {@link Device.sync} or a read
 * waits for it. WebGPU reports errors asynchronously; they are thrown as {@link DeviceError} from the
 * next sync or read. Once the device is lost or destroyed ({@link Device.destroy}), every use
 * throws `DEVICE_LOST`.
 */
export class Device {
  /** Live and peak bytes by category; {@link Device.memoryReport} reads it with the pool's figures. */
  readonly memory = new MemoryAccount();
  /** Size-bucketed GPU buffers: those a training step frees are reused by the next instead of recreated. */
  readonly pool: BufferPool;
  /** The features the device was created with (see {@link DeviceInfo}). */
  readonly features: ReadonlySet<string>;
  /** The device's limits: the adapter's maxima for the ones sharelora raises. */
  readonly limits: GPUSupportedLimits;
  /** Set once the device is lost or destroyed; every later use throws. */
  lostReason: string | null = null;
  private readonly pipelines = new Map<string, GPUComputePipeline>();
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private dispatches = 0;
  /** Dispatches the batch being recorded is submitted at (see FIRST_SUBMIT_DISPATCHES). */
  private submitAt = FIRST_SUBMIT_DISPATCHES;
  private uniformArena = new Uint8Array(UNIFORM_SLOT * MAX_DISPATCHES_PER_SUBMIT);
  private uniformUsed = 0;
  private uniformBuffer: GPUBuffer;
  private pendingError: DeviceError | null = null;
  private destroyed = false;
  private profiler: Profiler | null = null;
  private readonly textures = new Map<string, GPUTexture>();
  private readonly bindGroups: BindGroupCache;
  /** Total dispatches, submits, pipelines and bind groups created since creation (for benchmarks and tests). */
  stats = { dispatches: 0, submits: 0, pipelines: 0, bindGroups: 0 };
  /**
   * How sync() and read() wait for a WebGPU promise. The Node entry replaces it (see dawn-wait.ts:
   * dawn.node spins a core while a promise is pending); browsers need nothing.
   */
  waitFor: <T>(p: Promise<T>) => Promise<T> = (p) => p;

  private constructor(
    readonly gpu: GPUDevice,
    readonly info: DeviceInfo,
  ) {
    this.features = new Set(gpu.features as unknown as Iterable<string>);
    this.limits = gpu.limits;
    this.pool = new BufferPool(gpu);
    this.bindGroups = new BindGroupCache(gpu);
    this.uniformBuffer = gpu.createBuffer({ size: this.uniformArena.byteLength, usage: 0x40 | 0x8 });
    gpu.addEventListener('uncapturederror', (ev) => {
      const err = (ev as GPUUncapturedErrorEvent).error;
      const oom = err.constructor?.name === 'GPUOutOfMemoryError' || /out of memory/i.test(err.message);
      this.pendingError ??= new DeviceError(
        oom ? 'GPU_OOM' : 'GPU_VALIDATION',
        `WebGPU error: ${err.message}`,
      );
    });
    void gpu.lost.then((info) => {
      if (!this.destroyed) this.lostReason = `${info.reason}: ${info.message}`;
    });
  }

  /** Requests an adapter from `gpu` (navigator.gpu or Dawn's), with its full limits and useful features. */
  static async fromGPU(
    gpu: GPU | undefined,
    options: { powerPreference?: GPUPowerPreference } = {},
  ): Promise<Device> {
    if (!gpu) throw new NoAdapterError('WebGPU is not available in this environment');
    const adapter = await gpu.requestAdapter({
      powerPreference: options.powerPreference ?? 'high-performance',
    });
    if (!adapter) throw new NoAdapterError('requestAdapter() returned null');
    const requiredFeatures = WANTED_FEATURES.filter((f) => adapter.features.has(f)) as GPUFeatureName[];
    const requiredLimits: Record<string, number> = {};
    for (const name of WANTED_LIMITS) {
      const v = (adapter.limits as unknown as Record<string, number>)[name];
      if (typeof v === 'number') requiredLimits[name] = v;
    }
    let gpuDevice: GPUDevice;
    try {
      gpuDevice = await adapter.requestDevice({ requiredFeatures, requiredLimits });
    } catch (e) {
      throw new NoAdapterError(`requestDevice failed: ${(e as Error).message}`);
    }
    const ai = adapter.info;
    const limits: Record<string, number> = {};
    for (const name of WANTED_LIMITS)
      limits[name] = (gpuDevice.limits as unknown as Record<string, number>)[name];
    limits.minStorageBufferOffsetAlignment = gpuDevice.limits.minStorageBufferOffsetAlignment;
    const info: DeviceInfo = {
      vendor: ai?.vendor ?? '',
      architecture: ai?.architecture ?? '',
      device: ai?.device ?? '',
      description: ai?.description ?? '',
      backend: (ai as unknown as { backendType?: string })?.backendType ?? 'webgpu',
      isSoftware:
        /swiftshader|llvmpipe|lavapipe|software|warp/i.test(
          `${ai?.architecture} ${ai?.description} ${ai?.device}`,
        ) || (ai as unknown as { isFallbackAdapter?: boolean })?.isFallbackAdapter === true,
      features: [...requiredFeatures],
      limits,
      subgroupMinSize: requiredFeatures.includes('subgroups' as GPUFeatureName)
        ? (ai as unknown as { subgroupMinSize?: number })?.subgroupMinSize
        : undefined,
      readableStorageTextures:
        gpu.wgslLanguageFeatures?.has('readonly_and_readwrite_storage_textures') ?? false,
    };
    return new Device(gpuDevice, info);
  }

  private bindingLimitOverride: number | null = null;

  /** Largest range of a buffer one binding may cover; bigger tensors are processed in windows. */
  get maxBindingBytes(): number {
    return this.bindingLimitOverride ?? this.limits.maxStorageBufferBindingSize;
  }

  /**
   * Makes kernels that choose between subgroup and portable variants pick the portable one, so
   * tests on a subgroup-capable adapter also check the code adapters without subgroups run.
   */
  subgroupsDisabledForTesting = false;

  /**
   * Whether matmuls may pack their operands into textures (see kernels/matmul/texture.ts): 'auto'
   * on CPU adapters for products large enough to pay for the packing; 'always' and 'never' let
   * tests and benchmarks pick a path.
   */
  matmulTextures: 'auto' | 'always' | 'never' = 'auto';

  /** Lowers the binding limit so tests can exercise the windowed (large-tensor) paths with small tensors. */
  setBindingLimitForTesting(bytes: number | null): void {
    this.bindingLimitOverride = bytes;
  }

  private check(): void {
    if (this.destroyed) throw new DeviceError('DEVICE_LOST', 'the device was destroyed');
    if (this.lostReason)
      throw new DeviceError(
        'DEVICE_LOST',
        `the GPU device was lost (${this.lostReason}); re-create it with init()`,
      );
  }

  /** Throws the first WebGPU error reported since the last call (errors arrive asynchronously). */
  throwPendingError(): void {
    const e = this.pendingError;
    if (e) {
      this.pendingError = null;
      throw e;
    }
  }

  private pipeline(specKey: string, wgsl: () => string): GPUComputePipeline {
    // Kernels generate different WGSL while subgroups are disabled for a test: cache those apart.
    const key = this.subgroupsDisabledForTesting ? `portable|${specKey}` : specKey;
    let p = this.pipelines.get(key);
    if (!p) {
      const module = this.gpu.createShaderModule({ code: wgsl(), label: key });
      p = this.gpu.createComputePipeline({
        layout: 'auto',
        compute: { module, entryPoint: 'main' },
        label: key,
      });
      this.pipelines.set(key, p);
      this.stats.pipelines++;
    }
    return p;
  }

  /**
   * Records one compute dispatch in the current batch (the kernels' entry point; ops call it through
   * their kernel helpers). Throws {@link DeviceError} `LIMIT` when the grid or an operand exceeds the
   * adapter's limits.
   */
  dispatch(spec: DispatchSpec): void {
    this.check();
    const started = this.profiler ? performance.now() : 0;
    const [x, y, z] = spec.workgroups;
    if (x === 0 || y === 0 || z === 0) return;
    const maxWg = this.limits.maxComputeWorkgroupsPerDimension;
    if (x > maxWg || y > maxWg || z > maxWg) {
      throw new DeviceError(
        'LIMIT',
        `${spec.key}: dispatch [${x},${y},${z}] exceeds ${maxWg} workgroups per dimension`,
      );
    }
    for (const b of spec.buffers) {
      const size = b.size ?? b.buffer.size - (b.offset ?? 0);
      if (size > this.maxBindingBytes) {
        throw new DeviceError(
          'LIMIT',
          `${spec.key}: a ${size}-byte operand exceeds this adapter's maxStorageBufferBindingSize (${this.maxBindingBytes})`,
        );
      }
    }
    // A full set of timestamp queries (copies take them too) ends the batch.
    if (this.profiler?.full()) this.flush();
    const pipeline = this.pipeline(spec.key, spec.wgsl);
    const entries: GPUBindGroupEntry[] = spec.buffers.map((resource, i) => ({
      binding: spec.layout ? spec.layout.buffers[i] : i,
      resource,
    }));
    if (spec.uniforms) {
      if (this.uniformUsed + UNIFORM_SLOT > this.uniformArena.byteLength) this.flush();
      const bytes = new Uint8Array(spec.uniforms);
      if (bytes.byteLength > UNIFORM_SLOT)
        throw new DeviceError('LIMIT', `${spec.key}: uniform block over ${UNIFORM_SLOT} bytes`);
      this.uniformArena.set(bytes, this.uniformUsed);
      entries.push({
        binding: spec.layout ? spec.layout.uniforms : spec.buffers.length,
        resource: {
          buffer: this.uniformBuffer,
          offset: this.uniformUsed,
          size: Math.max(16, bytes.byteLength),
        },
      });
      this.uniformUsed += UNIFORM_SLOT;
    }
    for (const t of spec.textures ?? [])
      entries.push({ binding: t.binding, resource: this.bindGroups.view(t.texture) });
    const bindGroup = this.bindGroups.get(pipeline, entries);
    this.stats.bindGroups = this.bindGroups.created;
    if (!this.encoder) this.encoder = this.gpu.createCommandEncoder();
    const timestampWrites = this.profiler?.passTimestamps();
    if (timestampWrites) {
      // A pass per dispatch, so that its begin and end can be timestamped.
      this.pass?.end();
      this.pass = this.encoder.beginComputePass({ timestampWrites });
    } else if (!this.pass) this.pass = this.encoder.beginComputePass();
    this.pass.setPipeline(pipeline);
    this.pass.setBindGroup(0, bindGroup);
    this.pass.dispatchWorkgroups(x, y, z);
    if (timestampWrites) {
      this.pass.end();
      this.pass = null;
    }
    this.profiler?.dispatched(spec.key, [x, y, z], started);
    this.dispatches++;
    this.stats.dispatches++;
    if (this.dispatches >= this.submitAt) this.flush();
  }

  /**
   * A storage texture `width` texels wide and at least `rows` tall (rgba32float, or a uint format
   * for operands kept as stored), for kernel scratch: one per role and format, kept for reuse and
   * replaced by a taller one when needed (after submitting the work recorded with the old one); also
   * a copy destination (see copyToTexture). Counted as 'other' memory.
   */
  storageTexture(
    role: string,
    width: number,
    rows: number,
    format: 'rgba32float' | 'rgba32uint' | 'rg32uint' | 'r32uint' = 'rgba32float',
  ): GPUTexture {
    this.check();
    const key = `${role}:${width}:${format}`;
    const old = this.textures.get(key);
    if (old && old.height >= rows) return old;
    if (old) this.releaseTexture(key, old);
    const texture = this.gpu.createTexture({
      size: [width, rows],
      format,
      usage: 0x8 /* STORAGE_BINDING */ | 0x2 /* COPY_DST */,
      label: key,
    });
    this.textures.set(key, texture);
    this.memory.add('other', width * rows * texelBytes(texture));
    return texture;
  }

  /** Frees the scratch textures (after submitting the work that uses them). */
  releaseTextures(): void {
    for (const [key, t] of this.textures) this.releaseTexture(key, t);
  }

  private releaseTexture(key: string, t: GPUTexture): void {
    this.flush();
    this.bindGroups.clear();
    t.destroy();
    this.textures.delete(key);
    this.memory.remove('other', t.width * t.height * texelBytes(t));
  }

  /** Records a buffer-to-buffer copy in the current batch. */
  copy(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, bytes: number): void {
    this.transfer('copy', bytes, (enc) => enc.copyBufferToBuffer(src, srcOffset, dst, dstOffset, bytes));
  }

  /**
   * Records a copy of `texels` texels from `src` (at byte `srcOffset`, a multiple of the texel's
   * size) into a storage texture filled row-major from its origin, in the current batch. The
   * texture's rows must be a multiple of 256 bytes (copies advance whole rows).
   */
  copyToTexture(src: GPUBuffer, srcOffset: number, texture: GPUTexture, texels: number): void {
    const width = texture.width;
    const bytes = texelBytes(texture);
    const source = { buffer: src, bytesPerRow: width * bytes };
    // Whole rows in one copy, then the partial last row in another.
    const rows = Math.floor(texels / width);
    const rest = texels - rows * width;
    this.transfer('copy_to_texture', texels * bytes, (enc) => {
      if (rows > 0) enc.copyBufferToTexture({ ...source, offset: srcOffset }, { texture }, [width, rows]);
      if (rest > 0) {
        const offset = srcOffset + rows * source.bytesPerRow;
        enc.copyBufferToTexture({ ...source, offset }, { texture, origin: [0, rows] }, [rest, 1]);
      }
    });
  }

  /**
   * Whether copyRowsToTexture can move rows of `rowTexels` texels, `pitchBytes` apart in their
   * buffer, into `texture`: whole rows share each texture row (one copy each), and that many pitches
   * are a multiple of 256 bytes (a copy's source row stride).
   */
  rowCopySuits(texture: GPUTexture, rowTexels: number, pitchBytes: number): boolean {
    const share = texture.width / rowTexels;
    return Number.isInteger(share) && (share * pitchBytes) % 256 === 0;
  }

  /**
   * Records a copy of `rows` rows of `rowTexels` texels, row i at byte srcOffset + i·pitchBytes of
   * `src` (a multiple of the texel's size), into a storage texture filled row-major from its origin
   * (row i from texel i·rowTexels on), in the current batch. Each texture row holds `share` rows
   * (its width / rowTexels), so one copy per residue of i modulo share moves a rectangle whose
   * source rows are share pitches apart. See rowCopySuits.
   */
  copyRowsToTexture(
    src: GPUBuffer,
    srcOffset: number,
    pitchBytes: number,
    texture: GPUTexture,
    rowTexels: number,
    rows: number,
  ): void {
    const share = texture.width / rowTexels;
    this.transfer('copy_to_texture', rows * rowTexels * texelBytes(texture), (enc) => {
      for (let r = 0; r < Math.min(share, rows); r++)
        enc.copyBufferToTexture(
          { buffer: src, offset: srcOffset + r * pitchBytes, bytesPerRow: share * pitchBytes },
          { texture, origin: [r * rowTexels, 0] },
          [rowTexels, Math.ceil((rows - r) / share)],
        );
    });
  }

  /** Records zeroing `bytes` bytes (a multiple of 4) of a buffer from `offset` in the current batch. */
  clear(buffer: GPUBuffer, offset: number, bytes: number): void {
    this.transfer('clear', bytes, (enc) => enc.clearBuffer(buffer, offset, bytes));
  }

  /**
   * Records a copy or clear in the current batch, outside any compute pass. While profiling with
   * timestamps, an empty pass before it and one after it mark when it began and ended.
   */
  private transfer(kind: TransferKind, bytes: number, record: (encoder: GPUCommandEncoder) => void): void {
    this.check();
    const started = this.profiler ? performance.now() : 0;
    if (this.profiler?.full()) this.flush();
    if (!this.encoder) this.encoder = this.gpu.createCommandEncoder();
    if (this.pass) {
      this.pass.end();
      this.pass = null;
    }
    const marks = this.profiler?.transferTimestamps();
    if (marks) this.encoder.beginComputePass({ timestampWrites: marks.before }).end();
    record(this.encoder);
    if (marks) this.encoder.beginComputePass({ timestampWrites: marks.after }).end();
    this.profiler?.transferred(kind, bytes, started);
  }

  /** Submits everything recorded so far. */
  flush(): void {
    if (!this.encoder) return;
    if (this.pass) {
      this.pass.end();
      this.pass = null;
    }
    const started = performance.now();
    this.profiler?.beforeSubmit(this.encoder);
    if (this.uniformUsed > 0)
      this.gpu.queue.writeBuffer(this.uniformBuffer, 0, this.uniformArena, 0, this.uniformUsed);
    this.gpu.queue.submit([this.encoder.finish()]);
    this.profiler?.afterSubmit(started);
    this.stats.submits++;
    this.encoder = null;
    this.dispatches = 0;
    this.submitAt = Math.min(MAX_DISPATCHES_PER_SUBMIT, 2 * this.submitAt);
    this.uniformUsed = 0;
  }

  /** Uploads bytes into a buffer. Flushes first: the buffer may be a pooled one that recorded work still reads. */
  write(buffer: GPUBuffer, offsetBytes: number, data: ArrayBufferView): void {
    this.check();
    this.flush();
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    const aligned = bytes.byteLength & ~3;
    if (aligned > 0) this.gpu.queue.writeBuffer(buffer, offsetBytes, bytes, 0, aligned);
    if (aligned < bytes.byteLength) {
      const tail = new Uint8Array(4);
      tail.set(bytes.subarray(aligned));
      this.gpu.queue.writeBuffer(buffer, offsetBytes + aligned, tail);
    }
  }

  /** Reads `bytes` bytes of a buffer back to the CPU. */
  async read(buffer: GPUBuffer, offsetBytes: number, bytes: number): Promise<ArrayBuffer> {
    this.check();
    const size = Math.max(4, Math.ceil(bytes / 4) * 4);
    const staging = this.gpu.createBuffer({ size, usage: 0x1 /* MAP_READ */ | 0x8 /* COPY_DST */ });
    this.copy(buffer, offsetBytes, staging, 0, size);
    this.flush();
    const started = performance.now();
    try {
      await this.waitFor(staging.mapAsync(0x1));
      this.submitAt = FIRST_SUBMIT_DISPATCHES;
    } catch (e) {
      this.throwPendingError();
      this.check();
      throw new DeviceError('GPU_INTERNAL', `reading back a buffer failed: ${(e as Error).message}`);
    }
    const out = staging.getMappedRange().slice(0, bytes);
    staging.unmap();
    staging.destroy();
    this.profiler?.readback(started, bytes);
    this.throwPendingError();
    return out;
  }

  /** Waits for all submitted work. */
  async sync(): Promise<void> {
    this.flush();
    const started = performance.now();
    await this.waitFor(this.gpu.queue.onSubmittedWorkDone());
    this.submitAt = FIRST_SUBMIT_DISPATCHES;
    this.profiler?.waited(started);
    this.throwPendingError();
  }

  /**
   * Starts recording where GPU work spends its time (see Profiler): GPU time per dispatch from
   * timestamp queries where the adapter has them, host time in encoding, submits, waits and reads.
   */
  startProfile(): void {
    if (this.profiler) throw new DeviceError('PROFILE', 'a profile is already running on this device');
    this.flush();
    this.profiler = new Profiler(
      this.gpu,
      this.features.has('timestamp-query'),
      2 * MAX_DISPATCHES_PER_SUBMIT,
    );
  }

  /** Whether a profile is recording (between startProfile() and stopProfile()). */
  get profiling(): boolean {
    return this.profiler !== null;
  }

  /** Waits for the recorded work and returns the profile; recording stops. */
  async stopProfile(): Promise<ProfileReport> {
    const p = this.profiler;
    if (!p)
      throw new DeviceError('PROFILE', 'no profile is running on this device (call startProfile first)');
    await this.sync();
    this.profiler = null;
    await this.waitFor(p.pending());
    return p.report(performance.now());
  }

  /** Live and peak tensor bytes by {@link MemoryCategory}, and the buffer pool's size. */
  memoryReport(): MemoryReport {
    return this.memory.snapshot({
      allocatedBytes: this.pool.allocatedBytes,
      freeBytes: this.pool.freeBytes,
      buffers: this.pool.buffers,
    });
  }

  /** Releases the GPU device so the process can exit. */
  destroy(): void {
    if (this.destroyed) return;
    this.releaseTextures();
    this.flush();
    this.destroyed = true;
    this.bindGroups.clear();
    this.pool.trim();
    this.uniformBuffer.destroy();
    this.pipelines.clear();
    this.gpu.destroy();
  }

  /** Whether destroy() was called; a lost device is not destroyed but reports `lostReason`. */
  get isDestroyed(): boolean {
    return this.destroyed;
  }
}
