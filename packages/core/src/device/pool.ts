/**
 * Size-bucketed pool of GPU storage buffers. Sizes are rounded up to a bucket (at most 1/8 waste above
 * 64 KiB, powers of two below) so buffers freed by one training step are reused by the next instead of
 * being created and destroyed each time (creation is slow and fragments memory on every backend).
 */
export const STORAGE_USAGE = 0x80 /* STORAGE */ | 0x4 /* COPY_SRC */ | 0x8; /* COPY_DST */

export function bucketSize(bytes: number): number {
  const b = Math.max(bytes, 16);
  if (b <= 65536) return 2 ** Math.ceil(Math.log2(b));
  const step = 2 ** (Math.ceil(Math.log2(b)) - 3);
  return Math.ceil(b / step) * step;
}

/**
 * Free buffers of one size, handed out lowest creation number first. Which free buffer an
 * allocation gets then depends only on which are free, not on the order they were released in: a
 * training step that allocates and frees the same sequence as the step before gets the same buffers,
 * so the device's bind groups for them are found in its cache instead of created again (on lavapipe
 * about 50 µs each, for some 60 of a stories260K step's 241 dispatches while the last-released
 * buffer was handed out first).
 */
class FreeList {
  /** Creation numbers, descending, so that the lowest is popped. */
  private readonly serials: number[] = [];
  private readonly buffers: GPUBuffer[] = [];

  get length(): number {
    return this.buffers.length;
  }

  push(serial: number, buffer: GPUBuffer): void {
    let lo = 0;
    let hi = this.serials.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.serials[mid] > serial) lo = mid + 1;
      else hi = mid;
    }
    this.serials.splice(lo, 0, serial);
    this.buffers.splice(lo, 0, buffer);
  }

  pop(): GPUBuffer | undefined {
    this.serials.pop();
    return this.buffers.pop();
  }

  *[Symbol.iterator](): IterableIterator<GPUBuffer> {
    yield* this.buffers;
  }
}

export class BufferPool {
  private free = new Map<number, FreeList>();
  private readonly serials = new WeakMap<GPUBuffer, number>();
  private created = 0;
  allocatedBytes = 0;
  freeBytes = 0;
  buffers = 0;

  constructor(private readonly device: GPUDevice) {}

  /**
   * A buffer and whether it is new. A new buffer holds zeros (WebGPU zero-initialises buffers), so
   * zeros() need not clear it: on a CPU adapter that saves touching the memory twice, which is most
   * of the cost of allocating parameters that a checkpoint load then overwrites.
   */
  take(bytes: number): { buffer: GPUBuffer; fresh: boolean } {
    const size = bucketSize(bytes);
    const list = this.free.get(size);
    const reused = list?.pop();
    if (reused) {
      this.freeBytes -= size;
      return { buffer: reused, fresh: false };
    }
    const buffer = this.device.createBuffer({ size, usage: STORAGE_USAGE });
    this.serials.set(buffer, this.created++);
    this.allocatedBytes += size;
    this.buffers++;
    return { buffer, fresh: true };
  }

  release(buf: GPUBuffer): void {
    const size = buf.size;
    let list = this.free.get(size);
    if (!list) {
      list = new FreeList();
      this.free.set(size, list);
    }
    list.push(this.serials.get(buf) ?? -1, buf);
    this.freeBytes += size;
  }

  /** Destroys every free buffer (e.g. after a phase that needed much more memory than what follows). */
  trim(): void {
    for (const list of this.free.values()) {
      for (const b of list) {
        b.destroy();
        this.allocatedBytes -= b.size;
        this.buffers--;
      }
    }
    this.free.clear();
    this.freeBytes = 0;
  }
}
