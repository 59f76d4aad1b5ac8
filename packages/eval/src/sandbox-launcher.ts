/**
 * The trusted Python that puts one sandboxed program in place: `python3 -I -S -B -c LAUNCHER`, with
 * {config, runner, payload} as JSON on stdin. Three processes:
 * - the launcher, in the host's namespaces: creates fresh mount, PID, network, IPC and UTS namespaces
 *   (and a user namespace unless it is root), reports the init's host PID, waits for it;
 * - the init, PID 1 of the new PID namespace: builds the new root and waits for the worker. When it
 *   exits, or is killed, the kernel kills every process left in the namespace;
 * - the worker: drops to the unprivileged uid with no capabilities and no way to gain any, sets the
 *   resource limits and runs `runner` (harness code) with `payload` as a global.
 *
 * The new root holds read-only bind mounts of /usr (shared libraries), the top-level links into it
 * and the interpreter's own directories, /dev/{null,zero,random,urandom}, and a private size-limited
 * tmpfs at /tmp (the cwd, HOME and TMPDIR). There is no /etc, /proc, /sys, /home or network.
 *
 * Identity: root switches the worker to `config.uid` (so RLIMIT_NPROC binds and nothing on the host is
 * its); anyone else maps their own uid into a new user namespace, in which the worker has no
 * capabilities. Either way the worker cannot fork (RLIMIT_NPROC 0), see or signal processes outside
 * its namespace, or ptrace the init (non-dumpable, more capabilities).
 *
 * fd 3 carries the launcher's status lines to the harness ({"init": pid}, {"exit": n} or
 * {"signal": n}, or {"error": text} when isolation fails); the worker never holds it. fds 4 and 5
 * are the runner's channel in and out.
 */
