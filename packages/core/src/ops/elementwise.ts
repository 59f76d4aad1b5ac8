import { assertDType, type DType, type HalfDType, isHalf } from '../dtype.js';
import { ShapeError } from '../errors.js';
import {
  elementWindows,
  grid,
  HALF_BITS,
  main1d,
  runKernel,
  storageDecl,
  type UniformField,
  uarr,
} from '../kernels/common.js';
import { record } from '../record.js';
import { broadcastShapes, broadcastStrides, fmt, numel, shapesEqual } from '../shape.js';
import { Tensor } from '../tensor.js';
import { sumToShape } from './reduce-kernels.js';

/** Shared WGSL helpers: numerically safe tanh/sigmoid and erf (Abramowitz–Stegun 7.1.26, |error| < 1.5e-7). */
const MATH = `
fn safe_tanh(x: f32) -> f32 { let e = exp(-2.0 * abs(x)); return sign(x) * (1.0 - e) / (1.0 + e); }
// One exp and no branch (llvmpipe runs both sides of a divergent branch): e = exp(-|x|) is exp(-x)
// for x >= 0 and exp(x) below, so both quotients are the two-sided formula's to the bit.
fn sigmoid(x: f32) -> f32 { let e = exp(-abs(x)); let d = 1.0 + e; return select(e / d, 1.0 / d, x >= 0.0); }
fn erf_(x: f32) -> f32 {
  let t = 1.0 / (1.0 + 0.3275911 * abs(x));
  let y = 1.0 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * exp(-x * x);
  return sign(x) * y;
}
fn gelu_tanh(x: f32) -> f32 { return 0.5 * x * (1.0 + safe_tanh(0.7978845608028654 * (x + 0.044715 * x * x * x))); }
fn gelu_tanh_grad(x: f32) -> f32 {
  let u = 0.7978845608028654 * (x + 0.044715 * x * x * x);
  let t = safe_tanh(u);
  return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * 0.7978845608028654 * (1.0 + 0.134145 * x * x);
}
fn gelu_erf_grad(x: f32) -> f32 { return 0.5 * (1.0 + erf_(x * 0.7071067811865476)) + x * 0.3989422804014327 * exp(-0.5 * x * x); }
fn spow(x: f32, p: f32) -> f32 {
  if (p == 2.0) { return x * x; }
  if (p == 1.0) { return x; }
  if (p == 0.0) { return 1.0; }
  let m = pow(abs(x), p);
  let pi = round(p);
  if (x < 0.0 && pi == p && (i32(pi) & 1) == 1) { return -m; }
  return m;
}
`;

/** The activations and their derivatives as WGSL expressions of `x`. */
const ACTIVATION: Record<Activation, { f: string; df: string }> = {
  relu: { f: 'max(x, 0.0)', df: 'select(0.0, 1.0, x > 0.0)' },
  silu: { f: 'x * sigmoid(x)', df: 'sigmoid(x) * (1.0 + x * (1.0 - sigmoid(x)))' },
  gelu: { f: 'gelu_tanh(x)', df: 'gelu_tanh_grad(x)' },
  gelu_erf: { f: '0.5 * x * (1.0 + erf_(x * 0.7071067811865476))', df: 'gelu_erf_grad(x)' },
};

/** The activations with a fused backward and a gated form ({@link gatedActivation}). */
export type Activation = 'relu' | 'silu' | 'gelu' | 'gelu_erf';

/** Unary ops as WGSL expressions of `x` (input) and `s` (scalar parameter). */
const UNARY: Record<string, string> = {
  neg: '-x',
  exp: 'exp(x)',
  log: 'log(x)',
  sqrt: 'sqrt(x)',
  rsqrt: 'inverseSqrt(x)',
  tanh: 'safe_tanh(x)',
  sigmoid: 'sigmoid(x)',
  relu: ACTIVATION.relu.f,
  silu: ACTIVATION.silu.f,
  gelu: ACTIVATION.gelu.f,
  gelu_erf: ACTIVATION.gelu_erf.f,
  abs: 'abs(x)',
  scale: 'x * s',
  add_scalar: 'x + s',
  pow_scalar: 'spow(x, s)',
  one_minus: '1.0 - x',
  // t * x^s: the derivative of x^p is p * x^(p-1).
  pow_grad: 't * spow(x, s)',
  sign: 'sign(x)',
};

