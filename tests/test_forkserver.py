"""The fork server ("zygote"): workers forked from one process that preloaded the libraries.

Real processes throughout: the Runner starts the pool, the entry scripts report what they
see from inside the worker (pids, sys.modules), and the process table tells who is whose
parent and that nothing is left behind.
"""

from __future__ import annotations

import os
import signal
import textwrap
import time
from pathlib import Path

import pytest

import aprs
from aprs._bridge._zygote import script_imports
from aprs._step import run_coroutine

pytestmark = pytest.mark.timeout(120)

SCRIPT = """
import os
import signal
import sys

PRELOADED = "wave" in sys.modules  # before this script's own import of it
LOCAL_SEEN = "zylocal" in sys.modules

import wave
import zylocal
from xml.dom import minidom


def run(mini_batch):
    out = []
    for item in mini_batch:
        if item == "exit":
            os._exit(7)
        if item == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        out.append(
            {"pid": os.getpid(), "ppid": os.getppid(), "preloaded": PRELOADED,
             "local_seen": LOCAL_SEEN, "minidom": "xml.dom.minidom" in sys.modules}
        )
    return out
"""


@pytest.fixture
def source(tmp_path: Path) -> Path:
    (tmp_path / "score.py").write_text(textwrap.dedent(SCRIPT))
    # a module of the job's own code: imported by each worker, never by the zygote
    (tmp_path / "zylocal.py").write_text(
        "import os\nopen(os.path.join(os.path.dirname(__file__), "
        "f'imported-by-{os.getpid()}'), 'w').close()\n"
    )
    return tmp_path


