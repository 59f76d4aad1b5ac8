import { bindAutogradOps } from '../autograd.js';
import { onesLike } from './creation.js';
import { add, div, equal, mul, scale } from './elementwise.js';
import { bindReduceOps } from './reduce.js';

bindAutogradOps(onesLike, add);
bindReduceOps({ add, mul, div, equal, scale });

export * from './attention.js';
export * from './creation.js';
export * from './dropout.js';
export * from './elementwise.js';
export * from './embedding.js';
export * from './loss.js';
export * from './matmul.js';
export * from './norm.js';
export * from './reduce.js';
export * from './rope.js';
export * from './shape-ops.js';
export * from './softmax.js';