/**
 * Names of the maps {@link _unaryRaw} runs: the forward maps of the unary ops (`neg`, `exp`, `log`,
 * `sqrt`, `rsqrt`, `tanh`, `sigmoid`, `relu`, `silu`, `gelu`, `gelu_erf`, `abs`, `sign`, `scale`,
 * `add_scalar`, `pow_scalar`, `one_minus`) and `pow_grad`, which pow's backward rule uses. The table behind it is typed
 * `Record<string, string>`, so to the compiler this is plain `string`: a misspelt name is not caught
 * when compiling, and its shader fails on the GPU instead.
 */
export type UnaryOp = keyof typeof UNARY;

/**
 * Contiguous elementwise kernels load and store vec4 when the length allows: on software adapters each
 * storage access is a per-lane loop, so a vec4 access moves four elements for about the cost of one.
 * Each operand is read once into a local: reading its four components separately costs four loops.
 */
function vec4Body(inputs: readonly string[], fn: string): string {
  const loads = inputs.map((x, i) => `let v${i} = ${x};`).join(' ');
  const lanes = ['x', 'y', 'z', 'w'].map((c) => `${fn}(${inputs.map((_, i) => `v${i}.${c}`).join(', ')})`);
  return `${loads}
  out[gi] = vec4<f32>(${lanes.join(', ')});`;
}

/**
 * Runs one map of {@link UnaryOp} over an f32 tensor into a new tensor of the same shape, without
 * recording it for autograd: the building block of the unary ops and of backward rules. `s` and `t`
 * are the map's constants (`scale`: x·s, `add_scalar`: x + s, `pow_scalar`: x^s, `pow_grad`:
 * t·x^s). Tensors larger than one storage binding are processed in windows. Throws
 * {@link DTypeError} for other dtypes. The underscore marks it as low level: the public ops
 * ({@link exp}, {@link scale}, ...) compute the same values and record their gradients.
 */
function unaryRaw(op: string, x: Tensor, s = 0, t = 0): Tensor {
  assertDType(x.dtype, ['f32'], op);
  const out = Tensor.empty(x.shape, 'f32');
  const v4 = x.size % 4 === 0;
  const ty = v4 ? 'vec4<f32>' : 'f32';
  for (const [start, len] of elementWindows(x.size)) {
    const n = v4 ? len / 4 : len;
    runKernel({
      key: `unary:${op}:${v4 ? 'v4' : 's'}`,
      wgsl: () => `${storageDecl(0, 'a', ty, 'read')}
${storageDecl(1, 'out', ty, 'read_write')}
PARAMS
${MATH}
fn op_(x: f32) -> f32 { let s = P.s; let t = P.t; return ${UNARY[op]}; }
${main1d()}
  if (gi >= P.n) { return; }
  ${v4 ? vec4Body(['a[gi]'], 'op_') : 'out[gi] = op_(a[gi]);'}
}`,
      inputs: [x.window(start, len)],
      outputs: [out.window(start, len)],
      uniforms: [
        ['n', 'u32', n],
        ['s', 'f32', s],
        ['t', 'f32', t],
      ],
      workgroups: grid(n),
    });
  }
  return out;
}

/** -x elementwise (f32). Gradient: -g. */
export const neg = (x: Tensor): Tensor => record(unaryRaw('neg', x), 'neg', [x], (g) => [unaryRaw('neg', g)]);
/** eˣ elementwise (f32); overflows to Infinity above about 88.7. Gradient: g·eˣ, from the saved output. */
export function exp(x: Tensor): Tensor {
  const out = unaryRaw('exp', x);
  return record(out, 'exp', [x], (g) => [mul(g, out)]);
}
/**
 * Natural logarithm elementwise (f32), unclamped: keep x positive (WGSL leaves log of 0 and of
 * negatives to the implementation). Gradient: g / x.
 */
export const log = (x: Tensor): Tensor => record(unaryRaw('log', x), 'log', [x], (g) => [div(g, x)]);
/**
 * √x elementwise (f32), for x ≥ 0 (WGSL leaves negatives to the implementation). Gradient:
 * g / (2√x), from the saved output, so infinite at 0.
 */
export function sqrt(x: Tensor): Tensor {
  const out = unaryRaw('sqrt', x);
  return record(out, 'sqrt', [x], (g) => [div(unaryRaw('scale', g, 0.5), out)]);
}
/**
 * 1/√x elementwise (f32, WGSL `inverseSqrt`), for x > 0. Gradient: -g·(1/√x)³/2, from the saved
 * output.
 */
