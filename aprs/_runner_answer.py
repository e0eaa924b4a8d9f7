"""What a Runner caller gets from a try: run()'s result, or the exception it stands for.

    Done   ──► pickle.loads(body) ──► resolve(attempt, result)   (submit: its future)
               │ cannot unpickle ──► unpickle_error(exc): RemoteError
    Failed ──► rebuild: run()'s exception, unpickled, its own type, the worker's traceback
               as __cause__ (_RemoteTraceback); RemoteError when it cannot be unpickled
    TimedOut / Crashed ──► rebuild: BatchTimeoutError / WorkerCrashedError (outcome_error)
    any error ──► fail(attempt, exc) / set_exception(future, exc)

Used by ``_runner.Runner`` (submitted batches) and ``_batcher.MicroBatcher`` (calls; it gets
``rebuild`` as its ``fail`` argument). Invariants: a future is answered at most once (one
already done, cancelled by its caller included, is left alone); nothing here blocks or
touches a backend.
"""

from __future__ import annotations

import asyncio
import pickle
from typing import Any

from ._backends import Attempt, Crashed, Failed, Outcome, TimedOut
from ._dispatch import outcome_error
from ._errors import RemoteError

__all__ = (
    "fail",
    "rebuild",
    "resolve",
    "set_exception",
    "short_result_error",
    "unpickle_error",
)


class _RemoteTraceback(Exception):
    def __init__(self, tb: str) -> None:
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return f'\n"""\n{self.tb}"""'


def set_exception(fut: asyncio.Future[Any], exc: BaseException) -> None:
    if not fut.done():
        fut.set_exception(exc)


def resolve(attempt: Attempt, result: Any) -> None:
    if not attempt.token.done():
        attempt.token.set_result(result)


def fail(attempt: Attempt, exc: BaseException) -> None:
    set_exception(attempt.token, exc)


def unpickle_error(exc: Exception) -> RemoteError:
    """The error of a Done whose result the parent cannot unpickle."""
    return RemoteError(
        type(exc).__name__, f"could not unpickle run()'s result: {exc}", ""
    )


def short_result_error(returned: int, items: int) -> RemoteError:
    """The error of the calls past the end of a result shorter than its batch."""
    return RemoteError(
        "ShortResult", f"run() returned {returned} elements for {items} items", ""
    )


def rebuild(attempt: Attempt, outcome: Outcome) -> BaseException:
    """The exception a final failed try stands for, as its caller gets it."""
    if isinstance(outcome, (TimedOut, Crashed)):
        return outcome_error(attempt, outcome)
    assert type(outcome) is Failed
    if outcome.exception:
        try:
            exc = pickle.loads(outcome.exception)
        except Exception:
            exc = None
        if isinstance(exc, BaseException):
            exc.__cause__ = _RemoteTraceback(outcome.traceback)
            return exc
    return RemoteError(outcome.error_type, outcome.message, outcome.traceback)
