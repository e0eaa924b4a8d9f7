"""The fork server ("zygote"): import the entry script's libraries once, fork every worker.

    python -m aprs._bridge._zygote CTL_FD JSON     (started by the pool, env = WorkerSpec.env)

    preload: the modules the entry script imports at its top level (read from its AST, never
             executed) that resolve outside source_directory and the working directory, each
             in try/except; then aprs's own worker modules
    CTL_FD (AF_UNIX SOCK_SEQPACKET, one message per record, see ``_forkserver.ForkServer``):
        parent ──► b"F" + slot, SCM_RIGHTS [in, out, lifeline]  fork a worker on those fds
               ──► b"K" + pid + signal                          signal a live worker
        zygote ──► b"P" + pid   (or b"E" + errno)               the reply to each b"F", in order
               ──► b"X" + pid + exit code                       a worker was reaped (Popen's
                                                                 convention: -N for signal N)
    EOF on CTL_FD (the parent closed it or died) ──► exit; the workers die with it (PDEATHSIG)

A forked child closes the zygote's own fds, restores the signal handlers a fresh interpreter
has, reseeds numpy's global random state (a fresh worker seeds it from the OS; a fork would
copy one state into every worker), and runs ``_worker.main`` on the fds it was given: from
there on it is exactly a spawned worker, with the script imported (its top level run) and
init() called in the worker, never here.

The zygote starts no thread of its own and forks from its only Python thread. Native threads
that libraries start at import are not copied into a child; the ones seen here (OpenBLAS's
pool, pyarrow's ``jemalloc_bg_thd``) register fork handlers, which is what multiprocessing's
"fork" start method has always relied on. The first message reports the zygote's OS thread
count after the preload (``threads``, logged at DEBUG). A library that initialises a GPU
(CUDA) or holds locks in threads at import is not fork-safe: use worker_start="spawn". It ignores SIGINT and SIGTERM
(the parent coordinates a stop; a Ctrl-C sent to the process group must not kill it under
workers that are shutting down gracefully), and dies with the parent: PR_SET_PDEATHSIG, and
EOF on the control socket.
"""

from __future__ import annotations

import ast
import contextlib
import gc
import importlib
import importlib.util
import json
import os
import select
import signal
import socket
import struct
import sys
import warnings
from collections.abc import Iterator
from typing import Any

__all__ = ("REC", "main", "script_imports")

REC = struct.Struct("<cii")  # every record: kind, two integers
_WORKER_MODULES = ("aprs._bridge._worker",)


def script_imports(path: str) -> list[str]:
    """Absolute module names the script imports, in order (no duplicates).

    At its top level, including the bodies of top-level ``if`` / ``try`` / ``with`` blocks
    (the usual ``try: import x except ImportError``), and in the bodies of its ``init()``
    and ``run()``: every worker runs those, so their imports happen in every worker anyway
    (a lazy ``import sklearn`` in init() is common). Other functions and classes are not
    read. ``from x import y`` yields ``x`` and ``x.y`` (y may be a submodule); relative
    imports are skipped.
    """
    try:
        with open(path, "rb") as f:
            tree = ast.parse(f.read(), path)
    except (OSError, SyntaxError, ValueError):
        return []
    names: dict[str, None] = {}
    for node in _top_level(tree.body):
        if isinstance(node, ast.Import):
            for alias in node.names:
                names[alias.name] = None
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names[node.module] = None
            for alias in node.names:
                if alias.name != "*":
                    names[f"{node.module}.{alias.name}"] = None
    return list(names)