export function rsqrt(x: Tensor): Tensor {
  const out = unaryRaw('rsqrt', x);
  return record(out, 'rsqrt', [x], (g) => {
    const cube = unaryRaw('pow_scalar', out, 3);
    const r = mul(g, cube);
    cube.dispose();
    const res = unaryRaw('scale', r, -0.5);
    r.dispose();
    return [res];
  });
}
/**
 * Hyperbolic tangent elementwise (f32), computed from e^(-2|x|) so large |x| saturates to ±1
 * instead of overflowing. Gradient: g·(1 - tanh²x), from the saved output.
 */
export function tanh(x: Tensor): Tensor {
  const out = unaryRaw('tanh', x);
  return record(out, 'tanh', [x], (g) => {
    const sq = mul(out, out);
    const one = unaryRaw('one_minus', sq);
    sq.dispose();
    const r = mul(g, one);
    one.dispose();
    return [r];
  });
}
/**
 * Logistic function 1/(1 + e^(-x)) elementwise (f32), evaluated in the form that cannot overflow
 * for either sign of x. Gradient: g·σ(x)·(1 - σ(x)), from the saved output.
 */
export function sigmoid(x: Tensor): Tensor {
  const out = unaryRaw('sigmoid', x);
  return record(out, 'sigmoid', [x], (g) => {
    const om = unaryRaw('one_minus', out);
    const d = mul(out, om);
    const r = mul(g, d);
    om.dispose();
    d.dispose();
    return [r];
  });
}

// The backward pass is one binary map, g·act'(x) (`<act>_bwd` of x and g), not a derivative
// pass and a product pass.
function activation(op: Activation) {
  return (x: Tensor): Tensor => record(unaryRaw(op, x), op, [x], (g) => [binaryRaw(`${op}_bwd`, x, g)]);
}
/** max(x, 0) elementwise (f32). Gradient: g where x > 0, else 0 (0 at x = 0). */
export const relu = activation('relu');
/**
 * SiLU (swish), x·σ(x) elementwise (f32): the gate activation of LLaMA's MLP. Gradient:
 * g·σ(x)·(1 + x·(1 - σ(x))).
 */
export const silu = activation('silu');
/** GELU, tanh approximation (GPT-2's gelu_new). */
export const gelu = activation('gelu');
/** GELU, exact erf form (BERT/RoBERTa). */
export const geluErf = activation('gelu_erf');

/**
 * act(gate)·up elementwise for two tensors of one shape (f32): the gated MLP unit of LLaMA (SwiGLU,
 * act 'silu') and GeGLU models, as one pass forward and one backward, where the activation and the
 * product separately take two forward and four backward passes. Gradients: g·act'(gate)·up for gate,
 * g·act(gate) for up.
 */
export function gatedActivation(gate: Tensor, up: Tensor, act: Activation): Tensor {
  if (!shapesEqual(gate.shape, up.shape))
    throw new ShapeError(`gatedActivation: gate ${fmt(gate.shape)} and up ${fmt(up.shape)} differ`);
  return record(binaryRaw(`${act}_mul`, gate, up), `gated_${act}`, [gate, up], (g) => {
    const [dGate, dUp] = gatedBackward(gate, up, g, act);
    if (!up.requiresGrad) dUp.dispose();
    if (!gate.requiresGrad) dGate.dispose();
    return [gate.requiresGrad ? dGate : null, up.requiresGrad ? dUp : null];
  });
}

/** Both gradients of act(x)·u for upstream g in one pass over the three tensors. */
function gatedBackward(x: Tensor, u: Tensor, g: Tensor, act: Activation): [Tensor, Tensor] {
  const dx = Tensor.empty(x.shape, 'f32');
  const du = Tensor.empty(x.shape, 'f32');
  const v4 = x.size % 4 === 0;
  const ty = v4 ? 'vec4<f32>' : 'f32';
  const { f, df } = ACTIVATION[act];
  for (const [start, len] of elementWindows(x.size)) {
    const n = v4 ? len / 4 : len;
    runKernel({
      key: `gated_bwd:${act}:${v4 ? 'v4' : 's'}`,
      wgsl: () => `${storageDecl(0, 'X', ty, 'read')}
${storageDecl(1, 'U', ty, 'read')}
${storageDecl(2, 'G', ty, 'read')}
${storageDecl(3, 'DX', ty, 'read_write')}
${storageDecl(4, 'DU', ty, 'read_write')}
PARAMS
${MATH}
fn act_(x: f32) -> f32 { return ${f}; }
fn dact_(x: f32) -> f32 { return ${df}; }
${main1d()}
  if (gi >= P.n) { return; }
  let x = X[gi];
  let g = G[gi];
  ${
    v4
      ? `DX[gi] = vec4<f32>(dact_(x.x), dact_(x.y), dact_(x.z), dact_(x.w)) * U[gi] * g;
  DU[gi] = vec4<f32>(act_(x.x), act_(x.y), act_(x.z), act_(x.w)) * g;`
      : `DX[gi] = dact_(x) * U[gi] * g;
  DU[gi] = act_(x) * g;`
  }
}`,
      inputs: [x.window(start, len), u.window(start, len), g.window(start, len)],
      outputs: [dx.window(start, len), du.window(start, len)],
      uniforms: [['n', 'u32', n]],
      workgroups: grid(n),
    });
  }
  return [dx, du];
}

