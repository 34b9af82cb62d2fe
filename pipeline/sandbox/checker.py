"""The warm checker for trusted tests (HumanEval's): started by pipeline.sandbox.verdicts, never imported.

    python -I -S pipeline/sandbox/checker.py pipeline/sandbox/wire.py

It loads the wire module, imports what HumanEval's prompts and tests import, and then for each job
("job <n>\\n" + n bytes + "\\n": the repr of (context, entry point, cases), written by the harness) forks a
child that runs `sandbox_wire.check` on the server's own pipes and waits for it. Generated code never
runs here: the entry point is a proxy to the sandbox, and only plain data comes back. Forking a warm
process is what makes a checker per sample cheap; the child's stdout and stdin are /dev/null, so
nothing a test prints reaches the channel.
"""
import os
import sys


def _read_exact(fd, n):
    data = b""
    while len(data) < n:
        chunk = os.read(fd, n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def _header(fd):
    line = b""
    while not line.endswith(b"\n"):
        c = os.read(fd, 1)  # byte by byte: what follows the job belongs to the child
        if not c or len(line) > 64:
            return None
        line += c
    return line


def main():
    wire = {"__name__": "sandbox_wire"}
    with open(sys.argv[1], "rb") as f:
        exec(compile(f.read(), sys.argv[1], "exec"), wire)
    import ast, collections, functools, hashlib, itertools, math, random, re, string, typing  # noqa: F401 (warm)
    rd, wr = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.close(null)
    while True:
        header = _header(rd)
        if header is None or not header.startswith(b"job "):
            return
        payload = _read_exact(rd, int(header.split()[1]) + 1)  # and its newline
        if payload is None:
            return
        context, entry, cases = ast.literal_eval(payload.decode("utf-8", "surrogatepass"))
        pid = os.fork()
        if pid == 0:
            try:
                wire["check"](context, entry, cases, rd, wr)
            finally:
                os._exit(0)
        os.waitpid(pid, 0)


if __name__ == "__main__":
    main()
