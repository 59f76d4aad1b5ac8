/**
 * CPython's `random.Random` (MT19937), reproduced so that few-shot examples drawn "at random" are the
 * very ones lm-evaluation-harness draws: its default sampler is `random.Random(1234).sample(pool, k)`,
 * called once per evaluated document, in document order, on one shared generator.
 *
 * Only what that needs is here: integer seeding (`init_by_array` over the seed's 32-bit words),
 * `getrandbits(k)` for k ≤ 32, `_randbelow` by rejection and `sample()` with both of CPython's
 * selection strategies (pool for small populations, rejection set otherwise).
 */
const N = 624;
const M = 397;

/**
 * CPython's `random.Random` seeded with an integer: the same 32-bit outputs, `getrandbits`,
 * `_randbelow` and `sample` indices as Python, so that few-shot draws match lm-evaluation-harness's
 * (GSM8K's shots, {@link gsm8kFewshotIndices}). Only what that needs is implemented.
 */
export class PyRandom {
  private readonly mt = new Uint32Array(N);
  private index = N;

  /**
   * Seeds as `random.Random(seed)` does for an int (negative seeds use their magnitude, as
   * CPython). Throws a RangeError for a seed that is not a safe integer.
   */
  constructor(seed: number) {
    if (!Number.isSafeInteger(seed)) throw new RangeError(`seed must be a safe integer, got ${seed}`);
    this.seedByArray(seedWords(Math.abs(seed)));
  }

  private initGenrand(s: number): void {
    const mt = this.mt;
    mt[0] = s >>> 0;
    for (let i = 1; i < N; i++) {
      const prev = mt[i - 1] ^ (mt[i - 1] >>> 30);
      mt[i] = (Math.imul(1812433253, prev) + i) >>> 0;
    }
    this.index = N;
  }

  private seedByArray(key: number[]): void {
    const mt = this.mt;
    this.initGenrand(19650218);
    let i = 1;
    let j = 0;
    for (let k = Math.max(N, key.length); k > 0; k--) {
      const prev = mt[i - 1] ^ (mt[i - 1] >>> 30);
      mt[i] = ((mt[i] ^ Math.imul(prev, 1664525)) + key[j] + j) >>> 0;
      i++;
      j++;
      if (i >= N) {
        mt[0] = mt[N - 1];
        i = 1;
      }
      if (j >= key.length) j = 0;
    }
    for (let k = N - 1; k > 0; k--) {
      const prev = mt[i - 1] ^ (mt[i - 1] >>> 30);
      mt[i] = ((mt[i] ^ Math.imul(prev, 1566083941)) - i) >>> 0;
      i++;
      if (i >= N) {
        mt[0] = mt[N - 1];
        i = 1;
      }
    }
    mt[0] = 0x80000000;
  }

  private twist(): void {
    const mt = this.mt;
    for (let kk = 0; kk < N; kk++) {
      const y = (mt[kk] & 0x80000000) | (mt[(kk + 1) % N] & 0x7fffffff);
      mt[kk] = mt[(kk + M) % N] ^ (y >>> 1) ^ (y & 1 ? 0x9908b0df : 0);
    }
    this.index = 0;
  }

  /** One tempered 32-bit output (CPython's genrand_uint32). */
  nextUint32(): number {
    if (this.index >= N) this.twist();
    let y = this.mt[this.index++];
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  }

  /** `getrandbits(k)` for 1 ≤ k ≤ 32. */
  getrandbits(k: number): number {
    if (!(k >= 1 && k <= 32)) throw new RangeError(`getrandbits supports 1..32 bits, got ${k}`);
    return this.nextUint32() >>> (32 - k);
  }

  /** `_randbelow(n)`: uniform in [0, n) by rejection on bit_length(n) bits. */
  randbelow(n: number): number {
    if (!(Number.isInteger(n) && n > 0 && n <= 0xffffffff)) throw new RangeError(`randbelow(${n})`);
    const k = 32 - Math.clz32(n);
    let r = this.getrandbits(k);
    while (r >= n) r = this.getrandbits(k);
    return r;
  }

  /** Indices of `random.sample(range(n), k)`, in the order CPython returns them. */
  sampleIndices(n: number, k: number): number[] {
    if (!(Number.isInteger(k) && k >= 0 && k <= n))
      throw new RangeError(`sample larger than population (${k} > ${n})`);
    const result: number[] = new Array(k);
    let setsize = 21;
    if (k > 5) setsize += 4 ** Math.ceil(Math.log(k * 3) / Math.log(4));
    if (n <= setsize) {
      const pool = Array.from({ length: n }, (_, i) => i);
      for (let i = 0; i < k; i++) {
        const j = this.randbelow(n - i);
        result[i] = pool[j];
        pool[j] = pool[n - i - 1];
      }
    } else {
      const selected = new Set<number>();
      for (let i = 0; i < k; i++) {
        let j = this.randbelow(n);
        while (selected.has(j)) j = this.randbelow(n);
        selected.add(j);
        result[i] = j;
      }
    }
    return result;
  }
}

/** The seed's magnitude as little-endian 32-bit words (at least one), as CPython's seeding splits it. */
function seedWords(seed: number): number[] {
  const words: number[] = [];
  let rest = seed;
  do {
    words.push(rest % 0x100000000);
    rest = Math.floor(rest / 0x100000000);
  } while (rest > 0);
  return words;
}