/** |x| elementwise (f32). Gradient: g·sign(x), so 0 at x = 0. */
export function abs(x: Tensor): Tensor {
  return record(unaryRaw('abs', x), 'abs', [x], (g) => {
    const s = unaryRaw('sign', x);
    const r = mul(g, s);
    s.dispose();
    return [r];
  });
}
/** x * s for a constant s. */
export const scale = (x: Tensor, s: number): Tensor =>
  record(unaryRaw('scale', x, s), 'scale', [x], (g) => [unaryRaw('scale', g, s)]);
/**
 * x + s for a constant s (f32), without allocating a tensor for s; with {@link scale}, the affine
 * map of a tensor by plain numbers. Gradient: g passes through.
 */
export const addScalar = (x: Tensor, s: number): Tensor =>
  record(unaryRaw('add_scalar', x, s), 'add_scalar', [x], (g) => [g]);
/** x^p for a constant p (negative x allowed when p is an integer). */
export function powScalar(x: Tensor, p: number): Tensor {
  return record(unaryRaw('pow_scalar', x, p), 'pow_scalar', [x], (g) => {
    const d = unaryRaw('pow_grad', x, p - 1, p);
    const r = mul(g, d);
    d.dispose();
    return [r];
  });
}

// ---- binary ops with numpy broadcasting ----

const BINARY: Record<string, string> = {
  add: 'x + y',
  sub: 'x - y',
  mul: 'x * y',
  div: 'x / y',
  pow: 'spow(x, y)',
  maximum: 'max(x, y)',
  minimum: 'min(x, y)',
  ge: 'select(0.0, 1.0, x >= y)',
  gt: 'select(0.0, 1.0, x > y)',
  eq: 'select(0.0, 1.0, x == y)',
  // act'(x)·y (an activation's backward, y the gradient) and act(x)·y (a gated product).
  ...Object.fromEntries(
    Object.entries(ACTIVATION).flatMap(([name, { f, df }]) => [
      [`${name}_bwd`, `(${df}) * y`],
      [`${name}_mul`, `(${f}) * y`],
    ]),
  ),
};

const MAX_RANK = 8;

/** Uniforms + WGSL index math mapping the flat output index to both operands' flat indices. */
function broadcastIndexing(
  outShape: number[],
  inputs: readonly (readonly number[])[],
): { fields: UniformField[]; code: string } {
  const r = outShape.length;
  if (r > MAX_RANK) throw new ShapeError(`broadcasting supports rank <= ${MAX_RANK}, got ${fmt(outShape)}`);
  const fields: UniformField[] = [['oshape', 'vec4u', outShape]];
  for (const [k, s] of inputs.entries()) fields.push([`st${k}`, 'vec4u', broadcastStrides(s, outShape)]);
  const lines = inputs.map((_, k) => `var i${k} = 0u;`);
  lines.push('var rem = gi;');
  lines.push(`for (var d = ${r - 1}; d >= 0; d--) {`);
  lines.push(`  let dim = ${uarr('oshape', 'u32(d)')};`);
  lines.push('  let c = rem % dim; rem = rem / dim;');
  for (let k = 0; k < inputs.length; k++) lines.push(`  i${k} += c * ${uarr(`st${k}`, 'u32(d)')};`);
  lines.push('}');
  return { fields, code: lines.join('\n  ') };
}

/**
 * `indexing` sets i0 and i1, the operands' indices for output element gi (null: both gi). `ty` is
 * the element type of all three arrays (vec4<f32>: four elements per index, the map applied to each).
 */
