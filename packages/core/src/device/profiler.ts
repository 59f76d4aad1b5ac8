/**
 * Where a stretch of GPU work spends its time: per kernel kind, the dispatches, the GPU time (from
 * timestamp queries written around each dispatch, where the adapter has 'timestamp-query') and the
 * host time spent encoding them; the copies and clears between the dispatches and their GPU time;
 * plus the host time in submits, waits and readbacks. The record can be written as a Chrome trace
 * (chrome://tracing, Perfetto).
 *
 * Profiling changes what it measures a little: each dispatch gets a compute pass of its own so that
 * its begin and end can be timestamped, and each copy an empty pass before and after it.
 */

/** Kernel family of a pipeline key: the part before the first ':'; every matmul variant is 'matmul'. */
export function kernelKind(key: string): string {
  if (key.startsWith('mm_reduce')) return 'matmul_splitk_reduce';
  if (key.startsWith('mm_pack')) return 'matmul_pack';
  if (key.startsWith('mm_')) return 'matmul';
  return key.split(':')[0];
}

/** Commands recorded outside compute passes: buffer copies, buffer-to-texture copies, clears. */
export type TransferKind = 'copy' | 'copy_to_texture' | 'clear';

interface GpuEvent {
  kind: string;
  /** performance.now() when encoding began, and how long it took (ms). */
  hostStart: number;
  hostMs: number;
  /** Index of its begin timestamp in its batch's query set; the end is the next one. */
  query?: number;
  /** GPU begin/end in ns on the adapter's clock, filled in once the timestamps are read back. */
  gpuBegin?: bigint;
  gpuEnd?: bigint;
  /** performance.now() at the submit that carried it. */
  submitAt?: number;
}

interface DispatchEvent extends GpuEvent {
  key: string;
  /** The dispatch's workgroup grid [x, y, z]. */
  workgroups: readonly [number, number, number];
}

interface TransferEvent extends GpuEvent {
  kind: TransferKind;
  bytes: number;
}

interface HostEvent {
  name: 'submit' | 'wait' | 'readback';
  start: number;
  ms: number;
  bytes?: number;
}

/** Per-kernel-kind totals, sorted by GPU time (host time where there are no timestamps). */
export interface OpProfile {
  kind: string;
  dispatches: number;
  /** Summed GPU time of the dispatches (null without timestamp queries). */
  gpuMs: number | null;
  /** Host time spent encoding them (bind groups, pass commands). */
  encodeMs: number;
}

/** Copies or clears of one kind: how many, their bytes, GPU time (null without timestamps), encoding time. */
export interface TransferProfile {
  kind: TransferKind;
  count: number;
  bytes: number;
  gpuMs: number | null;
  encodeMs: number;
}

/**
 * Where a stretch of GPU work spent its time, from {@link Device.stopProfile}: per kernel kind and in
 * total, GPU time (with 'timestamp-query') and host time. Times are in milliseconds;
 * {@link formatProfile} prints it as a table, {@link chromeTrace} as a trace file.
 */
export interface ProfileReport {
  /** Wall-clock time from startProfile() to stopProfile() (ms), including the final wait. */
  wallMs: number;
  /** Whether GPU times come from timestamp queries. */
  timestamps: boolean;
  dispatches: number;
  ops: OpProfile[];
  /** Copies and clears recorded between the dispatches, by kind. */
  transfers: TransferProfile[];
  /** Sum of every dispatch's GPU time (null without timestamps). */
  gpuMs: number | null;
  /** Sum of the copies' and clears' GPU time (null without timestamps). */
  transferMs: number | null;
  /** From the first timed begin (dispatch or copy) to the last end (null without timestamps). */
  gpuSpanMs: number | null;
  host: {
    encodeMs: number;
    submits: number;
    submitMs: number;
    waits: number;
    waitMs: number;
    readbacks: number;
    readbackMs: number;
    readbackBytes: number;
  };
  /** Chrome trace events (JSON array format); see chromeTrace(). */
  trace: TraceEvent[];
}

/**
 * One event in Chrome's trace format: 'X' a complete event (host work on thread 1, GPU dispatches
 * on thread 2), 'M' metadata naming a thread. `ts` and `dur` are in microseconds.
 */
export interface TraceEvent {
  name: string;
  cat: string;
  ph: 'X' | 'M';
  ts: number;
  dur?: number;
  pid: number;
  tid: number;
  args?: Record<string, unknown>;
}

