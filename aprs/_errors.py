"""The exception hierarchy of aprs: one tree, documented once.

```
AprsError                                   root: `except aprs.AprsError` catches all we raise
├── UsageError                              the caller must change something -> CLI exit 2
│   ├── ConfigError(UsageError, ValueError) a config field is invalid (names field, value, fix)
│   ├── InputError                          inputs missing, unreadable, empty, unsupported
│   ├── EntryScriptError                    script not found / fails to import / no run()
│   └── OutputError                         output directory not writable, name escapes it
├── JobError                                the job ran and failed -> CLI exit 1; has .summary
│   ├── ErrorThresholdError                 failures crossed error_threshold / allowed_failed_*
│   ├── InitFailedError                     init() failed on every attempt; has the traceback
│   └── JobInterruptedError                 Ctrl-C / SIGTERM stopped the job (exit 130 / 143)
├── BatchError                              one batch's final outcome (service API)
│   ├── WorkerCrashedError                  pid, exit code, signal, batch id, attempt
│   ├── BatchTimeoutError(BatchError, TimeoutError)   exceeded run_invocation_timeout
│   └── RemoteError                         run() raised something that could not be unpickled
├── RunnerClosedError(AprsError, RuntimeError)        used after aclose()
├── RunnerOverloadedError(AprsError, RuntimeError)    max_pending items already waiting
└── BackendError                            infrastructure: Ray missing, spawn failed
```

Messages are one paragraph: what is wrong, the offending value and where, what to do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._summary import JobSummary

__all__ = (
    "AprsError",
    "BackendError",
    "BatchError",
    "BatchTimeoutError",
    "ConfigError",
    "EntryScriptError",
    "ErrorThresholdError",
    "InitFailedError",
    "InputError",
    "JobError",
    "JobInterruptedError",
    "OutputError",
    "RemoteError",
    "RunnerClosedError",
    "RunnerOverloadedError",
    "UsageError",
    "WorkerCrashedError",
)

AZURE_INIT_BOUND = "3 * run_invocation_timeout + 30 s"
"""How long a worker's init() may take unless WorkerSpec.init_timeout_s says (Azure's)."""


class AprsError(Exception):
    """Root of every exception aprs raises on purpose."""


class UsageError(AprsError):
    """The caller must change something (configuration, inputs, script). CLI exit 2."""


class ConfigError(UsageError, ValueError):
    """A configuration value is invalid; the message names the field, value and rule."""

    def __init__(self, message: str, *, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems: list[str] = problems if problems is not None else [message]


class InputError(UsageError):
    """An input is missing, unreadable, empty or of an unsupported kind."""


class EntryScriptError(UsageError):
    """The entry script does not exist, fails to import, or lacks run()."""

    @classmethod
    def in_worker(
        cls,
        script: str,
        *,
        no_run: bool,
        detail: str,
        traceback_text: str = "",
        worker: str = "worker process",
    ) -> EntryScriptError:
        """The script failed to import (or has no run()) inside a worker (``worker``: what
        the backend calls it, "worker process" or "Ray worker actor")."""
        what = "has no run() function" if no_run else "failed to import"
        return cls(
            f"The entry script {script} {what} in the {worker} ({detail}). Fix the "
            f"script and run the job again.\n\n{traceback_text}".rstrip()
        )


class OutputError(UsageError):
    """The output directory cannot be written, or a file name escapes it."""


class JobError(AprsError):
    """The job ran and failed. CLI exit 1. ``summary`` holds the counts."""

    def __init__(self, message: str, summary: JobSummary | None = None) -> None:
        super().__init__(message)
        self.summary = summary


class ErrorThresholdError(JobError):
    """Failures crossed error_threshold, allowed_failed_count or allowed_failed_percent."""


class InitFailedError(JobError):
    """init() failed in every attempt; the message holds the worker's traceback."""

    @classmethod
    def in_every_slot(
        cls,
        *,
        attempts: int,
        slots: int,
        last_failure: str,
        traceback_text: str = "",
        hung: bool = False,
        hangs_retried: bool = False,
        init_timeout_s: float = 0.0,
        init_timeout_set: bool = False,
    ) -> InitFailedError:
        """No worker slot has a worker whose init() returned, and none will be retried.

        ``hung``: the last failure was init() exceeding its time bound, which is waited
        for once per slot (a hang would only hang again), or, ``hangs_retried`` (Ray: an
        actor that could not be placed times out too), tried like a failure. The bound
        applied was ``init_timeout_s``: ``WorkerSpec.init_timeout_s`` when
        ``init_timeout_set``, else Azure's 3 * run_invocation_timeout + 30 s.
        """
        if hung:
            tries = (
                "is tried up to max_init_tries times per worker slot, like a failed one"
                if hangs_retried
                else "is waited for once per worker slot, not retried"
            )
            raise_it = (
                "the init timeout set for these workers (WorkerSpec.init_timeout_s)"
                if init_timeout_set
                else f"run_invocation_timeout (the bound is {AZURE_INIT_BOUND})"
            )
            fix = (
                f"A hung init() {tries}. Make init() return within the bound "
                f"({init_timeout_s:g} s), or raise {raise_it}."
            )
        else:
            fix = "Fix init() in the entry script (its traceback follows) and run the job again."
        return cls(
            f"init() failed in every worker ({attempts} attempts on {slots} worker slots); "
            f"last failure: {last_failure}. {fix}\n\n{traceback_text}".rstrip()
        )


