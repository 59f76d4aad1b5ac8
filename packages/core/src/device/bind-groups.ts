/**
 * Bind groups by pipeline and bound resources. A training step binds the same pooled buffers at the
 * same uniform slots step after step, and on Dawn with lavapipe createBindGroup costs about 27 µs
 * against about 3 µs for the pass commands of a dispatch, so each distinct binding is created once
 * and looked up after that. Resources are told apart by object identity. A destroyed buffer is
 * never bound again, so its entries are never looked up again; they go when the cache is cleared:
 * at its size limit, when a scratch texture is replaced, and when the device is destroyed.
 */
export class BindGroupCache {
  private readonly groups = new Map<string, GPUBindGroup>();
  private readonly ids = new WeakMap<object, number>();
  private readonly views = new WeakMap<GPUTexture, GPUTextureView>();
  private nextId = 1;
  /** Bind groups created so far (the rest of get()'s calls were lookups). */
  created = 0;

  constructor(
    private readonly gpu: GPUDevice,
    private readonly limit = 4096,
  ) {}

  /** The bind group of `entries` (buffer bindings and texture views) for group 0 of `pipeline`. */
  get(pipeline: GPUComputePipeline, entries: GPUBindGroupEntry[]): GPUBindGroup {
    let key = `${this.id(pipeline)}`;
    for (const e of entries) {
      const r = e.resource as GPUBufferBinding | GPUTextureView;
      key +=
        'buffer' in r
          ? `|${e.binding}:${this.id(r.buffer)}:${r.offset ?? 0}:${r.size ?? ''}`
          : `|${e.binding}:${this.id(r)}`;
    }
    let group = this.groups.get(key);
    if (!group) {
      if (this.groups.size >= this.limit) this.groups.clear();
      group = this.gpu.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries });
      this.created++;
      this.groups.set(key, group);
    }
    return group;
  }

  /** One view per texture, so that bindings of the same texture share their bind groups. */
  view(texture: GPUTexture): GPUTextureView {
    let v = this.views.get(texture);
    if (!v) {
      v = texture.createView();
      this.views.set(texture, v);
    }
    return v;
  }

  /** Drops every bind group (their buffers may be destroyed next). */
  clear(): void {
    this.groups.clear();
  }

  private id(o: object): number {
    let i = this.ids.get(o);
    if (i === undefined) {
      i = this.nextId++;
      this.ids.set(o, i);
    }
    return i;
  }
}