interface PendingSet {
  querySet: GPUQuerySet;
  resolve: GPUBuffer;
  read: GPUBuffer;
  events: GpuEvent[];
  /** Queries taken so far. */
  used: number;
  mapped?: Promise<void>;
}

/**
 * Collects dispatch and host events for Device while a profile is running. Device calls the hooks;
 * users call Device.startProfile() and Device.stopProfile().
 */
export class Profiler {
  readonly timestamps: boolean;
  private readonly events: DispatchEvent[] = [];
  private readonly transfers: TransferEvent[] = [];
  private readonly host: HostEvent[] = [];
  private readonly sets: PendingSet[] = [];
  private current: PendingSet | null = null;
  private readonly t0 = performance.now();

  /**
   * @param queriesPerSet timestamps one submit can hold: two per dispatch or copy (Device submits
   * when the set is full, see full()).
   */
  constructor(
    private readonly gpu: GPUDevice,
    timestamps: boolean,
    private readonly queriesPerSet: number,
  ) {
    this.timestamps = timestamps;
  }

  /** Whether the batch's query set cannot take another dispatch or copy: submit first. */
  full(): boolean {
    return this.current !== null && this.current.used + 2 > this.queriesPerSet;
  }

  /** The next two queries of the batch's set (created on first use). */
  private take(): [GPUQuerySet, number] {
    if (!this.current) {
      this.current = {
        querySet: this.gpu.createQuerySet({ type: 'timestamp', count: this.queriesPerSet }),
        resolve: this.gpu.createBuffer({ size: this.queriesPerSet * 8, usage: 0x200 | 0x4 }),
        read: this.gpu.createBuffer({ size: this.queriesPerSet * 8, usage: 0x1 | 0x8 }),
        events: [],
        used: 0,
      };
    }
    const i = this.current.used;
    this.current.used += 2;
    return [this.current.querySet, i];
  }

  /** Timestamp writes for the pass of the next dispatch, or undefined without timestamps. */
  passTimestamps(): GPUComputePassTimestampWrites | undefined {
    if (!this.timestamps) return undefined;
    const [querySet, i] = this.take();
    return { querySet, beginningOfPassWriteIndex: i, endOfPassWriteIndex: i + 1 };
  }

  /**
   * Timestamp writes for the empty passes around the next copy or clear: the one before writes its
   * end, the one after its begin. Undefined without timestamps.
   */
  transferTimestamps():
    | { before: GPUComputePassTimestampWrites; after: GPUComputePassTimestampWrites }
    | undefined {
    if (!this.timestamps) return undefined;
    const [querySet, i] = this.take();
    return {
      before: { querySet, endOfPassWriteIndex: i },
      after: { querySet, beginningOfPassWriteIndex: i + 1 },
    };
  }

  dispatched(key: string, workgroups: readonly [number, number, number], hostStart: number): void {
    const e: DispatchEvent = {
      key,
      kind: kernelKind(key),
      workgroups,
      hostStart,
      hostMs: performance.now() - hostStart,
    };
    this.events.push(e);
    this.timed(e);
  }

  transferred(kind: TransferKind, bytes: number, hostStart: number): void {
    const e: TransferEvent = { kind, bytes, hostStart, hostMs: performance.now() - hostStart };
    this.transfers.push(e);
    this.timed(e);
  }

  /** Files an event under the two queries it took last (with timestamps). */
  private timed(e: GpuEvent): void {
    if (!this.timestamps || !this.current) return;
    e.query = this.current.used - 2;
    this.current.events.push(e);
  }

  /** Adds the query resolution to the encoder about to be submitted. */
  beforeSubmit(encoder: GPUCommandEncoder): void {
    const set = this.current;
    if (!set) return;
    const n = set.used;
    encoder.resolveQuerySet(set.querySet, 0, n, set.resolve, 0);
    encoder.copyBufferToBuffer(set.resolve, 0, set.read, 0, n * 8);
  }

  /** Starts reading the timestamps of the batch just submitted. */
  afterSubmit(start: number): void {
    const now = performance.now();
    this.host.push({ name: 'submit', start, ms: now - start });
    const set = this.current;
    this.current = null;
    // A set exists only once a dispatch has taken timestamps from it.
    if (!set) return;
    for (const e of set.events) e.submitAt = start;
    set.mapped = set.read.mapAsync(0x1).then(() => {
      const ts = new BigInt64Array(set.read.getMappedRange());
      for (const e of set.events) {
        e.gpuBegin = ts[e.query as number];
        e.gpuEnd = ts[(e.query as number) + 1];
      }
      set.read.unmap();
    });
    this.sets.push(set);
  }

