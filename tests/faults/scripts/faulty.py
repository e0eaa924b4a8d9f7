"""Entry script for the fault-injection suite: every fault is triggered by content.

Items are file paths; the file's name says what ``run()`` does with it:

    NNN-ok                  return the row
    NNN-<fault>-once        inject <fault> on the first try only (a marker file remembers),
                            then return the row
    NNN-<fault>-always      inject <fault> on every try
    NNN-fail                raise ValueError (used by the threshold tests; same as raise-always)
    NNN-block               write started-<name> (pid inside), then wait for the gate file
                            named by APRS_FAULTS_GATE (no wait when the variable is unset)
    NNN-gated               the same, but wait for its own gate file <APRS_FAULTS_GATE>.<name>

Faults: raise, sysexit (sys.exit(3)), osexit (os._exit(3)), kill (SIGKILL to itself),
segv (faulthandler._sigsegv()), hang (sleep 3600 s), badstr (return an element whose __str__
raises), badtype (return a str instead of a list).

``init()`` faults come from APRS_FAULTS_INIT = "<fault>-once" (the first init() of each worker
slot fails) or "<fault>-always" (every init() fails); faults as above.

Every event leaves a file in the folder named by APRS_FAULTS_DIR, so tests count events
without timing: init-<pid>-<n> (one per init() call), call-<first item>-<pid>-<n> (one per
run() call), fault-<name>-<pid>-<n> (one per injected fault, written just before it),
started-<name> (pid inside). Rows are "<name> <first line of the file>".
"""

import faulthandler
import os
import resource
import signal
import sys
import time
import uuid

_DIR = os.environ.get("APRS_FAULTS_DIR")
_GATE = os.environ.get("APRS_FAULTS_GATE")
_SLEEP = float(os.environ.get("APRS_FAULTS_SLEEP", "0") or 0)


def _mark(kind, name="", text=""):
    if not _DIR:
        return
    parts = [kind, name, str(os.getpid()), uuid.uuid4().hex[:8]]
    path = os.path.join(_DIR, "-".join(p for p in parts if p))
    with open(path, "w") as f:
        f.write(text or str(os.getpid()))


def _claim(marker):
    """True exactly once per marker across all processes (O_EXCL create)."""
    if not _DIR:
        return True
    try:
        fd = os.open(
            os.path.join(_DIR, marker), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644
        )
    except FileExistsError:
        return False
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    return True


def _slot():
    """The worker slot, read from the per-worker stdout log file aprs redirects fd 1 to."""
    try:
        target = os.readlink("/proc/self/fd/1")
    except OSError:
        return f"pid{os.getpid()}"
    base = os.path.basename(target)
    return base.split(".", 1)[0] if base.startswith("worker") else f"pid{os.getpid()}"


class _Unprintable:
    def __str__(self):
        raise RuntimeError("__str__ refuses to format this object")

    __repr__ = __str__


def _inject(fault, where):
    if fault == "raise":
        raise ValueError(f"injected fault in {where}")
    if fault == "sysexit":
        sys.exit(3)
    if fault == "osexit":
        os._exit(3)
    if fault == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(3600)
    if fault == "segv":
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core file in the cwd
        faulthandler._sigsegv()
    if fault == "hang":
        time.sleep(3600)
    raise AssertionError(f"unknown fault {fault!r}")


def init():
    _mark("init", text=_slot())
    if os.environ.get("APRS_FAULTS_IGNORE_TERM"):
        import signal

        # note SIGTERM and carry on: only SIGKILL stops this worker
        signal.signal(signal.SIGTERM, lambda *_: _mark("sigterm"))
    spec = os.environ.get("APRS_FAULTS_INIT", "")
    if not spec:
        return
    fault, _, mode = spec.rpartition("-")
    if mode == "always" or _claim(f"initonce-{_slot()}"):
        _mark("fault", "init")
        _inject(fault, "init()")


def _row(path):
    name = os.path.basename(path)
    with open(path, encoding="utf-8") as f:
        first = f.readline().rstrip("\n")
    return name, f"{name} {first}"


def run(mini_batch):
    names = [os.path.basename(p) for p in mini_batch]
    _mark("call", names[0] if names else "empty")
    rows = []
    for path in mini_batch:
        name, row = _row(path)
        if _SLEEP:
            time.sleep(_SLEEP)
        parts = name.split("-")
        kind = parts[1] if len(parts) > 1 else "ok"
        mode = parts[2] if len(parts) > 2 else "always"
        if kind in ("block", "gated"):
            if _DIR:
                with open(os.path.join(_DIR, f"started-{name}"), "w") as f:
                    f.write(str(os.getpid()))
            gate = _GATE if kind == "block" else f"{_GATE}.{name}"
            while _GATE and not os.path.exists(gate):
                time.sleep(0.01)
        elif kind == "fail":
            _mark("fault", name)
            raise ValueError(f"injected failure for {name}")
        elif kind != "ok" and (mode == "always" or _claim(f"once-{name}")):
            _mark("fault", name)
            if kind == "hang" and _DIR:
                with open(os.path.join(_DIR, f"started-{name}"), "w") as f:
                    f.write(str(os.getpid()))
            if kind == "badstr":
                rows.append(_Unprintable())
                continue
            if kind == "badtype":
                return f"{row} (a str, not a list)"
            _inject(kind, f"run() on {name}")
        rows.append(row)
    return rows
