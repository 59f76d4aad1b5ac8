import type { Tensor } from '../tensor.js';
import { add } from './elementwise.js';

/**
 * prior + t (t is consumed), or t itself without a prior: a gradient summed onto the one other uses
 * gave the same input, in rules that take a prior (see GradNode.backwardOnto).
 */
export function sumOnto(prior: Tensor | null, t: Tensor): Tensor {
  if (!prior) return t;
  const s = add(prior, t);
  t.dispose();
  return s;
}
