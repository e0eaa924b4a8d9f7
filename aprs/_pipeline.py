"""Pipeline job files with several parallel jobs: which one runs, or all of them in turn.

    pipeline YAML ──► parallel_jobs (keys of ``jobs:`` whose type is parallel, file order)
                  ──► pick_job (``--job NAME``) ──► the one job mapping
                  ──► jobs_to_run (no ``--job``)
                        independent ──► every parallel job, one after another
                        an input bound to another parallel job's output
                          (``${{parent.jobs.<a>.outputs.<x>}}``) ──► ConfigError (exit 2)

aprs runs parallel jobs, not pipelines: no data flows between the jobs it runs, so jobs that
would need it are refused with the order to run them in, one ``--job`` at a time. Invariant:
every error names the file's parallel jobs and says to pass ``--job NAME``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from ._errors import ConfigError

__all__ = ("check_job_key", "check_sets", "jobs_to_run", "parallel_jobs", "pick_job")

_JOB_OUTPUT = re.compile(r"\$\{\{\s*parent\.jobs\.([\w-]+)\.outputs\.([\w-]+)\s*\}\}")


def parallel_jobs(data: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The parallel jobs of a ``type: pipeline`` file by key, in file order ({} if none)."""
    jobs = data.get("jobs")
    if data.get("type") != "pipeline" or not isinstance(jobs, dict):
        return {}
    return {
        str(key): job
        for key, job in jobs.items()
        if isinstance(job, dict) and job.get("type") == "parallel"
    }


def pick_job(data: Mapping[str, Any], name: str, where: str) -> dict[str, Any]:
    """The parallel job ``jobs.<name>`` (``--job NAME``).

    Raises:
        ConfigError: the file is no pipeline, or has no parallel job of that name.
    """
    found = parallel_jobs(data)
    if name in found:
        return found[name]
    if data.get("type") != "pipeline":
        raise ConfigError(
            f"--job {name} picks one parallel job of a pipeline file (type: pipeline, "
            f"with jobs:), but {where} is not one. Drop --job."
        )
    other = data["jobs"].get(name) if isinstance(data.get("jobs"), dict) else None
    what = (
        f"has a job {name!r} of type {other.get('type')!r}, which aprs does not run"
        if isinstance(other, dict)
        else f"has no job {name!r} in jobs:"
    )
    fix = (
        f"Its parallel jobs are {_listed(found)}; pass one of them to --job."
        if found
        else "It has no parallel job (type: parallel), the only kind aprs runs; give a "
        "pipeline or job file with one."
    )
    raise ConfigError(f"{where} {what}. {fix}")


def jobs_to_run(data: Mapping[str, Any], where: str) -> list[str]:
    """The parallel jobs that run, in file order, when no ``--job`` is given.

    Raises:
        ConfigError: a parallel job's input is bound to another parallel job's output.
    """
    found = parallel_jobs(data)
    for key, job in found.items():
        for name, source, output in _bound_inputs(job):
            if source in found and source != key:
                raise ConfigError(
                    f"{where} has several parallel jobs ({_listed(found)}) and job "
                    f"{key}'s input {name} is the output {output} of job {source}. aprs "
                    "runs parallel jobs, not the data flow between them: run one at a "
                    f"time with --job NAME, first --job {source}, then --job {key} "
                    f"--set inputs.{name}.path=<the {output} folder of {source}>."
                )
    return list(found)


def check_sets(data: Mapping[str, Any], sets: Sequence[str], where: str) -> None:
    """With every parallel job running, a ``--set`` must say which job it changes.

    Raises:
        ConfigError: a key that is neither ``jobs.<name>....`` nor a pipeline input.
    """
    pipeline_inputs = data.get("inputs")
    for item in sets:
        parts = item.partition("=")[0].strip().split(".")
        if parts[0] == "jobs" or (
            parts[0] == "inputs"
            and len(parts) > 1
            and isinstance(pipeline_inputs, dict)
            and parts[1] in pipeline_inputs
        ):
            continue
        first = next(iter(parallel_jobs(data)))
        raise ConfigError(
            f"--set {item!r} does not say which job it changes: {where} has several "
            f"parallel jobs ({_listed(parallel_jobs(data))}), which run one after "
            f"another without --job. Write --set jobs.{first}.{item} (a job's key), or "
            f"pass --job NAME to run one job."
        )


def check_job_key(data: Mapping[str, Any], item: str, where: str) -> None:
    """``--set jobs.<key>.KEY=VALUE`` must name a parallel job and a key in it (else it
    would add a job nobody runs, and the job meant would keep the file's value).

    Raises:
        ConfigError: ``<key>`` is no parallel job of the file, or no KEY follows it.
    """
    parts = item.partition("=")[0].strip().split(".")
    found = parallel_jobs(data)
    if len(parts) > 2 and parts[1] in found:
        return
    what = "no key of the job" if parts[1] in found else "no parallel job"
    raise ConfigError(
        f"--set {item!r} names {what} of {where}: its parallel jobs are "
        f"{_listed(found)}. Write --set jobs.<job>.KEY=VALUE with one of them, as in "
        f"--set jobs.{next(iter(found), '<job>')}.mini_batch_size=5."
    )


def _bound_inputs(job: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(input, job, output) for each input still bound to ``parent.jobs.<job>.outputs``
    (an input given a local path with ``--set`` no longer is)."""
    inputs = job.get("inputs")
    bound = []
    for name, spec in inputs.items() if isinstance(inputs, dict) else []:
        value = spec
        if isinstance(spec, dict):
            value = next(
                (spec[k] for k in ("path", "value", "default") if spec.get(k)), None
            )
        match = _JOB_OUTPUT.search(value) if isinstance(value, str) else None
        if match:
            bound.append((str(name), match[1], match[2]))
    return bound


def _listed(jobs: Mapping[str, Any]) -> str:
    return ", ".join(jobs) or "none"
