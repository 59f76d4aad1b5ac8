import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { separateShaderCacheByVectorWidth } from '../src/device/shader-cache.js';
import { runNodeModule } from './child-node.js';
import { useGpu } from './gpu.js';

describe('separateShaderCacheByVectorWidth', () => {
  it('gives each LP_NATIVE_VECTOR_WIDTH a cache directory of its own', () => {
    const env: NodeJS.ProcessEnv = { LP_NATIVE_VECTOR_WIDTH: '512', XDG_CACHE_HOME: '/c' };
    expect(separateShaderCacheByVectorWidth(env)).toBe('/c/mesa_shader_cache_lp512');
    expect(env.MESA_SHADER_CACHE_DIR).toBe('/c/mesa_shader_cache_lp512');
    const home: NodeJS.ProcessEnv = { LP_NATIVE_VECTOR_WIDTH: ' 256 ', HOME: '/h' };
    separateShaderCacheByVectorWidth(home);
    expect(home.MESA_SHADER_CACHE_DIR).toBe('/h/.cache/mesa_shader_cache_lp256');
  });

  it("leaves the default width and the user's own cache settings alone", () => {
    for (const env of [
      { HOME: '/h' },
      { LP_NATIVE_VECTOR_WIDTH: '', HOME: '/h' },
      { LP_NATIVE_VECTOR_WIDTH: '512', MESA_SHADER_CACHE_DIR: '/mine' },
      { LP_NATIVE_VECTOR_WIDTH: '512', MESA_SHADER_CACHE_DISABLE: 'true' },
    ] as NodeJS.ProcessEnv[]) {
      const before = { ...env };
      expect(separateShaderCacheByVectorWidth(env)).toBeNull();
      expect(env).toEqual(before);
    }
  });
});

/** float64 causal attention, [1, H, T, D] heads-first, scale 1/sqrt(D). */
function attention64(q: number[], k: number[], v: number[], H: number, T: number, D: number): number[] {
  const out = new Array<number>(H * T * D).fill(0);
  for (let h = 0; h < H; h++)
    for (let t = 0; t < T; t++) {
      const row = (x: number[], j: number) => x.slice((h * T + j) * D, (h * T + j + 1) * D);
      const qt = row(q, t);
      const s = Array.from(
        { length: t + 1 },
        (_, j) => row(k, j).reduce((a, kj, d) => a + kj * qt[d], 0) / Math.sqrt(D),
      );
      const m = Math.max(...s);
      const p = s.map((x) => Math.exp(x - m));
      const l = p.reduce((a, b) => a + b, 0);
      for (let j = 0; j <= t; j++) {
        const vj = row(v, j);
        for (let d = 0; d < D; d++) out[(h * T + t) * D + d] += (p[j] / l) * vj[d];
      }
    }
  return out;
}

describe("llvmpipe's shader cache across vector widths", () => {
  const gpu = useGpu();
  const cache = mkdtempSync(join(tmpdir(), 'sl-shader-cache-'));
  afterAll(() => rmSync(cache, { recursive: true, force: true }));
  const [H, T, D] = [2, 21, 8];
  const n = H * T * D;
  const values = (seed: number) => Array.from({ length: n }, (_, i) => Math.sin(seed * 7.1 + i * 0.37));
  const [q, k, v] = [values(1), values(2), values(3)];

  /** Attention in a fresh Node through the built package, sharing one cache root; its output and subgroup size. */
  function run(width?: string): { out: number[]; sg: number } {
    const env: NodeJS.ProcessEnv = { ...process.env, XDG_CACHE_HOME: cache };
    for (const name of ['MESA_SHADER_CACHE_DIR', 'MESA_SHADER_CACHE_DISABLE', 'LP_NATIVE_VECTOR_WIDTH'])
      delete env[name];
    if (width) env.LP_NATIVE_VECTOR_WIDTH = width;
    const dist = new URL('../dist/node.js', import.meta.url).href;
    const t = (x: number[]) => `tensor(${JSON.stringify(x)}, [1, ${H}, ${T}, ${D}])`;
    const code = `import { init, scaledDotProductAttention, shutdown, tensor } from ${JSON.stringify(dist)};
      const dev = await init();
      const out = await scaledDotProductAttention(${t(q)}, ${t(k)}, ${t(v)}, { causal: true }).data();
      console.log(JSON.stringify({ out: Array.from(out), sg: dev.info.subgroupMinSize ?? 0 }));
      shutdown();`;
    const r = runNodeModule(code, env, 300_000);
    expect(r.status, r.stderr).toBe(0);
    return JSON.parse(r.stdout.trim().split('\n').at(-1) as string);
  }

  it('computes right at 512-bit vectors after kernels were cached at the default width', () => {
    const dev = gpu.device();
    // Only llvmpipe reads LP_NATIVE_VECTOR_WIDTH; its subgroups are 8 lanes wide by default.
    if (!dev.info.isSoftware || dev.info.subgroupMinSize !== 8) return;
    const want = attention64(q, k, v, H, T, D);
    const err = (got: number[]) => Math.max(...got.map((x, i) => Math.abs(x - want[i])));
    const first = run();
    expect(first.sg).toBe(8);
    expect(err(first.out)).toBeLessThan(1e-5);
    // Same kernels, 16-lane subgroups: from the same cache they kept 8-lane broadcasts.
    const wide = run('512');
    expect(wide.sg).toBe(16);
    expect(err(wide.out)).toBeLessThan(1e-5);
  });
});