def _top_level(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    for node in body:
        yield node
        if isinstance(node, ast.FunctionDef) and node.name in ("init", "run"):
            yield from _top_level(node.body)
        elif isinstance(node, ast.If | ast.With):
            yield from _top_level(node.body)
            if isinstance(node, ast.If):
                yield from _top_level(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody):
                yield from _top_level(block)
            for handler in node.handlers:
                yield from _top_level(handler.body)


def _is_local(name: str, local_dirs: list[str]) -> bool:
    """True when the top package of ``name`` would be found in one of ``local_dirs``."""
    top = name.partition(".")[0]
    if top in sys.builtin_module_names:
        return False
    spec = importlib.machinery.PathFinder.find_spec(top, local_dirs)
    return spec is not None


def preload(
    entry_script: str | None,
    source_directory: str | None,
    extra: list[str] | tuple[str, ...] = (),
) -> tuple[list[str], list[str]]:
    """Import what the script imports that is not its own code: (loaded, skipped).

    ``extra``: aprs modules the workers will import (the table reader for table inputs).
    """
    from ._runtime import locate_script

    loaded: list[str] = []
    skipped: list[str] = []
    candidates: list[str] = []
    local_dirs: list[str] = []
    if entry_script:
        where = locate_script(entry_script, source_directory)
        local_dirs = [d for d in (where.import_root, source_directory) if d]
        local_dirs.append(os.getcwd())
        if where.path is not None:
            candidates = script_imports(where.path)
    for name in candidates:
        if name in sys.modules:
            continue
        if _is_local(name, local_dirs):
            skipped.append(name)
            continue
        outcome = _import(name)
        if outcome is not None:
            (loaded if outcome else skipped).append(name)
    for name in (*_WORKER_MODULES, *extra):
        with contextlib.suppress(BaseException):
            importlib.import_module(name)
    return loaded, skipped


def _import(name: str) -> bool | None:
    """Import ``name``: True; False when that failed; None when it is no module at all
    (``from x import y`` where y is a function: x is imported, y is not a submodule)."""
    parent = name.rpartition(".")[0]
    try:
        if parent and importlib.util.find_spec(name) is None:
            return None  # a package without that submodule
        importlib.import_module(name)
    except BaseException:  # the worker imports it again and reports the real error
        plain_module = parent in sys.modules and not _is_package(parent)
        return None if plain_module else False
    return True


def _is_package(name: str) -> bool:
    return hasattr(sys.modules.get(name), "__path__")


class _Server:
    """The zygote's loop: fork on request, reap on SIGCHLD, relay exits; single-threaded."""

    def __init__(self, ctl: socket.socket) -> None:
        self.ctl = ctl
        self.children: set[int] = set()
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)

    def serve(self) -> None:
        poll = select.poll()
        poll.register(self.ctl.fileno(), select.POLLIN)
        poll.register(self.wake_r, select.POLLIN)
        while True:
            for fd, _ in poll.poll():
                if fd == self.wake_r:
                    with contextlib.suppress(OSError):
                        while os.read(self.wake_r, 512):
                            pass
                    self.reap()
                elif not self.on_request():
                    return

    def on_request(self) -> bool:
        try:
            data, fds, _flags, _addr = socket.recv_fds(self.ctl, REC.size, 3)
        except ConnectionResetError:
            return False
        if not data:
            return False
        kind, a, b = REC.unpack(data)
        if kind == b"F":
            self.fork(fds)
        elif kind == b"K" and a in self.children:  # never a pid already reaped
            with contextlib.suppress(ProcessLookupError):
                os.kill(a, b)
        for fd in fds if kind != b"F" else ():
            os.close(fd)
        return True

    def fork(self, fds: list[int]) -> None:
        try:
            with warnings.catch_warnings():  # 3.12+: "multi-threaded fork" (see above)
                warnings.simplefilter("ignore", DeprecationWarning)
                pid = os.fork()
        except OSError as exc:
            self.send(b"E", exc.errno or 0)
        else:
            if pid == 0:
                self.child(fds)  # never returns
            self.children.add(pid)
            self.send(b"P", pid)
        for fd in fds:
            os.close(fd)

    def child(self, fds: list[int]) -> None:
        code = 1
        try:
            zygote = os.getppid()
            self.ctl.close()
            signal.set_wakeup_fd(-1)
            os.close(self.wake_r)
            os.close(self.wake_w)
            for sig in (signal.SIGCHLD, signal.SIGTERM):
                signal.signal(sig, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)  # as at startup
            from ._worker import main as worker_main
            from ._worker import set_pdeathsig

            set_pdeathsig()
            if os.getppid() != zygote:  # the zygote died before PDEATHSIG was set
                os._exit(70)
            _reseed()

            code = worker_main([str(fd) for fd in fds])
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            with contextlib.suppress(Exception):
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(code)

    def reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.children.discard(pid)
            self.send(b"X", pid, os.waitstatus_to_exitcode(status))

    def send(self, kind: bytes, a: int, b: int = 0) -> None:
        with contextlib.suppress(OSError):  # the parent is gone: EOF ends the loop
            self.ctl.sendall(REC.pack(kind, a, b))