function binaryWgsl(op: string, indexing: string | null, ty = 'f32'): string {
  return `${storageDecl(0, 'A', ty, 'read')}
${storageDecl(1, 'B', ty, 'read')}
${storageDecl(2, 'out', ty, 'read_write')}
PARAMS
${MATH}
fn op_(x: f32, y: f32) -> f32 { return ${BINARY[op]}; }
${main1d()}
  if (gi >= P.n) { return; }
  ${indexing ?? 'let i0 = gi; let i1 = gi;'}
  ${ty === 'vec4<f32>' ? vec4Body(['A[i0]', 'B[i1]'], 'op_') : 'out[gi] = op_(A[i0], B[i1]);'}
}`;
}

/**
 * Elements of `t` when its shape, leading 1s dropped, is a suffix of `outShape` (a bias row against
 * activations): its element for output element i is then t[i % size], one modulo instead of the
 * general per-dimension index arithmetic. 0 when it is not.
 */
function suffixSize(t: readonly number[], outShape: readonly number[]): number {
  const dims = t.slice(t.findIndex((d) => d !== 1));
  if (t.every((d) => d === 1) || dims.length > outShape.length) return 0;
  return shapesEqual(dims, outShape.slice(outShape.length - dims.length)) ? numel(dims) : 0;
}

/**
 * Runs one binary map over two f32 tensors with numpy broadcasting into a new tensor, without
 * recording it for autograd: the building block of {@link add}, {@link sub}, {@link mul},
 * {@link div}, {@link pow}, {@link maximum}, {@link greaterEqual} and {@link equal} and of their
 * backward rules. `op` is one of `add`, `sub`, `mul`, `div`, `pow`, `maximum`, `minimum`, `ge`,
 * `gt`, `eq` (the comparisons give 1.0 or 0.0); it is not checked, and an unknown name makes a
 * shader that fails on the GPU. Shapes, dtypes and errors as {@link add}. The underscore marks it
 * as low level: the public ops compute the same values and record their gradients.
 */
function binaryRaw(op: string, a: Tensor, b: Tensor): Tensor {
  assertDType(a.dtype, ['f32'], op);
  assertDType(b.dtype, ['f32'], op);
  const outShape = broadcastShapes(a.shape, b.shape, op);
  const out = Tensor.empty(outShape, 'f32');
  if (out.size === 0) return out;
  const same = shapesEqual(a.shape, b.shape);
  const scalarB = b.size === 1;
  const mode = same ? 'same' : scalarB ? 'sb' : `bc${outShape.length}`;
  const bi = same || scalarB ? null : broadcastIndexing(outShape, [a.shape, b.shape]);
  if (same) {
    const v4 = out.size % 4 === 0;
    for (const [start, len] of elementWindows(out.size)) {
      const n = v4 ? len / 4 : len;
      runKernel({
        key: `binary:${op}:same:${v4 ? 'v4' : 's'}`,
        wgsl: () => binaryWgsl(op, null, v4 ? 'vec4<f32>' : 'f32'),
        inputs: [a.window(start, len), b.window(start, len)],
        outputs: [out.window(start, len)],
        uniforms: [['n', 'u32', n]],
        workgroups: grid(n),
      });
    }
    return out;
  }
  // One operand whole, the other repeating along the leading dims: vec4 when its rows allow.
  const sa = a.size === out.size ? 0 : suffixSize(a.shape, outShape);
  const sb = b.size === out.size ? 0 : suffixSize(b.shape, outShape);
  if (!scalarB && (sa === 0) !== (sb === 0)) {
    const period = sa || sb;
    const v4 = period % 4 === 0;
    const n = v4 ? out.size / 4 : out.size;
    const at = (rep: number) => (rep ? 'gi % P.period' : 'gi');
    runKernel({
      key: `binary:${op}:suffix${sa ? 'A' : 'B'}:${v4 ? 'v4' : 's'}`,
      wgsl: () => binaryWgsl(op, `let i0 = ${at(sa)}; let i1 = ${at(sb)};`, v4 ? 'vec4<f32>' : 'f32'),
      inputs: [a, b],
      outputs: [out],
      uniforms: [
        ['n', 'u32', n],
        ['period', 'u32', v4 ? period / 4 : period],
      ],
      workgroups: grid(n),
    });
    return out;
  }
  runKernel({
    key: `binary:${op}:${mode}`,
    wgsl: () => binaryWgsl(op, bi ? bi.code : 'let i0 = gi; let i1 = 0u;'),
    inputs: [a, b],
    outputs: [out],
    uniforms: [['n', 'u32', out.size], ...(bi ? bi.fields : [])],
    workgroups: grid(out.size),
  });
  return out;
}

