/** Base class of every error raised by @sharelora/core; `code` is stable for programs to branch on. */
export class ShareloraError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** No WebGPU adapter could be obtained; the message says how to get one. */
export class NoAdapterError extends ShareloraError {
  constructor(detail: string) {
    super(
      'NO_ADAPTER',
      `No WebGPU adapter available (${detail}). On Linux without a GPU run \`bash scripts/setup-webgpu.sh\` ` +
        '(installs Mesa lavapipe >= 24 from bookworm-backports); in a browser enable WebGPU.',
    );
  }
}

/** Shapes of operands are incompatible for the requested op. */
export class ShapeError extends ShareloraError {
  constructor(message: string) {
    super('SHAPE', message);
  }
}

/** A tensor has a dtype the op does not accept. */
export class DTypeError extends ShareloraError {
  constructor(message: string) {
    super('DTYPE', message);
  }
}

/** The GPU device was lost or reported a validation / out-of-memory error. */
export class DeviceError extends ShareloraError {
  constructor(
    code: 'DEVICE_LOST' | 'GPU_VALIDATION' | 'GPU_OOM' | 'GPU_INTERNAL' | 'LIMIT' | 'PROFILE',
    message: string,
  ) {
    super(code, message);
  }
}

/** A tensor was used after dispose(). */
export class DisposedError extends ShareloraError {
  constructor(what: string) {
    super('DISPOSED', `${what} was used after it was disposed`);
  }
}
