// Reverse-mode differentiation over the records ops attach (record.ts, which the ops import instead
// of this module: backward itself uses ops, and the two would import each other).

import { ShareloraError } from './errors.js';
import { onesLike } from './ops/creation.js';
import { add } from './ops/elementwise.js';
import { keep, noGrad } from './runtime.js';
import type { Tensor } from './tensor.js';

/** Tensors reachable from `root` through autograd records, in topological order (inputs first). Iterative: deep graphs do not overflow the stack. */
function topoOrder(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const state = new Map<Tensor, 1 | 2>();
  const stack: Array<[Tensor, number]> = [[root, 0]];
  state.set(root, 1);
  while (stack.length) {
    const top = stack[stack.length - 1];
    const [t, i] = top;
    const inputs = t.node?.inputs ?? [];
    if (i < inputs.length) {
      top[1]++;
      const inp = inputs[i];
      if (inp.requiresGrad && !state.has(inp)) {
        state.set(inp, 1);
        stack.push([inp, 0]);
      }
    } else {
      stack.pop();
      state.set(t, 2);
      order.push(t);
    }
  }
  return order;
}

/**
 * Reverse-mode differentiation of `root` (a scalar unless `grad` is given). Each tensor's gradient is
 * the sum over all its uses, so a parameter shared by many layers receives the sum of their gradients.
 * Leaf tensors with requiresGrad get `.grad` (accumulated if already set); the graph is then released.
 */
export function backward(root: Tensor, grad?: Tensor): void {
  if (!root.requiresGrad) {
    throw new ShareloraError(
      'NO_GRAD',
      'backward(): the tensor does not require grad (no trainable input reached it)',
    );
  }
  if (!grad && root.size !== 1) {
    throw new ShareloraError(
      'NO_GRAD',
      `backward(): root has ${root.size} elements; pass the upstream gradient`,
    );
  }
  noGrad(() => {
    const order = topoOrder(root);
    const grads = new Map<Tensor, Tensor>();
    const seed = grad ? grad.view(grad.shape) : onesLike(root);
    grads.set(root, seed);
    for (let i = order.length - 1; i >= 0; i--) {
      const t = order[i];
      const g = grads.get(t);
      if (!g) continue;
      grads.delete(t);
      const node = t.node;
      if (!node) {
        // A leaf: store or accumulate (gradient accumulation across micro-batches).
        const leafGrad = t.grad ? add(t.grad, g) : g.view(g.shape);
        if (t.grad && t.grad !== leafGrad) t.grad.dispose();
        t.grad = keep(leafGrad);
        leafGrad.setCategory('gradients');
        g.dispose();
        continue;
      }
      // Gradients other uses already gave the inputs, for a rule that sums onto them itself. An
      // input listed twice gets its prior once: its second result is summed below as usual.
      const prior = node.backwardOnto
        ? node.inputs.map((inp, k) =>
            inp.requiresGrad && node.inputs.indexOf(inp) === k ? (grads.get(inp) ?? null) : null,
          )
        : null;
      const onto = prior?.some((p) => p !== null) ?? false;
      const inGrads = onto && node.backwardOnto && prior ? node.backwardOnto(g, prior) : node.backward(g);
      node.inputs.forEach((inp, k) => {
        const ig = inGrads[k];
        if (!ig || !inp.requiresGrad) return;
        // An alias keeps each map entry independently disposable even when a rule returns `g` twice.
        const own = ig.view(ig.shape);
        const prev = grads.get(inp);
        if (prev && onto && prior?.[k] === prev) {
          grads.set(inp, own);
          prev.dispose();
        } else if (prev) {
          grads.set(inp, add(prev, own));
          prev.dispose();
          own.dispose();
        } else grads.set(inp, own);
      });
      for (const ig of inGrads) if (ig && ig !== g) ig.dispose();
      g.dispose();
    }
    for (const t of order) if (t.node) t.node = null;
  });
}