class JobInterruptedError(JobError):
    """The job was stopped by Ctrl-C (SIGINT) or SIGTERM before it finished."""

    def __init__(
        self, message: str, summary: JobSummary | None = None, *, signum: int = 2
    ) -> None:
        super().__init__(message, summary)
        self.signum = signum


class BatchError(AprsError):
    """The final outcome of one mini-batch that did not succeed."""


class WorkerCrashedError(BatchError):
    """The worker process died while running the mini-batch.

    The message is built from the context unless given: which batch and try, which worker
    (index, pid) and how it ended (``description``, exit code, signal).
    """

    def __init__(
        self,
        message: str | None = None,
        *,
        batch_index: int | None = None,
        attempt: int | None = None,
        pid: int | None = None,
        worker_index: int | None = None,
        exit_code: int | None = None,
        signal: int | None = None,
        description: str = "",
    ) -> None:
        if message is None:
            how = description or (
                f"exited with code {exit_code}" if exit_code is not None else "died"
            )
            message = (
                f"worker {worker_index} (pid {pid}) died while running mini-batch "
                f"{batch_index} (try {attempt}): {how}"
            )
        super().__init__(message)
        self.batch_index = batch_index
        self.attempt = attempt
        self.pid = pid
        self.worker_index = worker_index
        self.exit_code = exit_code
        self.signal = signal
        self.description = description

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_with_context, (type(self), str(self), dict(self.__dict__)))


class BatchTimeoutError(BatchError, TimeoutError):
    """run() exceeded run_invocation_timeout; its worker was killed and replaced."""

    def __init__(
        self,
        message: str | None = None,
        *,
        batch_index: int | None = None,
        attempt: int | None = None,
        timeout_s: float | None = None,
        pid: int | None = None,
        worker_index: int | None = None,
    ) -> None:
        if message is None:
            message = (
                f"run() on mini-batch {batch_index} (try {attempt}) did not return within "
                f"run_invocation_timeout={timeout_s:g} s; worker {worker_index} (pid "
                f"{pid}) was killed and replaced"
            )
        super().__init__(message)
        self.batch_index = batch_index
        self.attempt = attempt
        self.timeout_s = timeout_s
        self.pid = pid
        self.worker_index = worker_index

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_with_context, (type(self), str(self), dict(self.__dict__)))


def _rebuild_with_context(
    cls: type[BaseException], message: str, context: dict[str, Any]
) -> BaseException:
    """Unpickle an exception whose context is keyword-only: same message, same fields."""
    exc = cls(message)
    exc.__dict__.update(context)
    return exc


class RemoteError(BatchError):
    """run() raised an exception that could not be rebuilt in the parent."""

    def __init__(self, type_name: str, message: str, traceback_text: str) -> None:
        super().__init__(f"{type_name}: {message}")
        self.type_name = type_name
        self.message = message
        self.traceback_text = traceback_text

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.type_name, self.message, self.traceback_text))


class RunnerClosedError(AprsError, RuntimeError):
    """The runner was used after aclose()."""


class RunnerOverloadedError(AprsError, RuntimeError):
    """``max_pending`` items are already accepted and not answered: shed load (HTTP 503).

    Attributes:
        pending: the items accepted and not yet answered.
        limit: the Runner's ``max_pending``.
    """

    def __init__(self, pending: int, limit: int) -> None:
        super().__init__(
            f"The runner is overloaded: {pending} items are waiting or running and "
            f"max_pending={limit}. Retry later (a service answers 503), pass wait=True to "
            "wait for room, or raise max_pending."
        )
        self.pending = pending
        self.limit = limit

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.pending, self.limit))


class BackendError(AprsError):
    """Infrastructure failure: a backend is missing, unreachable, or cannot spawn."""
