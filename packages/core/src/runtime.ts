import type { Device } from './device/device.js';
import { ShareloraError } from './errors.js';
import type { Tensor } from './tensor.js';

/**
 * Process-wide state: the current device, the stack of tidy scopes and the grad mode. Ops are
 * synchronous (they only record GPU work), so a plain stack is enough for scopes.
 */
let current: Device | null = null;
const scopes: Set<Tensor>[] = [];
let gradEnabled = true;

/**
 * Makes `d` the current device, which every op and new tensor uses, or clears it with null. `init()`
 * (from `@sharelora/core/node`) and {@link initBrowser} call it; call it yourself to switch between
 * devices made with {@link Device.fromGPU}. The previous device is neither destroyed nor flushed,
 * and tensors stay on the device that created them: do not mix tensors of two devices in one op.
 */
export function setDevice(d: Device | null): void {
  current = d;
}

/**
 * The current device. Throws {@link ShareloraError} with code `NO_DEVICE` when none is set or it was
 * destroyed (call `init()` or {@link initBrowser} first); {@link hasDevice} asks without throwing.
 */
export function getDevice(): Device {
  if (!current || current.isDestroyed) {
    throw new ShareloraError('NO_DEVICE', 'no WebGPU device: call init() from @sharelora/core first');
  }
  return current;
}

/**
 * Whether a current device is set and not destroyed, i.e. whether {@link getDevice} would succeed
 * (a lost device still counts: its next use throws {@link DeviceError} `DEVICE_LOST`).
 */
export function hasDevice(): boolean {
  return current !== null && !current.isDestroyed;
}

/** Called by every new tensor so the innermost tidy() scope can dispose it. */
export function trackTensor(t: Tensor): void {
  scopes[scopes.length - 1]?.add(t);
}

/** Removes a tensor from every open scope so it survives them (parameters, gradients, optimizer state). */
export function keep<T extends Tensor>(t: T): T {
  for (const s of scopes) s.delete(t);
  return t;
}

/** The tensors of `scope` that `value` holds (itself, or inside arrays and plain objects). */
function collect(value: unknown, scope: ReadonlySet<unknown>, out: Set<Tensor>): void {
  if (scope.has(value)) out.add(value as Tensor);
  else if (Array.isArray(value)) for (const v of value) collect(v, scope, out);
  else if (value && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    for (const v of Object.values(value)) collect(v, scope, out);
  }
}

/**
 * Runs `fn` and disposes every tensor created inside it except those it returns (in a value, array or
 * plain object) and those passed to keep(). Returned tensors move to the enclosing scope.
 */
export function tidy<T>(fn: () => T): T {
  const scope = new Set<Tensor>();
  scopes.push(scope);
  let result: T;
  try {
    result = fn();
  } finally {
    scopes.pop();
  }
  const survivors = new Set<Tensor>();
  collect(result, scope, survivors);
  for (const t of scope) if (!survivors.has(t)) t.dispose();
  const parent = scopes[scopes.length - 1];
  if (parent) for (const t of survivors) parent.add(t);
  return result;
}

/**
 * Whether ops record autograd: false inside {@link noGrad}, and so while {@link backward} runs the
 * backward rules. An op records only when this is true and one of its inputs requires grad.
 */
export function isGradEnabled(): boolean {
  return gradEnabled;
}

/** Runs `fn` without recording operations for autograd (inference, optimizer updates, backward rules). */
export function noGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}
