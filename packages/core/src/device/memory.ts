/** What a tensor's bytes are for; the memory report breaks live and peak bytes down by these. */
export type MemoryCategory = 'weights' | 'trainable' | 'gradients' | 'optimizer' | 'activations' | 'other';

/** Every {@link MemoryCategory}, in the order reports list them. */
export const MEMORY_CATEGORIES: readonly MemoryCategory[] = [
  'weights',
  'trainable',
  'gradients',
  'optimizer',
  'activations',
  'other',
];

/**
 * A snapshot of GPU memory ({@link Device.memoryReport}). Byte counts are the tensors' logical sizes
 * by {@link MemoryCategory} (a Parameter's tensor counts as 'trainable' or 'weights' by its flag); the
 * pool's figures are the physical buffers behind them.
 */
export interface MemoryReport {
  /** Bytes held by live tensors, by category, and their total. */
  live: Record<MemoryCategory, number> & { total: number };
  /** Highest value each category (and the total) reached since the device was created or `device.memory.resetPeak()`. */
  peak: Record<MemoryCategory, number> & { total: number };
  /** Physical GPU buffers: allocated by the pool, of which free for reuse. */
  pool: { allocatedBytes: number; freeBytes: number; buffers: number };
  /** Number of live tensor storages. */
  liveStorages: number;
}

function zero(): Record<MemoryCategory, number> & { total: number } {
  return { weights: 0, trainable: 0, gradients: 0, optimizer: 0, activations: 0, other: 0, total: 0 };
}

/** Live/peak byte accounting by category. Counts logical tensor bytes, not pool rounding. */
export class MemoryAccount {
  private live = zero();
  private peak = zero();
  storages = 0;

  add(cat: MemoryCategory, bytes: number): void {
    this.live[cat] += bytes;
    this.live.total += bytes;
    if (this.live[cat] > this.peak[cat]) this.peak[cat] = this.live[cat];
    if (this.live.total > this.peak.total) this.peak.total = this.live.total;
  }

  remove(cat: MemoryCategory, bytes: number): void {
    this.live[cat] -= bytes;
    this.live.total -= bytes;
  }

  /** Bytes that can be added to the live total without raising its peak. */
  headroom(): number {
    return this.peak.total - this.live.total;
  }

  resetPeak(): void {
    this.peak = { ...this.live };
  }

  snapshot(pool: MemoryReport['pool']): MemoryReport {
    return { live: { ...this.live }, peak: { ...this.peak }, pool, liveStorages: this.storages };
  }
}
