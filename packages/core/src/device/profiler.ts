/**
 * Where a stretch of GPU work spends its time: per kernel kind, the dispatches, the GPU time (from
 * timestamp queries written around each dispatch, where the adapter has 'timestamp-query') and the
 * host time spent encoding them; plus the host time in submits, waits and readbacks. The record can
 * be written as a Chrome trace (chrome://tracing, Perfetto).
 *
 * Profiling changes what it measures a little: each dispatch gets a compute pass of its own so that
 * its begin and end can be timestamped.
 */

/** Kernel family of a pipeline key: the part before the first ':'; every matmul variant is 'matmul'. */
export function kernelKind(key: string): string {
  if (key.startsWith('mm_reduce')) return 'matmul_splitk_reduce';
  if (key.startsWith('mm_pack')) return 'matmul_pack';
  if (key.startsWith('mm_')) return 'matmul';
  return key.split(':')[0];
}

interface DispatchEvent {
  key: string;
  kind: string;
  /** The dispatch's workgroup grid [x, y, z]. */
  workgroups: readonly [number, number, number];
  /** performance.now() when encoding began, and how long it took (ms). */
  hostStart: number;
  hostMs: number;
  /** GPU begin/end in ns on the adapter's clock, filled in once the timestamps are read back. */
  gpuBegin?: bigint;
  gpuEnd?: bigint;
  /** performance.now() at the submit that carried this dispatch. */
  submitAt?: number;
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
  /** Sum of every dispatch's GPU time (null without timestamps). */
  gpuMs: number | null;
  /** From the first dispatch's GPU begin to the last one's end (null without timestamps). */
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
  events: DispatchEvent[];
  mapped?: Promise<void>;
}

/**
 * Collects dispatch and host events for Device while a profile is running. Device calls the hooks;
 * users call Device.startProfile() and Device.stopProfile().
 */
export class Profiler {
  readonly timestamps: boolean;
  private readonly events: DispatchEvent[] = [];
  private readonly host: HostEvent[] = [];
  private readonly sets: PendingSet[] = [];
  private current: PendingSet | null = null;
  private readonly t0 = performance.now();

  /**
   * @param queriesPerSet timestamps one submit can hold: two per dispatch (Device submits before a
   * batch grows past it).
   */
  constructor(
    private readonly gpu: GPUDevice,
    timestamps: boolean,
    private readonly queriesPerSet: number,
  ) {
    this.timestamps = timestamps;
  }

  /** Timestamp writes for the pass of the next dispatch, or undefined without timestamps. */
  passTimestamps(): GPUComputePassTimestampWrites | undefined {
    if (!this.timestamps) return undefined;
    if (!this.current) {
      this.current = {
        querySet: this.gpu.createQuerySet({ type: 'timestamp', count: this.queriesPerSet }),
        resolve: this.gpu.createBuffer({ size: this.queriesPerSet * 8, usage: 0x200 | 0x4 }),
        read: this.gpu.createBuffer({ size: this.queriesPerSet * 8, usage: 0x1 | 0x8 }),
        events: [],
      };
    }
    const i = this.current.events.length * 2;
    return {
      querySet: this.current.querySet,
      beginningOfPassWriteIndex: i,
      endOfPassWriteIndex: i + 1,
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
    this.current?.events.push(e);
  }

  /** Adds the query resolution to the encoder about to be submitted. */
  beforeSubmit(encoder: GPUCommandEncoder): void {
    const set = this.current;
    if (!set) return;
    const n = set.events.length * 2;
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
      set.events.forEach((e, k) => {
        e.gpuBegin = ts[2 * k];
        e.gpuEnd = ts[2 * k + 1];
      });
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
    const byKind = new Map<string, OpProfile>();
    let gpuNs = 0n;
    let first: bigint | null = null;
    let last: bigint | null = null;
    for (const e of this.events) {
      let op = byKind.get(e.kind);
      if (!op) {
        op = { kind: e.kind, dispatches: 0, gpuMs: this.timestamps ? 0 : null, encodeMs: 0 };
        byKind.set(e.kind, op);
      }
      op.dispatches++;
      op.encodeMs += e.hostMs;
      if (e.gpuBegin !== undefined && e.gpuEnd !== undefined && e.gpuEnd >= e.gpuBegin) {
        const d = e.gpuEnd - e.gpuBegin;
        gpuNs += d;
        op.gpuMs = (op.gpuMs ?? 0) + Number(d) / 1e6;
        if (first === null || e.gpuBegin < first) first = e.gpuBegin;
        if (last === null || e.gpuEnd > last) last = e.gpuEnd;
      }
    }
    const ops = [...byKind.values()].sort(
      (a, b) => (b.gpuMs ?? b.encodeMs) - (a.gpuMs ?? a.encodeMs) || a.kind.localeCompare(b.kind),
    );
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
      gpuMs: this.timestamps ? Number(gpuNs) / 1e6 : null,
      gpuSpanMs: first !== null && last !== null ? Number(last - first) / 1e6 : null,
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
   * Host events on thread 1, GPU dispatches on thread 2. The adapter's clock is placed on the host's
   * by aligning the earliest GPU begin with the submit that carried it (an approximation: the
   * clocks are not synchronised).
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
    const anchor = this.events.find((e) => e.gpuBegin === firstGpu && e.submitAt !== undefined);
    if (firstGpu !== null && anchor?.submitAt !== undefined) {
      const base = us(anchor.submitAt);
      for (const e of this.events) {
        if (e.gpuBegin === undefined || e.gpuEnd === undefined) continue;
        out.push({
          name: e.kind,
          cat: 'gpu',
          ph: 'X',
          ts: base + Number(e.gpuBegin - firstGpu) / 1000,
          dur: Number(e.gpuEnd - e.gpuBegin) / 1000,
          pid: 1,
          tid: 2,
          args: { key: e.key, workgroups: e.workgroups },
        });
      }
    }
    return out;
  }
}

/** A report's trace as the JSON object Chrome's trace viewer and Perfetto open. */
export function chromeTrace(report: ProfileReport): { traceEvents: TraceEvent[]; displayTimeUnit: 'ms' } {
  return { traceEvents: report.trace, displayTimeUnit: 'ms' };
}

/** The per-kind table as aligned text, plus the host line. */
export function formatProfile(report: ProfileReport, perStep = 1): string {
  const f = (v: number) => (v / perStep).toFixed(2);
  const n = (v: number) => String(Math.round((v / perStep) * 10) / 10);
  const rows = [['op', 'dispatches', 'gpu ms', 'encode ms']];
  for (const op of report.ops) {
    rows.push([
      op.kind,
      (op.dispatches / perStep).toFixed(perStep === 1 ? 0 : 1),
      op.gpuMs === null ? '-' : f(op.gpuMs),
      f(op.encodeMs),
    ]);
  }
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  const lines = rows.map((r) =>
    r.map((v, c) => (c === 0 ? v.padEnd(widths[c]) : v.padStart(widths[c]))).join('  '),
  );
  const h = report.host;
  const unit = perStep === 1 ? '' : ' per step';
  lines.push(
    '',
    `wall ${f(report.wallMs)} ms${unit}; gpu busy ${report.gpuMs === null ? '- (no timestamp-query)' : `${f(report.gpuMs)} ms`}; host: encode ${f(h.encodeMs)} ms, ${n(h.submits)} submits ${f(h.submitMs)} ms, ${n(h.waits)} waits ${f(h.waitMs)} ms, ${n(h.readbacks)} readbacks ${f(h.readbackMs)} ms (${n(h.readbackBytes)} bytes)`,
  );
  return lines.join('\n');
}
