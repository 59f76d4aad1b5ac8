import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from './run-cli.js';

describe('sharelora doctor / bench / usage', () => {
  it('doctor --json reports the adapter and a passing self-check, and exits by itself', () => {
    const r = runCli(['doctor', '--json']);
    expect(r.status, r.stderr).toBe(0);
    // Dawn's start-up notices about clamped dynamic-buffer limits are kept off stderr.
    expect(r.stderr).not.toMatch(/artificially reduced/);
    const report = JSON.parse(r.stdout);
    expect(report.ok).toBe(true);
    expect(report.adapter.limits.maxStorageBufferBindingSize).toBeGreaterThan(0);
    expect(report.checks.map((c: { op: string }) => c.op)).toContain('matmul');
    for (const c of report.checks) expect(c.relError).toBeLessThan(1e-4);
    // A CPU adapter with subgroups and readable storage textures (lavapipe) packs large products
    // into textures, and the self-check runs that path too.
    const a = report.adapter;
    const textures = a.isSoftware && a.readableStorageTextures && (a.subgroupMinSize ?? 0) >= 8;
    expect(report.kernels.matmul).toBe(
      textures ? 'textures' : a.subgroupMinSize >= 8 ? 'subgroups' : 'portable',
    );
    if (textures)
      expect(report.checks.map((c: { op: string }) => c.op)).toContain('matmul (packed textures)');
  });

  it('bench --quick --json prints throughput numbers with the adapter named', () => {
    const r = runCli(['bench', '--quick', '--json', '--reps', '1', '--rounds', '2']);
    expect(r.status, r.stderr).toBe(0);
    const b = JSON.parse(r.stdout);
    expect(b.adapter.description.length).toBeGreaterThan(0);
    expect(b.matmul.length).toBeGreaterThanOrEqual(5);
    for (const m of b.matmul) expect(m.gflops).toBeGreaterThan(0);
    expect(b.elementwise.gbPerS).toBeGreaterThan(0);
    expect(b.transformerBlock.msPerStep).toBeGreaterThan(0);
    expect(b.transformerBlock.peakBytes.total).toBeGreaterThan(0);
    expect(b.profile).toBeUndefined();
  });

  it('bench --profile profiles the transformer-block steps (a warm-up plus rounds × reps)', () => {
    const r = runCli(['bench', '--quick', '--json', '--reps', '1', '--rounds', '2', '--profile']);
    expect(r.status, r.stderr).toBe(0);
    const p = JSON.parse(r.stdout).profile;
    expect(p.steps).toBe(3);
    expect(p.trace).toBeUndefined();
    expect(p.ops.map((o: { kind: string }) => o.kind)).toEqual(
      expect.arrayContaining(['matmul', 'attn_fwd', 'attn_bwd_q', 'attn_bwd_kv', 'norm']),
    );
    expect(p.ops.reduce((s: number, o: { dispatches: number }) => s + o.dispatches, 0)).toBe(p.dispatches);
    expect(p.dispatches % p.steps).toBe(0);
    const noProfile = runCli(['bench', '--quick', '--profile-out', 'x.json']);
    expect(noProfile.status).toBe(2);
    expect(noProfile.stderr).toMatch(/--profile-out needs --profile/);
  });

  it('bench --generate reports prefill and decode rates of a tiny LLaMA, and refuses bad flags', () => {
    const dir = mkdtempSync(join(tmpdir(), 'bench-generate-'));
    try {
      const model = join(dir, 'llama');
      const init = runCli(['init', '--arch', 'llama', '--preset', 'tiny', '--out', model]);
      expect(init.status, init.stderr).toBe(0);
      const args = ['bench', '--generate', '--model', model, '--new-tokens', '8', '--runs', '1'];
      const r = runCli([...args, '--batch-size', '2', '--json']);
      expect(r.status, r.stderr).toBe(0);
      const g = JSON.parse(r.stdout).generate;
      expect(g).toMatchObject({ engine: 'auto', batchSize: 2, newTokens: 8, runs: 1 });
      expect(g.promptTokens).toBeGreaterThan(1);
      for (const k of ['prefillTokensPerSec', 'decodeTokensPerSec', 'startupMs'])
        expect(g[k]).toBeGreaterThan(0);
      const text = runCli([...args, '--engine', 'forward']);
      expect(text.status, text.stderr).toBe(0);
      expect(text.stdout).toMatch(
        /\(forward, batch 1, best of 1\): prefill \d+ tokens\/s .* decode \d+ tokens\/s/,
      );
      expect(runCli(['bench', '--generate']).stderr).toMatch(/--generate needs --model/);
      expect(runCli(['bench', '--model', model]).stderr).toMatch(/--model needs --generate/);
      expect(runCli([...args, '--engine', 'fast']).stderr).toMatch(/--engine must be/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('bench --train times real steps; its profile accounts for every dispatch and fits in the wall time', () => {
    const dir = mkdtempSync(join(tmpdir(), 'bench-train-'));
    try {
      const trace = join(dir, 'trace.json');
      const args = ['bench', '--train', 'stories260k', '--batch-size', '2', '--seq-length', '16'];
      const r = runCli([...args, '--steps', '2', '--json', '--profile', '--profile-out', trace]);
      expect(r.status, r.stderr).toBe(0);
      const [t] = JSON.parse(r.stdout).train;
      expect(t).toMatchObject({ shape: 'stories260k', method: 'lora', rank: 8, steps: 2, tokensPerStep: 32 });
      // q and v of 5 layers at r=8: 5·8·(64+64) + 5·8·(64+32) (the paper's LoRA count).
      expect(t.trainableParameters).toBe(8960);
      // Near-uniform predictions over a 512-token vocabulary at initialisation: loss ≈ ln 512.
      for (const l of t.losses) expect(Math.abs(l - Math.log(512))).toBeLessThan(0.05);
      expect(t.tokensPerSec).toBeCloseTo((t.tokensPerStep * 1000) / t.msPerStep, 6);
      expect(t.peakBytes).toBeGreaterThan(0);
      // The device's own dispatch counter and the profiler's events agree.
      const p = t.profile;
      expect(p.dispatches).toBe(t.dispatchesPerStep * t.steps);
      expect(p.ops.reduce((s: number, o: { dispatches: number }) => s + o.dispatches, 0)).toBe(p.dispatches);
      if (p.timestamps) {
        // Dispatches and copies run one after another: their GPU times add up to at most the span.
        expect(p.gpuMs + p.transferMs).toBeLessThanOrEqual(p.gpuSpanMs * 1.001 + 0.01);
        expect(p.gpuSpanMs).toBeLessThanOrEqual(p.wallMs);
      }
      const events = JSON.parse(readFileSync(trace, 'utf8')).traceEvents;
      expect(events.filter((e: { cat: string }) => e.cat === 'encode')).toHaveLength(p.dispatches);

      const text = runCli([...args, '--steps', '1', '--method', 'share-a', '--profile']);
      expect(text.status, text.stderr).toBe(0);
      expect(text.stdout).toMatch(/stories260k share-a r=8, batch 2×16: [\d.]+ ms\/step, \d+ tokens\/s/);
      // One fused attention dispatch per layer.
      expect(text.stdout).toMatch(/^attn_fwd +5 /m);

      const bad = runCli(['bench', '--train', 'gpt5']);
      expect(bad.status).toBe(2);
      expect(bad.stderr).toMatch(/unknown shape "gpt5" \(known: stories260k, gpt2-small/);
      expect(runCli(['bench', '--rank', '4']).stderr).toMatch(/--rank needs --train/);
      expect(runCli(['bench', '--train', 'stories260k', '--method', 'dora']).stderr).toMatch(/--method/);

      // QLoRA: the same step over an nf4 base; the adapter and the initial loss are the same kind.
      const q = runCli([...args, '--steps', '1', '--quantize', 'nf4', '--json']);
      expect(q.status, q.stderr).toBe(0);
      const [qt] = JSON.parse(q.stdout).train;
      expect(qt).toMatchObject({ shape: 'stories260k', quantize: 'nf4', trainableParameters: 8960 });
      expect(Math.abs(qt.losses[0] - Math.log(512))).toBeLessThan(0.05);
      expect(runCli([...args, '--steps', '1', '--quantize', 'nf4']).stdout).toMatch(
        /r=8 over nf4, batch 2×16/,
      );
      expect(runCli(['bench', '--quantize', 'nf4']).stderr).toMatch(/--quantize needs --train/);
      expect(runCli([...args, '--quantize', 'q3']).stderr).toMatch(/--quantize/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('bad usage exits 2 with one line naming the problem', () => {
    const unknownCmd = runCli(['frobnicate']);
    expect(unknownCmd.status).toBe(2);
    expect(unknownCmd.stderr.trim().split('\n')).toHaveLength(1);
    expect(unknownCmd.stderr).toMatch(/frobnicate/);
    const badFlag = runCli(['bench', '--bogus']);
    expect(badFlag.status).toBe(2);
    expect(badFlag.stderr).toMatch(/--bogus/);
    const badValue = runCli(['bench', '--reps', 'zero']);
    expect(badValue.status).toBe(2);
    expect(badValue.stderr).toMatch(/--reps/);
    const dashValue = runCli(['bench', '--reps', '-1']);
    expect(dashValue.status).toBe(2);
    expect(dashValue.stderr).toMatch(/--reps has no value .* --reps=VALUE/);
    const badRounds = runCli(['bench', '--rounds', '0']);
    expect(badRounds.status).toBe(2);
    expect(badRounds.stderr).toMatch(/--rounds/);
  });

  it('--help works for every command', () => {
    for (const cmd of [[], ['doctor'], ['bench']]) {
      const r = runCli([...cmd, '--help']);
      expect(r.status).toBe(0);
      expect(r.stdout).toMatch(/Usage: sharelora/);
    }
  });
});