  waited(start: number): void {
    this.host.push({ name: 'wait', start, ms: performance.now() - start });
  }

  readback(start: number, bytes: number): void {
    this.host.push({ name: 'readback', start, ms: performance.now() - start, bytes });
  }

  /** Resolves once every submitted batch's timestamps are read. Device.stopProfile() waits on it. */
  pending(): Promise<unknown> {
    return Promise.all(this.sets.map((s) => s.mapped));
  }

  /** Builds the report; call after pending() resolved. */
  report(end: number): ProfileReport {
    for (const s of this.sets) {
      s.querySet.destroy();
      s.resolve.destroy();
      s.read.destroy();
    }
    let first: bigint | null = null;
    let last: bigint | null = null;
    // GPU ns of an event with both timestamps (null otherwise); widens the span.
    const gpuNs = (e: GpuEvent): bigint | null => {
      if (e.gpuBegin === undefined || e.gpuEnd === undefined || e.gpuEnd < e.gpuBegin) return null;
      if (first === null || e.gpuBegin < first) first = e.gpuBegin;
      if (last === null || e.gpuEnd > last) last = e.gpuEnd;
      return e.gpuEnd - e.gpuBegin;
    };
    const byKind = new Map<string, OpProfile>();
    let dispatchNs = 0n;
    for (const e of this.events) {
      let op = byKind.get(e.kind);
      if (!op) {
        op = { kind: e.kind, dispatches: 0, gpuMs: this.timestamps ? 0 : null, encodeMs: 0 };
        byKind.set(e.kind, op);
      }
      op.dispatches++;
      op.encodeMs += e.hostMs;
      const d = gpuNs(e);
      if (d !== null) {
        dispatchNs += d;
        op.gpuMs = (op.gpuMs ?? 0) + Number(d) / 1e6;
      }
    }
    const byTransfer = new Map<TransferKind, TransferProfile>();
    let transferNs = 0n;
    for (const e of this.transfers) {
      let t = byTransfer.get(e.kind);
      if (!t) {
        t = { kind: e.kind, count: 0, bytes: 0, gpuMs: this.timestamps ? 0 : null, encodeMs: 0 };
        byTransfer.set(e.kind, t);
      }
      t.count++;
      t.bytes += e.bytes;
      t.encodeMs += e.hostMs;
      const d = gpuNs(e);
      if (d !== null) {
        transferNs += d;
        t.gpuMs = (t.gpuMs ?? 0) + Number(d) / 1e6;
      }
    }
    const slowest = (a: { gpuMs: number | null; encodeMs: number; kind: string }, b: typeof a) =>
      (b.gpuMs ?? b.encodeMs) - (a.gpuMs ?? a.encodeMs) || a.kind.localeCompare(b.kind);
    const ops = [...byKind.values()].sort(slowest);
    const host = (name: HostEvent['name']) => {
      const hs = this.host.filter((h) => h.name === name);
      return {
        count: hs.length,
        ms: hs.reduce((t, h) => t + h.ms, 0),
        bytes: hs.reduce((t, h) => t + (h.bytes ?? 0), 0),
      };
    };
    const [submits, waits, readbacks] = [host('submit'), host('wait'), host('readback')];
    return {
      wallMs: end - this.t0,
      timestamps: this.timestamps,
      dispatches: this.events.length,
      ops,
      transfers: [...byTransfer.values()].sort(slowest),
      gpuMs: this.timestamps ? Number(dispatchNs) / 1e6 : null,
      transferMs: this.timestamps ? Number(transferNs) / 1e6 : null,
      gpuSpanMs: first !== null && last !== null ? Number((last as bigint) - (first as bigint)) / 1e6 : null,
      host: {
        encodeMs: this.events.reduce((s, e) => s + e.hostMs, 0),
        submits: submits.count,
        submitMs: submits.ms,
        waits: waits.count,
        waitMs: waits.ms,
        readbacks: readbacks.count,
        readbackMs: readbacks.ms,
        readbackBytes: readbacks.bytes,
      },
      trace: this.traceEvents(first),
    };
  }