/** Reduces `g` to `like`'s shape (undoing broadcasting), reusing `g` when no reduction is needed. */
function unbroadcast(g: Tensor, like: Tensor): Tensor {
  return shapesEqual(g.shape, like.shape) ? g : sumToShape(g, like.shape);
}

// Frozen operands (a layer's bias under LoRA) get no gradient: no column reduction is run for them.
/**
 * a + b elementwise with numpy broadcasting: shapes are aligned from the last dim, and each pair of
 * dims must be equal or one of them 1 (at most rank 8 when the shapes differ). f32 only: throws
 * {@link DTypeError} for other dtypes and {@link ShapeError} for shapes that do not broadcast.
 * Same-shape operands larger than one storage binding are processed in windows; a broadcast must
 * fit in one binding, or the dispatch throws {@link DeviceError} `LIMIT`.
 *
 * Gradient: g, summed back over the broadcast dims to each operand's shape. An operand that does not
 * require grad (a frozen bias) gets none, and no reduction is run for it.
 */
export function add(a: Tensor, b: Tensor): Tensor {
  return record(binaryRaw('add', a, b), 'add', [a, b], (g) => [
    a.requiresGrad ? unbroadcast(g, a) : null,
    b.requiresGrad ? unbroadcast(g, b) : null,
  ]);
}
/**
 * a - b elementwise; broadcasting, dtypes and errors as {@link add}. Gradient: g for a and -g for b,
 * each summed back to its operand's shape, and only for operands that require grad.
 */
export function sub(a: Tensor, b: Tensor): Tensor {
  return record(binaryRaw('sub', a, b), 'sub', [a, b], (g) => {
    if (!b.requiresGrad) return [a.requiresGrad ? unbroadcast(g, a) : null, null];
    const n = unaryRaw('neg', g);
    const gb = unbroadcast(n, b);
    if (gb !== n) n.dispose();
    return [a.requiresGrad ? unbroadcast(g, a) : null, gb];
  });
}
function mulReduce(g: Tensor, other: Tensor, like: Tensor): Tensor {
  const p = binaryRaw('mul', g, other);
  const r = unbroadcast(p, like);
  if (r !== p) p.dispose();
  return r;
}
/**
 * a · b elementwise (Hadamard product, not {@link matmul}); broadcasting, dtypes and errors as
 * {@link add}. Gradient: g·b for a and g·a for b, each summed back to its operand's shape, and only
 * for operands that require grad. For a constant factor, {@link scale} needs no tensor.
 */
export function mul(a: Tensor, b: Tensor): Tensor {
  return record(binaryRaw('mul', a, b), 'mul', [a, b], (g) => [
    a.requiresGrad ? mulReduce(g, b, a) : null,
    b.requiresGrad ? mulReduce(g, a, b) : null,
  ]);
}
/**
 * a / b elementwise (IEEE: x/0 is ±Infinity or NaN); broadcasting, dtypes and errors as {@link add}.
 * Gradient: g/b for a and -g·a/b² for b, each summed back to its operand's shape, and only for
 * operands that require grad.
 */
export function div(a: Tensor, b: Tensor): Tensor {
  const out = binaryRaw('div', a, b);
  return record(out, 'div', [a, b], (g) => {
    const ga = a.requiresGrad
      ? (() => {
          const q = binaryRaw('div', g, b);
          const r = unbroadcast(q, a);
          if (r !== q) q.dispose();
          return r;
        })()
      : null;
    // d(a/b)/db = -out / b
    const gb = b.requiresGrad
      ? (() => {
          const q = binaryRaw('div', out, b);
          const p = binaryRaw('mul', g, q);
          q.dispose();
          const n = unaryRaw('neg', p);
          p.dispose();
          const r = unbroadcast(n, b);
          if (r !== n) n.dispose();
          return r;
        })()
      : null;
    return [ga, gb];
  });
}
/** a^b elementwise; the gradient for b assumes a > 0. */
export function pow(a: Tensor, b: Tensor): Tensor {
  const out = binaryRaw('pow', a, b);
  return record(out, 'pow', [a, b], (g) => {
    const ga = a.requiresGrad
      ? (() => {
          const bm1 = unaryRaw('add_scalar', b, -1);
          const pw = binaryRaw('pow', a, bm1);
          const d = binaryRaw('mul', pw, b);
          bm1.dispose();
          pw.dispose();
          const r = mulReduce(g, d, a);
          d.dispose();
          return r;
        })()
      : null;
    const gb = b.requiresGrad
      ? (() => {
          const la = unaryRaw('log', a);
          const d = binaryRaw('mul', out, la);
          la.dispose();
          const r = mulReduce(g, d, b);
          d.dispose();
          return r;
        })()
      : null;
    return [ga, gb];
  });
}
/**
 * The larger of a and b elementwise; broadcasting, dtypes and errors as {@link add}. Gradient: g goes
 * to a where a ≥ b (ties go to a) and to b elsewhere, summed back to each operand's shape.
 */
