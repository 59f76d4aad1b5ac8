export { subgroupWidth } from '../rows.js';
export { DecodeParams, type Expr, PARAM_HEADER } from './params.js';
export { type DecodeDispatch, DecodeProgram, uploadWeightTexture } from './program.js';
export {
  type AttendPhase,
  attendPhase,
  type CacheShape,
  cacheElements,
  type DecodeBinding,
  decodeKernel,
  embedPhase,
  type HeadsExpr,
  historyOffset,
  inOrder,
  type MatvecPhase,
  matvecPhase,
  ROW_WORDS,
  type RopeCachePhase,
  ropeCachePhase,
  STATE_HEADER,
  samplePhase,
  type WeightDType,
  type WeightRef,
  weightArrayType,
} from './wgsl.js';
