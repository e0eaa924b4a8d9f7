"""Which Ray a job runs on, what code travels to it, and what each actor is told.

    connect(opts, spec, slots)
        ├─ the program already called ray.init ──► reuse it (its runtime env, our paths)
        ├─ address / RAY_ADDRESS ──► a cluster: the code travels as the runtime env
        │      (working_dir = source_directory or the script's folder, py_modules = aprs)
        └─ neither ──► a Ray of our own on this machine, big enough for the job; no code
               package (same machine, same paths: the driver's aprs first on PYTHONPATH)
    actor_init(spec, slot, ship_code) ──► the Init an actor starts with: a local worker's
                                          (_slots.init_message), its entry script relative
                                          to the shipped folder (script_for_actor)
    job_env(env) ──► the job's own variables, which travel with every actor

Invariant: ``Connection.owns_ray`` is true only when ``connect`` called ray.init, so only
then does the backend call ray.shutdown.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import ray

from .._bridge._protocol import Init
from .._bridge._runtime import locate_script
from .._errors import BackendError
from ._base import WorkerSpec
from ._options import RayOptions
from ._slots import init_message

__all__ = ("Connection", "actor_init", "connect", "job_env")

_AWAY_ENV = {"PYTHONPATH", "PWD", "OLDPWD", "SHLVL", "_"}  # never shipped to the nodes


@dataclass(frozen=True, slots=True)
class Connection:
    owns_ray: bool  # we called ray.init: ray.shutdown is ours too
    ship_code: bool  # a cluster: the code folder and aprs travel as the runtime env


def connect(opts: RayOptions, spec: WorkerSpec, slots: int) -> Connection:
    """ray.init the way Ray users expect; reuse a connection the program already has."""
    if ray.is_initialized():
        return Connection(owns_ray=False, ship_code=False)
    address = opts.address or os.environ.get("RAY_ADDRESS") or None
    aprs_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    kwargs: dict[str, Any] = {
        "log_to_driver": False,
        "logging_level": logging.WARNING,
        "namespace": "aprs",
    }
    if address is not None:
        kwargs["runtime_env"] = {
            "working_dir": _code_folder(spec),
            "py_modules": [aprs_dir],
        }
    else:
        need = slots * opts.num_cpus
        kwargs.update(
            num_cpus=max(os.cpu_count() or 1, int(need + 0.999)),
            include_dashboard=False,
            # same machine, same paths: no code to package and unpack (~1-3 s of
            # start-up); the driver's aprs goes first on the workers' sys.path
            runtime_env={
                "env_vars": {"PYTHONPATH": _pythonpath(os.path.dirname(aprs_dir))}
            },
        )
    try:
        ray.init(address=address or "local", **kwargs)
    except Exception as exc:
        raise BackendError(
            f"Cannot connect to the Ray cluster at {address or 'a new local Ray'}: "
            f"{type(exc).__name__}: {exc}. Start the cluster (ray start --head) and "
            "pass its address with --ray-address / ray_address or RAY_ADDRESS, or "
            "leave them unset to start Ray on this machine."
        ) from exc
    return Connection(owns_ray=True, ship_code=address is not None)


def actor_init(spec: WorkerSpec, slot: int, *, ship_code: bool) -> Init:
    """What slot ``slot``'s actor is told to start with (its start() call): a local
    worker's Init, but for the script's place when the code is shipped."""
    script = script_for_actor(spec, ship_code=ship_code)
    return init_message(
        spec, slot, script, None if ship_code else spec.source_directory
    )


def script_for_actor(spec: WorkerSpec, *, ship_code: bool) -> str:
    """The entry script as the actor finds it: relative to the shipped code folder."""
    where = locate_script(spec.entry_script, spec.source_directory)
    if not ship_code or where.path is None:
        return spec.entry_script
    return os.path.relpath(where.path, _code_folder(spec))


def job_env(env: dict[str, str]) -> dict[str, str]:
    """The job's own variables: what differs from this process's environment.

    The nodes keep their own PATH, HOME, ...; the job's environment_variables and
    AZUREML_BI_OUTPUT_PATH travel with every actor.
    """
    return {
        k: v for k, v in env.items() if os.environ.get(k) != v and k not in _AWAY_ENV
    }


def _code_folder(spec: WorkerSpec) -> str:
    """What travels as the working_dir: source_directory, else the script's folder."""
    where = locate_script(spec.entry_script, spec.source_directory)
    if where.source_directory or where.path is None:
        return where.source_directory or os.getcwd()
    return os.path.dirname(where.path)


def _pythonpath(aprs_parent: str) -> str:
    """PYTHONPATH for workers on this machine: the driver's aprs first, then the rest."""
    rest = os.environ.get("PYTHONPATH", "")
    return os.pathsep.join(p for p in (aprs_parent, rest) if p)