def _ppid(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _assert_gone(pids: set[int], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while any(_alive(p) for p in pids):
        assert time.monotonic() < deadline, f"still running: {pids}"
        time.sleep(0.05)


def _runner(source: Path, **kwargs: object) -> aprs.Runner:
    return aprs.Runner(
        source / "score.py",
        source_directory=str(source),
        process_count_per_node=2,
        **kwargs,  # type: ignore[arg-type]
    )


def test_script_imports_reads_the_top_level_init_and_run(tmp_path: Path) -> None:
    """Top-level imports (also inside if/try blocks) and those in init() and run(); not
    other functions' nor relative ones."""
    path = tmp_path / "s.py"
    path.write_text(
        "import a.b, c\nfrom d import e\nfrom . import f\n"
        "try:\n    import g\nexcept ImportError:\n    import h\n"
        "def helper():\n    import nope\n"
        "def init():\n    if True:\n        from i import j\n"
        "def run(x):\n    import k\n"
    )
    assert script_imports(str(path)) == [
        *("a.b", "c", "d", "d.e", "g", "h", "i", "i.j", "k")
    ]


async def test_workers_are_forked_from_the_zygote_with_modules_preloaded(
    source: Path,
) -> None:
    """Each worker's parent is the zygote (a child of this process); libraries are preloaded,
    the job's own modules are not, and the script's top level runs in each worker."""
    async with _runner(source) as runner:
        rows = await runner.submit(["a", "b"])
        zygote = runner._backend.fork_server_pid()  # type: ignore[union-attr]
    ppids = {r["ppid"] for r in rows}
    assert ppids == {zygote}
    assert zygote is not None and zygote != os.getpid()
    assert all(r["preloaded"] and r["minidom"] for r in rows)
    assert not any(r["local_seen"] for r in rows)
    importers = {
        int(name.split("-")[-1])
        for name in os.listdir(source)
        if name.startswith("imported-by-")
    }
    assert zygote not in importers and {r["pid"] for r in rows} <= importers
    _assert_gone({zygote, *(r["pid"] for r in rows)})


@pytest.mark.parametrize("start", ["fork-server", "spawn"])
async def test_exit_code_and_signal_are_reported_as_before(
    source: Path, start: str
) -> None:
    """os._exit(7) and SIGKILL reach the caller with the exit code / signal, either way."""
    async with _runner(source, worker_start=start) as runner:
        with pytest.raises(aprs.WorkerCrashedError) as exited:
            await runner.submit(["exit"])
        with pytest.raises(aprs.WorkerCrashedError) as killed:
            await runner.submit(["kill"])
        rows = await runner.submit(["after"])
    assert exited.value.exit_code == 7 and exited.value.signal is None
    assert "exited with code 7" in str(exited.value)
    assert killed.value.exit_code == -9 and killed.value.signal == signal.SIGKILL
    assert "killed by SIGKILL (exit code -9)" in str(killed.value)
    parent = os.getpid() if start == "spawn" else rows[0]["ppid"]
    assert rows[0]["ppid"] == parent
    if start == "spawn":
        assert not rows[0]["preloaded"]


async def test_spawn_mode_from_the_environment(
    source: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """APRS_WORKER_START=spawn: every worker is a fresh interpreter, a child of this process."""
    monkeypatch.setenv("APRS_WORKER_START", "spawn")
    async with _runner(source) as runner:
        rows = await runner.submit(["a"])
        assert runner._backend.fork_server_pid() is None  # type: ignore[union-attr]
    assert rows[0]["ppid"] == os.getpid()
    assert not rows[0]["preloaded"]


async def test_unknown_worker_start_is_a_config_error(source: Path) -> None:
    with pytest.raises(aprs.ConfigError, match="fork-server"):
        async with _runner(source, worker_start="vfork"):
            pass


async def test_zygote_killed_mid_job_is_a_clear_error_and_leaves_nothing(
    source: Path,
) -> None:
    """SIGKILL to the zygote: its workers die with it, calls fail with a BackendError that
    says what happened, and no process is left once the Runner is closed."""
    runner = _runner(source)
    async with runner:
        rows = await runner.submit(["a", "b"])
        zygote = runner._backend.fork_server_pid()  # type: ignore[union-attr]
        assert zygote is not None and _ppid(zygote) == os.getpid()
        os.kill(zygote, signal.SIGKILL)
        with pytest.raises(aprs.BackendError, match="fork server") as info:
            for _ in range(200):  # until the loop has seen the zygote's death
                await runner.submit(["c"])
        assert "killed by SIGKILL" in str(info.value)
        assert "worker_start" in str(info.value)
    _assert_gone({zygote, *(r["pid"] for r in rows)})


async def test_import_error_in_the_script_is_reported_by_the_worker(
    tmp_path: Path,
) -> None:
    """The zygote skips a preload that fails; the worker's own import reports the error."""
    (tmp_path / "score.py").write_text(
        "import aprs_zygote_no_such_module\n\ndef run(mini_batch):\n    return mini_batch\n"
    )
    with pytest.raises(aprs.EntryScriptError) as info:
        async with aprs.Runner(tmp_path / "score.py", process_count_per_node=1):
            pass
    assert "ModuleNotFoundError" in str(info.value)
    assert "aprs_zygote_no_such_module" in str(info.value)


async def test_preload_runs_with_the_jobs_environment(tmp_path: Path) -> None:
    """A library outside source_directory is imported once, in the zygote, with the job's
    environment variables already set (OMP_NUM_THREADS and the like must precede imports)."""
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "zyenv.py").write_text(
        "import os\nSEEN = os.environ.get('ZY_FLAG')\nPID = os.getpid()\n"
    )
    code = tmp_path / "code"
    code.mkdir()
    (code / "score.py").write_text(
        "import os\nimport zyenv\n\n"
        "def run(mini_batch):\n"
        "    return [(zyenv.SEEN, zyenv.PID, os.getppid()) for _ in mini_batch]\n"
    )
    paths = [str(lib), os.environ.get("PYTHONPATH", "")]
    env = {"ZY_FLAG": "set", "PYTHONPATH": os.pathsep.join(p for p in paths if p)}
    async with aprs.Runner(
        code / "score.py",
        source_directory=str(code),
        process_count_per_node=2,
        environment_variables=env,
    ) as runner:
        rows = await runner.submit([1, 2])
    assert {(seen, pid) for seen, pid, _ in rows} == {("set", rows[0][2])}


class _Listener:
    """A BackendListener that keeps the fatal error (no batch is ever submitted here)."""

    fatal: BaseException | None = None

    def on_outcome(self, attempt: object, outcome: object) -> None: ...

    def on_requeue(self, attempts: object) -> None: ...

    def on_capacity(self) -> None: ...

    def on_fatal(self, exc: BaseException) -> None:
        self.fatal = exc


async def test_a_preload_that_hangs_is_an_init_timeout_and_leaves_nothing(
    tmp_path: Path,
) -> None:
    """An import that never returns in the zygote: the init timeout says so, the zygote is
    killed, and aclose returns (nothing waits for a fork that never comes)."""
    from aprs._backends import WorkerSpec, default_env
    from aprs._bridge._pool import LocalPool

    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "zyhang.py").write_text("import time\ntime.sleep(3600)\n")
    (tmp_path / "score.py").write_text(
        "import zyhang\n\ndef run(mini_batch):\n    return mini_batch\n"
    )
    paths = [str(lib), os.environ.get("PYTHONPATH", "")]
    env = default_env({"PYTHONPATH": os.pathsep.join(p for p in paths if p)})
    spec = WorkerSpec(
        str(tmp_path / "score.py"), None, [], env, 2, 0, 5.0, init_timeout_s=1.0
    )
    listener = _Listener()
    pool = LocalPool(spec, listener)
    started = time.monotonic()
    with pytest.raises(aprs.InitFailedError, match="fork server did not fork"):
        await pool.start()
    zygote = pool.fork_server_pid()
    assert zygote is not None
    await pool.aclose()
    assert time.monotonic() - started < 15
    _assert_gone({zygote})


# -- the job's early start (aprs._bridge._launch.launch_early) ----------------------------

JOB_SCRIPT = """
import os

def run(mini_batch):
    return [f"{os.getpid()} {os.getppid()}" for _ in mini_batch]
"""


def _job(
    tmp_path: Path, script: str = JOB_SCRIPT, **config: object
) -> aprs.ParallelRunStep:
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "score.py").write_text(textwrap.dedent(script))
    cfg = aprs.ParallelRunConfig(
        entry_script=str(tmp_path / "score.py"),
        mini_batch_size=1,
        process_count_per_node=2,
        **config,  # type: ignore[arg-type]
    )
    return aprs.ParallelRunStep(
        name="zygote-early",
        parallel_run_config=cfg,
        inputs=[["a", "b", "c", "d"]],
        output=tmp_path / "out",
    )


