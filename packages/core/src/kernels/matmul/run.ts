import type { Tensor } from '../../tensor.js';
import { runKernel, storageDecl } from '../common.js';

export interface MatmulDispatch {
  M: number;
  N: number;
  K: number;
  batch: number;
  transA: boolean;
  transB: boolean;
  /** Elements between consecutive batch matrices (0 broadcasts one matrix over the batch). */
  strideA: number;
  strideB: number;
  strideC: number;
}

/** Records C = op(A)·op(B) for row-major operands. */
export function runMatmul(a: Tensor, b: Tensor, c: Tensor, d: MatmulDispatch): void {
  const aIdx = d.transA ? 'k * P.M + m' : 'm * P.K + k';
  const bIdx = d.transB ? 'n * P.K + k' : 'k * P.N + n';
  runKernel({
    key: `matmul_naive:${d.transA}:${d.transB}`,
    wgsl: () => `${storageDecl(0, 'A', 'f32', 'read')}
${storageDecl(1, 'B', 'f32', 'read')}
${storageDecl(2, 'C', 'f32', 'read_write')}
PARAMS
@compute @workgroup_size(8, 8)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  let n = id.x; let m = id.y; let bz = id.z;
  if (m >= P.M || n >= P.N) { return; }
  let ao = bz * P.sa; let bo = bz * P.sb;
  var acc = 0.0;
  for (var k = 0u; k < P.K; k++) { acc += A[ao + ${aIdx}] * B[bo + ${bIdx}]; }
  C[bz * P.sc + m * P.N + n] = acc;
}`,
    inputs: [a, b],
    outputs: [c],
    uniforms: [
      ['M', 'u32', d.M],
      ['N', 'u32', d.N],
      ['K', 'u32', d.K],
      ['sa', 'u32', d.strideA],
      ['sb', 'u32', d.strideB],
      ['sc', 'u32', d.strideC],
    ],
    workgroups: [Math.ceil(d.N / 8), Math.ceil(d.M / 8), d.batch],
  });
}
