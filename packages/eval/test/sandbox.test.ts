import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { PythonSandbox } from '../src/index.js';
import { hasPython } from './data.js';

/** Top-level names the sandbox's root may hold: the system's library paths, /dev, /tmp and the interpreter's installation. */
function allowedRoot(): string[] {
  const r = spawnSync(
    'python3',
    ['-I', '-c', 'import sys; print(sys.executable, sys.prefix, sys.base_prefix)'],
    {
      encoding: 'utf8',
    },
  );
  const interpreter = r.stdout
    .trim()
    .split(' ')
    .map((p) => p.split('/')[1]);
  const system = ['usr', 'bin', 'lib', 'lib32', 'lib64', 'libx32'].filter((d) => existsSync(`/${d}`));
  return [...new Set([...system, 'dev', 'tmp', ...interpreter])];
}

describe.skipIf(!hasPython())('Python sandbox containment', () => {
  // Generous: these check what a program can reach, not speed, and may share the cores with other tests.
  const sandbox = new PythonSandbox({ timeoutMs: 20_000 });

  it('runs a program unprivileged, alone in its PID namespace, seeing only the interpreter, /dev and its /tmp', async () => {
    const r = await sandbox.run(`
import json, os, socket
seen = {'uid': os.getuid(), 'pid': os.getpid(), 'ppid': os.getppid(), 'root': sorted(os.listdir('/')),
        'cwd': os.getcwd(), 'env': dict(os.environ)}
def attempt(name, action):
    try:
        action()
        seen[name] = 'allowed'
    except OSError as e:
        seen[name] = e.strerror
attempt('fork', lambda: os.fork() == 0 and os._exit(0))
attempt('write /usr', lambda: open('/usr/sandbox-probe', 'w'))
attempt('read /etc/passwd', lambda: open('/etc/passwd').read())
attempt('list /proc', lambda: os.listdir('/proc'))
attempt('connect', lambda: socket.create_connection(('1.1.1.1', 53), timeout=2))
print(json.dumps(seen))
`);
    expect(r.exitCode, r.stderr).toBe(0);
    const seen = JSON.parse(r.stdout);
    expect(seen.uid).not.toBe(0);
    expect([seen.pid, seen.ppid]).toEqual([2, 1]);
    expect(seen.cwd).toBe('/tmp');
    expect(Object.keys(seen.env).sort()).toEqual(['HOME', 'LANG', 'OMP_NUM_THREADS', 'PATH', 'TMPDIR']);
    const allowed = allowedRoot();
    for (const name of seen.root) expect(allowed).toContain(name);
    expect(seen).toMatchObject({
      fork: 'Resource temporarily unavailable',
      'write /usr': 'Read-only file system',
      'read /etc/passwd': 'No such file or directory',
      'list /proc': 'No such file or directory',
      connect: 'Network is unreachable',
    });
  });

  it("a program cannot signal the sandbox's init (which would end the run without a result)", async () => {
    const r = await sandbox.run(
      'import os, signal, time\nfor s in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):\n    try:\n        os.kill(1, s)\n    except OSError:\n        pass\ntime.sleep(0.2)\nprint("alive")',
    );
    expect(r).toMatchObject({ exitCode: 0, stdout: 'alive\n' });
  });

  it('the private /tmp is writable and gone after the run', async () => {
    const program =
      "import os, tempfile\nprint(os.listdir('.'))\nopen('scratch.txt', 'w').write('x')\nwith tempfile.TemporaryFile() as f:\n    f.write(b'x')\n";
    for (let i = 0; i < 2; i++) {
      const r = await sandbox.run(program);
      expect(r.exitCode, r.stderr).toBe(0);
      expect(r.stdout).toBe('[]\n');
    }
  });

  it('reports exit status, output and exceptions as python would', async () => {
    const r = await sandbox.run(
      "import sys\nprint('out')\nprint('err', file=sys.stderr)\nraise SystemExit(3)",
    );
    expect(r).toMatchObject({ exitCode: 3, signal: null, timedOut: false, stdout: 'out\n', stderr: 'err\n' });
    const e = await sandbox.run('1 / 0');
    expect(e.exitCode).toBe(1);
    expect(e.stderr).toMatch(/ZeroDivisionError/);
  });

  it('kills the program at the time limit', async () => {
    const quick = new PythonSandbox({ timeoutMs: 1000 });
    const r = await quick.run('import time\nwhile True:\n    time.sleep(0.01)');
    expect(r).toMatchObject({ timedOut: true, signal: 'SIGKILL', exitCode: null });
    expect(r.durationMs).toBeLessThan(2500);
  });

  it('probe() says how programs are made unprivileged', async () => {
    const isolation = await sandbox.probe();
    expect(isolation.identity).toBe(process.getuid?.() === 0 ? 'uid' : 'user-namespace');
    expect(isolation.uid).not.toBe(0);
  });
});