@pytest.fixture
def launches(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Record ("launch", zygote pid) per zygote started and ("pool", 0) per pool start,
    in order; the processes are real."""
    from aprs._bridge import _launch
    from aprs._bridge._pool import LocalPool

    events: list[tuple[str, int]] = []
    start_launch = _launch.Launch.start.__func__  # type: ignore[attr-defined]
    start_pool = LocalPool.start

    def launch(cls: type, spec: object) -> object:
        started = start_launch(cls, spec)
        events.append(("launch", started.proc.pid))
        return started

    async def pool_start(self: LocalPool) -> None:
        events.append(("pool", 0))
        await start_pool(self)

    monkeypatch.setattr(_launch.Launch, "start", classmethod(launch))
    monkeypatch.setattr(LocalPool, "start", pool_start)
    return events


def test_a_job_starts_its_fork_server_before_its_pool_which_adopts_it(
    tmp_path: Path, launches: list[tuple[str, int]]
) -> None:
    """One zygote per job, started by the step before the pool (its preload overlaps the
    parent's set-up); the pool forks every worker from it and nothing is left after."""
    step = _job(tmp_path)
    summary = step.run()
    assert summary.items_succeeded == 4
    assert [kind for kind, _ in launches] == ["launch", "pool"]
    zygote = launches[0][1]
    rows = (tmp_path / "out" / "parallel_run_step.txt").read_text().split("\n")
    workers = {tuple(map(int, row.split())) for row in rows if row}
    assert {ppid for _, ppid in workers} == {zygote}
    _assert_gone({zygote, *(pid for pid, _ in workers)})


def test_a_spawn_job_starts_no_fork_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, launches: list[tuple[str, int]]
) -> None:
    """APRS_WORKER_START=spawn: no zygote at all; each worker is a child of this process."""
    monkeypatch.setenv("APRS_WORKER_START", "spawn")
    _job(tmp_path).run()
    assert launches == [("pool", 0)]
    rows = (tmp_path / "out" / "parallel_run_step.txt").read_text().split()
    assert set(rows[1::2]) == {str(os.getpid())}


@pytest.mark.parametrize("how", ["run", "arun"])
def test_a_job_that_stops_before_its_pool_ends_its_fork_server(
    tmp_path: Path, launches: list[tuple[str, int]], how: str
) -> None:
    """The output cannot be opened (run_job fails before any pool exists): the usage error
    is raised as before and the zygote started early does not outlive the job (run() and
    arun() alike)."""
    step = _job(tmp_path)
    (tmp_path / "out" / "parallel_run_step.txt.partial").mkdir(parents=True)
    with pytest.raises(aprs.OutputError, match="cannot be opened"):
        if how == "run":
            step.run()
        else:
            run_coroutine(step.arun)
    assert [kind for kind, _ in launches] == ["launch"]
    _assert_gone({launches[0][1]})


def test_a_fork_server_dead_before_its_pool_adopts_it_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A zygote killed in its preload (here by a library's import) before the pool
    asks it for workers: the job fails with the fork server's error and the spawn switch,
    not with a broken pipe."""
    from aprs._bridge import _launch

    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "zydie.py").write_text(
        "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n"
    )
    start_launch = _launch.Launch.start.__func__  # type: ignore[attr-defined]

    def launch_and_wait_for_its_death(cls: type, spec: object) -> object:
        started = start_launch(cls, spec)
        started.proc.wait(timeout=60)
        return started

    monkeypatch.setattr(
        _launch.Launch, "start", classmethod(launch_and_wait_for_its_death)
    )
    paths = [str(lib), os.environ.get("PYTHONPATH", "")]
    step = _job(
        tmp_path / "job",
        "import zydie\n\ndef run(mini_batch):\n    return mini_batch\n",
        environment_variables={"PYTHONPATH": os.pathsep.join(p for p in paths if p)},
    )
    with pytest.raises(aprs.BackendError, match="fork server") as info:
        step.run()
    assert "killed by SIGKILL" in str(info.value)
    assert "worker_start" in str(info.value)


def test_launch_early_only_for_local_fork_server_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Launch is adopted once; discard() ends one nobody adopted; Ray and spawn get none."""
    from aprs._backends import WorkerSpec, default_env
    from aprs._backends._options import RayOptions
    from aprs._bridge._launch import launch_early

    (tmp_path / "score.py").write_text("def run(mini_batch):\n    return mini_batch\n")
    spec = WorkerSpec(str(tmp_path / "score.py"), None, [], default_env(), 1, 0, 5.0)
    launch = launch_early(spec)
    assert launch is not None
    proc = launch.discard()
    assert proc is not None and proc.wait(timeout=30) == -signal.SIGKILL
    assert launch.discard() is None and not launch.adopt()
    adopted = launch_early(spec)
    assert adopted is not None and adopted.adopt()
    assert adopted.discard() is None  # the adopter owns it now
    adopted.sock.close()  # EOF: the zygote exits
    assert adopted.proc.wait(timeout=30) == 0
    spec.worker_start = "spawn"
    assert launch_early(spec) is None
    spec.worker_start = None
    spec.ray = RayOptions()
    assert launch_early(spec) is None
    monkeypatch.setenv("APRS_WORKER_START", "vfork")  # the pool reports it, as before
    spec.ray = None
    assert launch_early(spec) is None