export const LAUNCHER = String.raw`
import ctypes, json, os, re, resource, signal, sys, traceback

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x20000, 0x4000000, 0x8000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 0x1, 0x2, 0x4, 0x8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 0x20, 0x1000, 0x4000, 0x40000
MS_NOATIME, MS_NODIRATIME, MS_RELATIME = 0x400, 0x800, 0x200000
MNT_DETACH = 2
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_NO_NEW_PRIVS = 1, 4, 38
SYSCALLS = {'x86_64': (155, 126), 'aarch64': (41, 91)}  # pivot_root, capset
STATUS, CHANNEL_IN, CHANNEL_OUT = 3, 4, 5

libc = ctypes.CDLL(None, use_errno=True)

def check(result, what):
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, '%s: %s' % (what, os.strerror(err)))

def report(message):
    os.write(STATUS, (json.dumps(message) + '\n').encode())

def fail(e):
    report({'error': str(e)})
    os._exit(1)

def mount(source, target, fstype, flags, data=None):
    enc = lambda s: None if s is None else s.encode()
    check(libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)), 'mount ' + target)

def die_with_parent():
    check(libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), 'prctl')

def unshare(cfg):
    """Returns (uid, gid, switch): the worker's ids and whether it must switch to them."""
    flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS
    if os.geteuid() == 0:
        check(libc.unshare(flags), 'unshare')
        return cfg['uid'], cfg['uid'], True
    uid, gid = os.geteuid(), os.getegid()
    check(libc.unshare(flags | CLONE_NEWUSER), 'unshare')
    for name, text in (('setgroups', 'deny'), ('uid_map', '%d %d 1' % (uid, uid)), ('gid_map', '%d %d 1' % (gid, gid))):
        with open('/proc/self/' + name, 'w') as f:
            f.write(text)
    return uid, gid, False

def mount_points_under(target):
    with open('/proc/self/mountinfo') as f:
        points = [re.sub(r'\\([0-7]{3})', lambda m: chr(int(m.group(1), 8)), line.split()[4]) for line in f]
    return [p for p in points if p.startswith(target + '/')]

def remount_read_only(target):
    # A mount copied from a more privileged namespace keeps its locked flags; a remount must repeat them.
    f = os.statvfs(target).f_flag
    locked = ((MS_NOEXEC if f & os.ST_NOEXEC else 0) | (MS_NOATIME if f & os.ST_NOATIME else 0)
              | (MS_NODIRATIME if f & os.ST_NODIRATIME else 0) | (MS_RELATIME if f & os.ST_RELATIME else 0))
    mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | locked)

def expose(path, target):
    if os.path.islink(path):
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.symlink(os.readlink(path), target)
    elif os.path.isdir(path):
        os.makedirs(target, exist_ok=True)
        # Recursive: in a user namespace a tree with mounts below may only be bound whole.
        mount(path, target, None, MS_BIND | MS_REC)
        for point in [target] + mount_points_under(target):
            remount_read_only(point)

def build_root(cfg, uid, gid):
    root = cfg['root']
    mount(None, '/', None, MS_REC | MS_PRIVATE)
    mount('tmpfs', root, 'tmpfs', MS_NOSUID | MS_NODEV, 'mode=0755,size=1m')
    for path in cfg['expose']:
        expose(path, root + path)
    os.mkdir(root + '/dev')
    for name in ('null', 'zero', 'random', 'urandom'):
        open(root + '/dev/' + name, 'x').close()
        mount('/dev/' + name, root + '/dev/' + name, None, MS_BIND)
    os.mkdir(root + '/tmp')
    mount('tmpfs', root + '/tmp', 'tmpfs', MS_NOSUID | MS_NODEV,
          'mode=0700,uid=%d,gid=%d,size=%d' % (uid, gid, cfg['fsize']))
    pivot_root = SYSCALLS[os.uname().machine][0]
    os.chdir(root)
    check(libc.syscall(pivot_root, b'.', b'.'), 'pivot_root')
    check(libc.umount2(b'.', MNT_DETACH), 'umount')
    mount(None, '/', None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
    os.chdir('/tmp')

def drop_privileges(uid, gid, switch):
    if switch:
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
    class Header(ctypes.Structure):
        _fields_ = [('version', ctypes.c_uint32), ('pid', ctypes.c_int)]
    no_caps = (ctypes.c_uint32 * 6)()
    check(libc.syscall(SYSCALLS[os.uname().machine][1], ctypes.byref(Header(0x20080522, 0)), no_caps), 'capset')
    check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 'prctl')

def limit(cfg):
    for name, value in (('RLIMIT_AS', cfg['memory']), ('RLIMIT_FSIZE', cfg['fsize']), ('RLIMIT_CPU', cfg['cpu']),
                        ('RLIMIT_CORE', 0), ('RLIMIT_NPROC', 0)):
        res = getattr(resource, name)
        hard = resource.getrlimit(res)[1]
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        resource.setrlimit(res, (value, value))

def worker(spec, ids):
    try:
        drop_privileges(*ids)
        limit(spec['config'])
        null = os.open('/dev/null', os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        os.closerange(CHANNEL_OUT + 1, 4096)
    except OSError as e:
        fail(e)
    os.close(STATUS)
    code = 0
    try:
        exec(compile(spec['runner'], '<runner>', 'exec'), {'__name__': '__runner__', 'payload': spec['payload']})
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else int(e.code is not None)
    except BaseException:
        traceback.print_exc()
        code = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass
    os._exit(code)

def init(spec, ids, go):
    # The kernel keeps signals from inside the namespace off PID 1 only where it has no handler.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    try:
        die_with_parent()
        # The launcher lets the init go on once the harness knows its PID; EOF means it is gone.
        if os.read(go, 1) != b'g':
            os._exit(1)
        os.close(go)
        check(libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0), 'prctl')
        build_root(spec['config'], ids[0], ids[1])
    except OSError as e:
        fail(e)
    pid = os.fork()
    if pid == 0:
        worker(spec, ids)
    for fd in (0, 1, 2, CHANNEL_IN, CHANNEL_OUT):
        os.close(fd)
    _, status = os.waitpid(pid, 0)
    report({'exit': os.WEXITSTATUS(status)} if os.WIFEXITED(status) else {'signal': os.WTERMSIG(status)})
    os._exit(0)

def main():
    spec = json.loads(sys.stdin.buffer.read())
    try:
        die_with_parent()
        if os.getppid() != spec['config']['parent']:
            os._exit(1)
        if os.uname().machine not in SYSCALLS:
            raise OSError('unsupported machine ' + os.uname().machine)
        ids = unshare(spec['config'])
    except OSError as e:
        fail(e)
    go_read, go_write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(go_write)
        init(spec, ids, go_read)
    os.close(go_read)
    for fd in (0, 1, 2, CHANNEL_IN, CHANNEL_OUT):
        os.close(fd)
    report({'init': pid})
    os.write(go_write, b'g')
    os.waitpid(pid, 0)
    os._exit(0)

main()
`;
