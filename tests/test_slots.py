"""The init rules both backends inherit (``aprs/_backends/_slots.py``), without workers.

A fake backend records what the rules ask of it (respawns, the fatal error); one test per
rule, for the local pool's setting and for Ray's where they differ (a hung init()).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import pytest

import aprs
from aprs._backends import WorkerSpec
from aprs._backends._slots import WorkerSlots
from aprs._bridge._protocol import InitFailed


@dataclass
class _Rec:
    timer: asyncio.TimerHandle | None = None
    head_started: float = 0.0


class _Listener:
    def __init__(self) -> None:
        self.fatal: list[BaseException] = []

    def on_fatal(self, exc: BaseException) -> None:
        self.fatal.append(exc)

    def __getattr__(self, name: str) -> Any:
        return lambda *args: None


class _Backend(WorkerSlots[_Rec]):
    def __init__(self, slots: int = 2) -> None:
        self.listener = _Listener()
        spec = WorkerSpec("score.py", None, [], {}, slots, 0, 10.0)
        super().__init__(spec, self.listener, slots)  # type: ignore[arg-type]
        self.respawned: list[int] = []

    def _respawn(self, slot: int) -> None:
        self.respawned.append(slot)

    def _on_timer(self, rec: _Rec) -> None:
        pass

    def _records(self) -> list[_Rec | None]:
        return []


class _RayLike(_Backend):
    _WORKER = "Ray worker actor"
    _RETRY_HUNG_INIT = True


def _raised(slot: int = 0) -> InitFailed:
    return InitFailed("init", "ValueError", "no model", f"Traceback: slot {slot}\n")


async def test_raising_init_is_retried_then_every_slot_fails() -> None:
    """init() raising is tried max_init_tries times per slot; then one InitFailedError."""
    b = _Backend()
    for _ in range(3):
        for slot in (0, 1):
            b._init_failed_reply(slot, _raised(slot))
    assert b.respawned == [0, 1, 0, 1]
    (exc,) = b.listener.fatal
    assert isinstance(exc, aprs.InitFailedError)
    text = str(exc)
    assert text.startswith(
        "init() failed in every worker (6 attempts on 2 worker slots)"
    )
    assert "last failure: init() raised ValueError: no model. Fix init()" in text
    assert text.endswith("Traceback: slot 1")


async def test_ready_resets_the_slots_tries() -> None:
    """A slot whose worker got ready starts counting its init tries from 0 again."""
    b = _Backend(slots=1)
    b._init_failed_reply(0, _raised())
    b._init_failed_reply(0, _raised())
    b._slot_ready(0)
    b._init_failed_reply(0, _raised())
    assert b.respawned == [0, 0, 0]
    assert b.listener.fatal == []


async def test_hung_init_ends_its_slot_on_the_local_pool() -> None:
    """A hung init() is waited for once per slot; the message says so, no traceback."""
    b = _Backend()
    b._init_failed_reply(0, _raised())  # an earlier traceback must not be attached
    b._init_hung(0, "init() did not finish", "worker")
    b._init_hung(1, "init() did not finish", "worker")
    assert b.respawned == [0]
    (exc,) = b.listener.fatal
    assert "init() did not finish within 60 s, the init timeout of" in str(exc)
    assert "(worker killed). A hung init() is waited for once per worker slot" in str(
        exc
    )
    assert "Traceback" not in str(exc)


async def test_hung_init_counts_one_try_on_ray() -> None:
    """Ray tries a hung init() (or an actor with no node) again, max_init_tries times."""
    b = _RayLike(slots=1)
    for _ in range(3):
        b._init_hung(0, "the actor did not finish init(),", "actor")
    assert b.respawned == [0, 0]
    (exc,) = b.listener.fatal
    assert "is tried up to max_init_tries times per worker slot" in str(exc)


@pytest.mark.parametrize(
    ("backend", "where"),
    [(_Backend, "worker process"), (_RayLike, "Ray worker actor")],
    ids=["local", "ray"],
)
async def test_script_that_does_not_load_is_fatal_at_once(
    backend: type[_Backend], where: str
) -> None:
    """An import error is an EntryScriptError naming the worker kind; nothing respawns."""
    b = backend()
    b._init_failed_reply(0, InitFailed("import", "ImportError", "no foo", "tb"))
    (exc,) = b.listener.fatal
    assert isinstance(exc, aprs.EntryScriptError)
    assert str(exc).startswith(
        f"The entry script score.py failed to import in the {where} (ImportError: no foo)"
    )
    assert b.respawned == []


async def test_closing_backend_respawns_nothing() -> None:
    """Once closing, a failed init() is counted but nothing is started again."""
    b = _Backend()
    b._closing = True
    b._died_in_init(0, "killed by SIGKILL")
    assert (b.respawned, b._init_failures, b.listener.fatal) == ([], 1, [])


async def test_init_timer_fired_early_is_rearmed() -> None:
    """The init timer is due only once the timeout passed; an early one is re-armed."""
    b = _Backend()
    rec = _Rec(head_started=b._loop.time())
    assert not b._init_timer_due(rec)
    assert rec.timer is not None
    b._cancel_timer(rec)
    assert rec.timer is None
    rec.head_started -= 60
    assert b._init_timer_due(rec)
