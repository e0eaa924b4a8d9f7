"""Start the fork server's process (the zygote); serving it is ``_forkserver``'s job.

    launch_early(spec) ──► Launch.start(spec) ──► python -m aprs._bridge._zygote CTL_FD OPTIONS
                           (spec.python, spec.env; dies with this process)
    Launch ──► adopt(): a ForkServer serves it from the event loop (once)
           ──► discard(): nobody adopted it (the job stopped first): SIGKILL

A job starts its zygote as soon as it knows its workers (``ParallelRunStep``, before the
event loop and the engine are imported), so the preload overlaps the parent's own set-up.
This module imports neither asyncio nor the engine, so that start comes early.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess

from .._backends._base import WORKER_STARTS, WorkerSpec
from .._errors import ConfigError

__all__ = (
    "Launch",
    "fork_server_supported",
    "launch_early",
    "resolve_worker_start",
)

WORKER_START_ENV = "APRS_WORKER_START"


def resolve_worker_start(requested: str | None) -> str:
    """How local workers start: the setting, else $APRS_WORKER_START, else "fork-server".

    "fork-server" falls back to "spawn" where the fork server cannot run (no os.fork, no
    pidfd: not Linux).
    """
    value = requested or os.environ.get(WORKER_START_ENV, "") or "fork-server"
    if value not in WORKER_STARTS:
        where = "worker_start" if requested else WORKER_START_ENV
        raise ConfigError(
            f"{where} must be one of {', '.join(WORKER_STARTS)}; got {value!r}. Use "
            '"fork-server" (workers forked from one process that imported the entry '
            'script\'s libraries once) or "spawn" (one fresh interpreter per worker).'
        )
    if value == "fork-server" and not fork_server_supported():
        return "spawn"
    return value


def fork_server_supported() -> bool:
    """Linux with os.fork, SCM_RIGHTS and pidfd (the zygote's reaping is event driven)."""
    return (
        hasattr(os, "fork")
        and hasattr(os, "pidfd_open")
        and hasattr(socket, "send_fds")
        and hasattr(socket, "SOCK_SEQPACKET")
    )


def launch_early(spec: WorkerSpec) -> Launch | None:
    """Start the zygote of a local fork-server job now, before the pool exists.

    A job knows its workers' interpreter, environment and preload long before its pool
    starts (the parent then imports the engine, writes its state, opens the output and
    plans the first slices: ~0.1-0.3 s); started here, the zygote's preload runs on the
    other core meanwhile. None when the workers will not be forked (Ray, "spawn") or the
    zygote cannot be started: the pool then starts it and reports the error as before.
    """
    if spec.ray is not None:
        return None
    try:
        if resolve_worker_start(spec.worker_start) != "fork-server":
            return None
        return Launch.start(spec)
    except (ConfigError, OSError):
        return None


class Launch:
    """A started zygote process and the parent's end of its control socket, not yet
    served by a ForkServer (which needs the event loop): adopt() it, or discard() it."""

    def __init__(self, proc: subprocess.Popen[bytes], sock: socket.socket) -> None:
        self.proc = proc
        self.sock = sock
        self._taken = False

    @classmethod
    def start(cls, spec: WorkerSpec) -> Launch:
        """Start the zygote with the worker's interpreter and environment."""
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        options = {
            "entry_script": spec.entry_script,
            "source_directory": spec.source_directory,
            "log_dir": spec.log_dir,
            "redirect_stdio": spec.redirect_stdio,
            "preload": list(spec.preload),
        }
        cmd = [
            spec.python,
            "-m",
            "aprs._bridge._zygote",
            str(child.fileno()),
            json.dumps(options),
        ]
        try:
            proc = subprocess.Popen(
                cmd,
                pass_fds=(child.fileno(),),
                env=spec.env,
                stdin=subprocess.DEVNULL,
            )
        except BaseException:
            parent.close()
            raise
        finally:
            child.close()
        return cls(proc, parent)

    def adopt(self) -> bool:
        """Take it over (once): False when it was adopted or discarded already."""
        taken, self._taken = self._taken, True
        return not taken

    def discard(self) -> subprocess.Popen[bytes] | None:
        """End it unless a ForkServer adopted it: the process to wait for, or None.

        The zygote has no worker yet (none forks before adoption): a kill loses nothing.
        """
        if not self.adopt():
            return None
        self.sock.close()
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        return self.proc
