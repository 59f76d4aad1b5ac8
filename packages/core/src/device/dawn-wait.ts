/**
 * Waiting for Dawn in Node without spinning a core.
 *
 * While any of its promises is pending, dawn.node (npm `webgpu`) polls Dawn's events from a
 * setImmediate loop, so awaiting GPU work keeps the Node main thread busy the whole time. With a
 * software adapter (lavapipe) the GPU work itself runs on the same CPU cores: on a two-core machine
 * the poller took about 75% of one core from lavapipe's threads, and twenty 1024³ products took
 * 1.9 s instead of 1.1 s. Here the wait blocks the main thread between polls with Atomics.wait, for
 * 0.05 ms at first and doubling to 1 ms, so short waits stay short and long ones cost almost no CPU.
 */

const MAX_PAUSE_MS = 1;
const FIRST_PAUSE_MS = 0.05;
const cell = new Int32Array(new SharedArrayBuffer(4));

/** Resolves as `p` does, pausing the event loop between Dawn's polls instead of spinning. */
export async function waitWithoutSpinning<T>(p: Promise<T>): Promise<T> {
  let pending = true;
  let pause = FIRST_PAUSE_MS;
  const tick = () => {
    if (!pending) return;
    // Nothing ever notifies the cell: this is a sleep that blocks only this (the main) thread.
    Atomics.wait(cell, 0, 0, pause);
    pause = Math.min(MAX_PAUSE_MS, pause * 2);
    setImmediate(tick);
  };
  setImmediate(tick);
  try {
    return await p;
  } finally {
    pending = false;
  }
}