export function maximum(a: Tensor, b: Tensor): Tensor {
  return record(binaryRaw('maximum', a, b), 'maximum', [a, b], (g) => {
    const m = binaryRaw('ge', a, b);
    const ga = mulReduce(g, m, a);
    const inv = unaryRaw('one_minus', m);
    m.dispose();
    const gb = mulReduce(g, inv, b);
    inv.dispose();
    return [ga, gb];
  });
}
/** 1.0 where a >= b, else 0.0 (no gradient). */
export const greaterEqual = (a: Tensor, b: Tensor): Tensor => binaryRaw('ge', a, b);
/**
 * 1.0 where a == b, else 0.0 (f32; NaN equals nothing), with broadcasting as {@link add}. Not
 * recorded for autograd: the result is a mask, e.g. for {@link where} or {@link maskedFill}, or a
 * count of matches after {@link sum}.
 */
export const equal = (a: Tensor, b: Tensor): Tensor => binaryRaw('eq', a, b);

/** cond ? a : b elementwise with broadcasting; cond is f32 (non-zero = true) or i32. */
export function where(cond: Tensor, a: Tensor, b: Tensor): Tensor {
  assertDType(a.dtype, ['f32'], 'where');
  assertDType(b.dtype, ['f32'], 'where');
  const outShape = broadcastShapes(broadcastShapes(cond.shape, a.shape, 'where'), b.shape, 'where');
  const out = Tensor.empty(outShape, 'f32');
  if (out.size > 0) {
    const bi = broadcastIndexing(outShape, [cond.shape, a.shape, b.shape]);
    const ct = cond.dtype === 'i32' ? 'i32' : 'f32';
    runKernel({
      key: `where:${ct}:${outShape.length}`,
      wgsl: () => `${storageDecl(0, 'C', ct, 'read')}
${storageDecl(1, 'A', 'f32', 'read')}
${storageDecl(2, 'B', 'f32', 'read')}
${storageDecl(3, 'out', 'f32', 'read_write')}
PARAMS
${main1d()}
  if (gi >= P.n) { return; }
  ${bi.code}
  out[gi] = select(B[i2], A[i1], C[i0] != ${ct}(0));
}`,
      inputs: [cond, a, b],
      outputs: [out],
      uniforms: [['n', 'u32', out.size], ...bi.fields],
      workgroups: grid(out.size),
    });
  }
  return record(out, 'where', [a, b], (g) => {
    const z = zerosScalar();
    const wa = a.requiresGrad ? where(cond, g, z) : null;
    const wb = b.requiresGrad ? where(cond, z, g) : null;
    z.dispose();
    const ga = wa ? unbroadcast(wa, a) : null;
    const gb = wb ? unbroadcast(wb, b) : null;
    if (wa && ga !== wa) wa.dispose();
    if (wb && gb !== wb) wb.dispose();
    return [ga, gb];
  });
}

function zerosScalar(value = 0): Tensor {
  const t = Tensor.empty([1], 'f32');
  t.device.write(t.buffer, 0, new Float32Array([value]));
  return t;
}

/** x with `value` where mask is non-zero (mask broadcasts to x). */
export function maskedFill(x: Tensor, mask: Tensor, value: number): Tensor {
  const v = zerosScalar(value);
  const out = where(mask, v, x);
  v.dispose();
  return out;
}

