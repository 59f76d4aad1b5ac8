/**
 * Unbiased pass@k (Chen et al., 2021): 1 − C(n−c, k) / C(n, k) for n samples of which c pass.
 * Binomials of n = 200 overflow doubles, so the ratio is taken as the product
 * ∏_{i=n−c+1}^{n} (1 − k/i), multiplied in that (ascending) order as the reference estimator does.
 */
export function passAtK(n: number, c: number, k: number): number {
  if (
    !(Number.isInteger(n) && Number.isInteger(c) && Number.isInteger(k)) ||
    n < 1 ||
    c < 0 ||
    c > n ||
    k < 1 ||
    k > n
  ) {
    throw new RangeError(`pass@k needs integers 0 ≤ c ≤ n and 1 ≤ k ≤ n, got n=${n} c=${c} k=${k}`);
  }
  if (n - c < k) return 1;
  let prod = 1;
  for (let i = n - c + 1; i <= n; i++) prod *= 1 - k / i;
  return 1 - prod;
}
