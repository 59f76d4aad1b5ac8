import { isGradEnabled } from './runtime.js';
import type { GradNode, Tensor } from './tensor.js';

/**
 * Attaches an autograd record to `out` when grad mode is on and any input requires a gradient.
 * `backward` maps the gradient of `out` to one gradient per input (null where none is needed); it
 * runs with grad recording off and may return `grad` itself.
 */
export function record(
  out: Tensor,
  op: string,
  inputs: readonly Tensor[],
  backward: (grad: Tensor) => readonly (Tensor | null)[],
  backwardOnto?: GradNode['backwardOnto'],
): Tensor {
  if (isGradEnabled() && inputs.some((t) => t.requiresGrad)) {
    out.requiresGrad = true;
    out.node = { op, inputs, backward, backwardOnto };
  }
  return out;
}