  /**
   * Host events on thread 1, GPU dispatches and copies on thread 2. The adapter's clock is placed
   * on the host's by aligning the earliest GPU begin with the submit that carried it (an
   * approximation: the clocks are not synchronised).
   */
  private traceEvents(firstGpu: bigint | null): TraceEvent[] {
    const us = (ms: number) => (ms - this.t0) * 1000;
    const out: TraceEvent[] = [
      { name: 'thread_name', cat: '', ph: 'M', ts: 0, pid: 1, tid: 1, args: { name: 'host' } },
      { name: 'thread_name', cat: '', ph: 'M', ts: 0, pid: 1, tid: 2, args: { name: 'gpu' } },
    ];
    for (const e of this.events) {
      out.push({
        name: e.kind,
        cat: 'encode',
        ph: 'X',
        ts: us(e.hostStart),
        dur: e.hostMs * 1000,
        pid: 1,
        tid: 1,
        args: { key: e.key, workgroups: e.workgroups },
      });
    }
    for (const h of this.host) {
      out.push({
        name: h.name,
        cat: 'host',
        ph: 'X',
        ts: us(h.start),
        dur: h.ms * 1000,
        pid: 1,
        tid: 1,
        ...(h.bytes ? { args: { bytes: h.bytes } } : {}),
      });
    }
    const timed = [...this.events, ...this.transfers];
    const anchor = timed.find((e) => e.gpuBegin === firstGpu && e.submitAt !== undefined);
    if (firstGpu !== null && anchor?.submitAt !== undefined) {
      const base = us(anchor.submitAt);
      const gpuEvent = (e: GpuEvent, cat: string, args: Record<string, unknown>): void => {
        if (e.gpuBegin === undefined || e.gpuEnd === undefined) return;
        const ts = base + Number(e.gpuBegin - firstGpu) / 1000;
        out.push({
          name: e.kind,
          cat,
          ph: 'X',
          ts,
          dur: Number(e.gpuEnd - e.gpuBegin) / 1000,
          pid: 1,
          tid: 2,
          args,
        });
      };
      for (const e of this.events) gpuEvent(e, 'gpu', { key: e.key, workgroups: e.workgroups });
      for (const e of this.transfers) gpuEvent(e, 'transfer', { bytes: e.bytes });
    }
    return out;
  }
}

/** A report's trace as the JSON object Chrome's trace viewer and Perfetto open. */
export function chromeTrace(report: ProfileReport): { traceEvents: TraceEvent[]; displayTimeUnit: 'ms' } {
  return { traceEvents: report.trace, displayTimeUnit: 'ms' };
}

/** The per-kind tables (dispatches, then copies and clears) as aligned text, plus the host line. */
export function formatProfile(report: ProfileReport, perStep = 1): string {
  const f = (v: number) => (v / perStep).toFixed(2);
  const n = (v: number) => String(Math.round((v / perStep) * 10) / 10);
  const count = (v: number) => (v / perStep).toFixed(perStep === 1 ? 0 : 1);
  const ms = (v: number | null) => (v === null ? '-' : f(v));
  const lines = table([
    ['op', 'dispatches', 'gpu ms', 'encode ms'],
    ...report.ops.map((op) => [op.kind, count(op.dispatches), ms(op.gpuMs), f(op.encodeMs)]),
  ]);
  if (report.transfers.length > 0) {
    lines.push(
      '',
      ...table([
        ['transfer', 'count', 'gpu ms', 'encode ms', 'MiB'],
        ...report.transfers.map((t) => [
          t.kind,
          count(t.count),
          ms(t.gpuMs),
          f(t.encodeMs),
          f(t.bytes / 2 ** 20),
        ]),
      ]),
    );
  }
  const h = report.host;
  const unit = perStep === 1 ? '' : ' per step';
  const busy =
    report.gpuMs === null
      ? '- (no timestamp-query)'
      : `${f(report.gpuMs)} ms${report.transfers.length > 0 ? ` + transfers ${ms(report.transferMs)} ms` : ''}`;
  lines.push(
    '',
    `wall ${f(report.wallMs)} ms${unit}; gpu busy ${busy}; host: encode ${f(h.encodeMs)} ms, ${n(h.submits)} submits ${f(h.submitMs)} ms, ${n(h.waits)} waits ${f(h.waitMs)} ms, ${n(h.readbacks)} readbacks ${f(h.readbackMs)} ms (${n(h.readbackBytes)} bytes)`,
  );
  return lines.join('\n');
}

/** Rows as aligned text: the first column left-aligned, the others right-aligned. */
function table(rows: string[][]): string[] {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows.map((r) => r.map((v, c) => (c === 0 ? v.padEnd(widths[c]) : v.padStart(widths[c]))).join('  '));
}