def _reseed() -> None:
    """A fresh worker seeds numpy's global RandomState from the OS; a fork copies it."""
    mtrand = sys.modules.get("numpy.random")
    if mtrand is not None:
        with contextlib.suppress(Exception):
            mtrand.seed()


def _quiet_preload(options: dict[str, object]) -> tuple[list[str], list[str]]:
    """Preload; with redirected stdio, what the imports print goes to the user logs.

    A worker's prints go to ``logs/user/{stdout,stderr}/workerNNN.*.txt``; what the libraries
    print while the zygote imports them (deprecation warnings ...) is kept in
    ``logs/user/stderr/preload.stderr.txt``, written only when there is something in it.
    """
    entry, source = _str(options, "entry_script"), _str(options, "source_directory")
    listed = options.get("preload")
    extra = (
        [m for m in listed if isinstance(m, str)] if isinstance(listed, list) else []
    )
    log_dir = options.get("log_dir")
    if not (options.get("redirect_stdio") and isinstance(log_dir, str)):
        return preload(entry, source, extra)
    import tempfile

    saved = os.dup(1), os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 1)
        os.dup2(captured.fileno(), 2)
        try:
            return preload(entry, source, extra)
        finally:
            with contextlib.suppress(Exception):
                sys.stdout.flush()
                sys.stderr.flush()
            for fd in (1, 2):
                os.dup2(saved[fd - 1], fd)
                os.close(saved[fd - 1])
            _keep_output(captured, log_dir)


def _keep_output(captured: Any, log_dir: str) -> None:
    captured.seek(0)
    text = captured.read()
    if not text:
        return
    with contextlib.suppress(OSError):
        folder = os.path.join(log_dir, "user", "stderr")
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, "preload.stderr.txt"), "ab") as f:
            f.write(text)


def _str(options: dict[str, object], key: str) -> str | None:
    value = options.get(key)
    return value if isinstance(value, str) else None


def main(argv: list[str]) -> int:
    ctl_fd, options = int(argv[0]), json.loads(argv[1])
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent coordinates a stop
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    from ._worker import set_pdeathsig  # the zygote preloads _worker anyway (the
    # parent imports this module only for REC, so _worker stays out of the parent)

    set_pdeathsig()
    ctl = socket.socket(fileno=ctl_fd)
    os.set_inheritable(ctl_fd, False)
    loaded, skipped = _quiet_preload(options)
    # the preloaded objects go to the permanent generation: a worker's collections never
    # traverse them, so they do not copy the pages the fork shares (gc.freeze's purpose).
    # No gc.collect() first: after scikit-learn's imports it found nothing to free and
    # took ~0.09 s, on the way to the first worker (perf/RESULTS.md, "start-up").
    gc.freeze()
    threads = len(os.listdir("/proc/self/task")) if os.path.isdir("/proc/self") else 0
    info = json.dumps({"loaded": loaded, "skipped": skipped, "threads": threads})
    with contextlib.suppress(OSError):
        ctl.sendall(b"L" + info.encode())
    _Server(ctl).serve()
    return 0


if __name__ == "__main__":
    code = main(sys.argv[1:])
    os._exit(code)
