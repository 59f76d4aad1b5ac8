/**
 * The profiler's record is complete and consistent: every dispatch is counted once under its kernel
 * kind, GPU times nest inside the GPU span and the span inside the wall time, host events are
 * recorded, and the trace is a Chrome trace. No assertion is about speed.
 */
import { describe, expect, it } from 'vitest';
import * as core from '../src/node.js';
import { useGpu } from './gpu.js';

describe('profiler', () => {
  const gpu = useGpu();

  it('kernelKind groups pipeline keys by family', () => {
    expect(core.kernelKind('mm_n_wg16_tm16_tn1_sg')).toBe('matmul');
    expect(core.kernelKind('mm_reduce_wg64_x4')).toBe('matmul_splitk_reduce');
    expect(core.kernelKind('binary:add:same:v4')).toBe('binary');
    expect(core.kernelKind('adamw')).toBe('adamw');
  });

  it('counts every dispatch once and keeps GPU time inside the span and the wall time', async () => {
    const dev = gpu.device();
    const a = core.randn([96, 80], { seed: 1 });
    const b = core.randn([80, 72], { seed: 2 });
    dev.startProfile();
    expect(dev.profiling).toBe(true);
    const before = dev.stats.dispatches;
    const out = core.tidy(() => {
      let y = core.matmul(a, b);
      for (let i = 0; i < 3; i++) y = core.add(core.softmax(y), y);
      return core.sum(y);
    });
    await out.item();
    const dispatched = dev.stats.dispatches - before;
    const r = await dev.stopProfile();
    expect(dev.profiling).toBe(false);

    expect(r.dispatches).toBe(dispatched);
    expect(r.ops.reduce((s, o) => s + o.dispatches, 0)).toBe(dispatched);
    const kinds = r.ops.map((o) => o.kind);
    expect(kinds).toEqual(expect.arrayContaining(['matmul', 'softmax', 'binary']));
    expect(new Set(kinds).size).toBe(kinds.length);
    expect(r.host.readbacks).toBe(1);
    expect(r.host.readbackBytes).toBe(4);
    expect(r.host.submits).toBeGreaterThanOrEqual(1);

    const timestamps = dev.features.has('timestamp-query');
    expect(r.timestamps).toBe(timestamps);
    if (timestamps) {
      const perOp = r.ops.reduce((s, o) => s + (o.gpuMs ?? 0), 0);
      expect(perOp).toBeCloseTo(r.gpuMs ?? Number.NaN, 6);
      // Dispatches of one queue run one after another: their times add up to at most the span,
      // and the span lies inside the profile's wall time.
      expect(r.gpuMs).toBeGreaterThan(0);
      expect((r.gpuMs as number) + (r.transferMs as number)).toBeLessThanOrEqual(
        (r.gpuSpanMs as number) * 1.001 + 0.01,
      );
      expect(r.gpuSpanMs as number).toBeLessThanOrEqual(r.wallMs);
      const gpuEvents = r.trace.filter((e) => e.cat === 'gpu');
      expect(gpuEvents).toHaveLength(dispatched);
    } else {
      expect(r.gpuMs).toBeNull();
      for (const o of r.ops) expect(o.gpuMs).toBeNull();
    }
    const trace = JSON.parse(JSON.stringify(core.chromeTrace(r)));
    const encoded = trace.traceEvents.filter((e: core.TraceEvent) => e.cat === 'encode');
    expect(encoded).toHaveLength(dispatched);
    // Each event names its dispatch's grid, so that a trace tells one shape's product from another's.
    for (const e of encoded) {
      expect(e.args.workgroups).toHaveLength(3);
      for (const n of e.args.workgroups) expect(Number.isInteger(n) && n > 0).toBe(true);
    }
    expect(core.formatProfile(r)).toMatch(/^op +dispatches +gpu ms +encode ms/);
    out.dispose();
    a.dispose();
    b.dispose();
  });

  it('times copies and clears between the dispatches', async () => {
    const dev = gpu.device();
    const x = core.randn([300, 1000], { seed: 3 });
    const y = core.randn([300, 1000], { seed: 4 });
    dev.startProfile();
    const before = dev.stats.dispatches;
    // addmm copies its input before the product accumulates onto it.
    const out = core.tidy(() => core.sum(core.add(core.addmm(y, x, core.zeros([1000, 1000])), x)));
    await out.item();
    const dispatched = dev.stats.dispatches - before;
    const r = await dev.stopProfile();
    const kinds = r.transfers.map((t) => t.kind);
    expect(kinds).toEqual(expect.arrayContaining(['copy']));
    const copy = r.transfers.find((t) => t.kind === 'copy');
    // y's 300 × 1000 floats, and the loss's 4 bytes read back through a staging copy.
    expect(copy?.bytes).toBeGreaterThanOrEqual(300 * 1000 * 4);
    // Transfers are not dispatches: the dispatch counts are unchanged by them.
    expect(r.dispatches).toBe(dispatched);
    if (r.timestamps) {
      expect(r.transferMs).toBeGreaterThan(0);
      expect(r.transferMs).toBeCloseTo(
        r.transfers.reduce((s, t) => s + (t.gpuMs ?? 0), 0),
        6,
      );
      // Copies and dispatches run one after another on the queue: together inside the span.
      expect((r.gpuMs as number) + (r.transferMs as number)).toBeLessThanOrEqual(
        (r.gpuSpanMs as number) * 1.001 + 0.01,
      );
      const copies = r.trace.filter((e) => e.cat === 'transfer');
      expect(copies).toHaveLength(r.transfers.reduce((s, t) => s + t.count, 0));
      expect(r.trace.filter((e) => e.cat === 'gpu')).toHaveLength(dispatched);
      expect(core.formatProfile(r)).toMatch(/^transfer +count +gpu ms +encode ms +MiB$/m);
      expect(core.formatProfile(r)).toMatch(/gpu busy [\d.]+ ms \+ transfers [\d.]+ ms/);
    } else {
      expect(r.transferMs).toBeNull();
    }
    out.dispose();
    x.dispose();
    y.dispose();
  });

  it('refuses a second profile and a stop without a start', async () => {
    const dev = gpu.device();
    dev.startProfile();
    expect(() => dev.startProfile()).toThrow(/already running/);
    await dev.stopProfile();
    await expect(dev.stopProfile()).rejects.toThrow(/no profile is running/);
  });
});
