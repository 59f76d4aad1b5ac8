import { describe, expect, it } from 'vitest';
import { runCli } from './run-cli.js';

describe('sharelora doctor / bench / usage', () => {
  it('doctor --json reports the adapter and a passing self-check, and exits by itself', () => {
    const r = runCli(['doctor', '--json']);
    expect(r.status, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report.ok).toBe(true);
    expect(report.adapter.limits.maxStorageBufferBindingSize).toBeGreaterThan(0);
    expect(report.checks.map((c: { op: string }) => c.op)).toContain('matmul');
    for (const c of report.checks) expect(c.relError).toBeLessThan(1e-4);
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