/** WGSL body of a half <-> f32 cast; `v4`: each thread moves eight elements as vec4 words. */
function halfCastBody(half: HalfDType, decode: boolean, v4: boolean): string {
  const dec = (w: string) => `${half}_to_f32(${w} & 0xffffu), ${half}_to_f32(${w} >> 16u)`;
  const enc = (v: string, c: [string, string]) =>
    `f32_to_${half}(${v}.${c[0]}) | (f32_to_${half}(${v}.${c[1]}) << 16u)`;
  if (v4 && decode)
    return `let w = a[gi];
  out[2u * gi] = vec4<u32>(${dec('w.x')}, ${dec('w.y')});
  out[2u * gi + 1u] = vec4<u32>(${dec('w.z')}, ${dec('w.w')});`;
  if (v4)
    return `let p = a[2u * gi];
  let q = a[2u * gi + 1u];
  out[gi] = vec4<u32>(${enc('p', ['x', 'y'])}, ${enc('p', ['z', 'w'])}, ${enc('q', ['x', 'y'])}, ${enc('q', ['z', 'w'])});`;
  // Scalar: one u32 word of the half tensor per thread; P.n counts elements (the last word may hold one).
  if (decode)
    return `let w = a[gi];
  out[2u * gi] = ${half}_to_f32(w & 0xffffu);
  if (2u * gi + 1u < P.n) { out[2u * gi + 1u] = ${half}_to_f32(w >> 16u); }`;
  return `var hi = 0u;
  if (2u * gi + 1u < P.n) { hi = f32_to_${half}(a[2u * gi + 1u]); }
  out[gi] = f32_to_${half}(a[2u * gi]) | (hi << 16u);`;
}

/**
 * Half <-> f32 on the bit patterns (both sides bound as u32). With a multiple of 8 elements (then
 * every window is one too) each thread moves whole vec4 words: on software adapters a storage access
 * costs about the same for a vec4 as for a scalar.
 */
function halfCast(x: Tensor, dtype: DType): Tensor {
  const out = Tensor.empty(x.shape, dtype);
  const decode = isHalf(x.dtype);
  const half = (decode ? x.dtype : dtype) as HalfDType;
  const v4 = x.size % 8 === 0;
  const ty = v4 ? 'vec4<u32>' : 'u32';
  for (const [start, len] of elementWindows(x.size)) {
    const threads = v4 ? len / 8 : Math.ceil(len / 2);
    runKernel({
      key: `cast:${x.dtype}:${dtype}:${v4 ? 'v4' : 's'}`,
      wgsl: () => `${storageDecl(0, 'a', ty, 'read')}
${storageDecl(1, 'out', ty, 'read_write')}
PARAMS
${HALF_BITS}
${main1d()}
  if (gi >= P.threads) { return; }
  ${halfCastBody(half, decode, v4)}
}`,
      inputs: [x.window(start, len)],
      outputs: [out.window(start, len)],
      uniforms: [
        ['threads', 'u32', threads],
        ['n', 'u32', len],
      ],
      workgroups: grid(threads),
    });
  }
  return out;
}

/**
 * Converts between f32, i32, f16 and bf16 (f32 -> i32 truncates toward zero). Half <-> f32 is
 * bit-exact (see HALF_BITS); conversions between a half type and anything but f32 go through f32.
 * Not differentiable for i32.
 */
export function cast(x: Tensor, dtype: DType): Tensor {
  if (x.dtype === dtype) return x.view(x.shape);
  if ((isHalf(x.dtype) || isHalf(dtype)) && x.dtype !== 'f32' && dtype !== 'f32') {
    const mid = cast(x, 'f32');
    const out = cast(mid, dtype);
    mid.dispose();
    return out;
  }
  let out: Tensor;
  if (isHalf(x.dtype) || isHalf(dtype)) out = halfCast(x, dtype);
  else {
    out = Tensor.empty(x.shape, dtype);
    for (const [start, len] of elementWindows(x.size))
      runKernel({
        key: `cast:${x.dtype}:${dtype}`,
        wgsl: () => `${storageDecl(0, 'a', x.dtype, 'read')}
${storageDecl(1, 'out', dtype, 'read_write')}
PARAMS
${main1d()}
  if (gi >= P.n) { return; }
  out[gi] = ${dtype}(a[gi]);
}`,
        inputs: [x.window(start, len)],
        outputs: [out.window(start, len)],
        uniforms: [['n', 'u32', len]],
        workgroups: grid(len),
      });
  }
  if (dtype === 'i32' || x.dtype === 'i32') return out;
  return record(out, 'cast', [x], (g) => [cast(g, x.dtype)]);
}

/** A same-shape copy (autograd passes the gradient through). */
export function clone(x: Tensor): Tensor {
  return record(unaryRaw('scale', x, 1), 'clone', [x], (g) => [g]);
}

export { binaryRaw as _binaryRaw, unaryRaw as _unaryRaw };
