"""The Ray backend on real Ray: a local single-node Ray, and a 3-node cluster on this machine.

One cluster for the module (head + 2 worker nodes with distinct custom resources, so where an
actor landed is checkable); each job connects to it through ``ray_address`` as a user would.
Faults are triggered by the items (tests/scripts/ray_probe.py), never by timing.
"""

from __future__ import annotations

import os
import pickle
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from conftest import build_step, read_failures, script_path

import aprs

ray = pytest.importorskip("ray")
from ray.cluster_utils import Cluster

pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.timeout(240)]

STORE = 100 * 2**20  # object store per node: small, the payloads are tiny
WORKER = {"num_cpus": 0.5, "aprs_slot": 1}  # only the two worker nodes have aprs_slot


@pytest.fixture(autouse=True)
def no_leaked_processes() -> Iterator[None]:
    """Replaces conftest's guard here: Ray's own daemons stay, our worker actors must not."""
    yield
    deadline = time.monotonic() + 20
    while True:
        left = _worker_actors()
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert not left, f"worker actors outlived their job: {left}"


def _worker_actors() -> list[str]:
    found = []
    for p in psutil.Process().children(recursive=True):
        try:
            title = " ".join(p.cmdline())
        except psutil.Error:
            continue
        if title.startswith("ray::RayWorker"):
            found.append(f"{p.pid}: {title}")
    return found


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """Head (no worker slots) + nodes "a" and "b" with 2 worker slots each."""
    c = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 1,
            "object_store_memory": STORE,
            "include_dashboard": False,
        },
    )
    for name in ("a", "b"):
        c.add_node(
            num_cpus=2,
            object_store_memory=STORE,
            resources={"aprs_slot": 2, f"node_{name}": 1},
        )
    c.wait_for_nodes()
    yield c
    c.shutdown()


@pytest.fixture
def marks(tmp_path: Path) -> Path:
    folder = tmp_path / "marks"
    folder.mkdir()
    return folder


def ray_job(
    tmp_path: Path,
    marks: Path,
    items: list[str],
    *,
    name: str = "ray-job",
    **config: Any,
) -> aprs.ParallelRunStep:
    config.setdefault("compute_target", "ray")
    config.setdefault("mini_batch_size", 2)
    env = {"APRS_TEST_MARKS": str(marks), **config.pop("env", {})}
    return build_step(
        tmp_path / name,
        "ray_probe",
        [items],
        name=name,
        environment_variables=env,
        arguments=["--flavour", "ray"],
        **config,
    )


def rows(summary: aprs.JobSummary) -> list[str]:
    assert summary.output_file is not None
    return Path(summary.output_file).read_text().splitlines()


def inits(marks: Path) -> list[tuple[str, str]]:
    """(node id, pid) of every init() call."""
    found = [p.name.split("-")[1:] for p in marks.glob("init-*")]
    return [(node, pid) for node, pid in found]


def worker_node_ids(cluster: Cluster) -> set[str]:
    """The Ray node ids of the worker nodes (the head excluded)."""
    return {node.node_id for node in cluster.worker_nodes}


ITEMS = [f"i{n:02d}" for n in range(16)]


# -- a Ray of its own -------------------------------------------------------------------


def test_local_ray_started_when_no_address(
    tmp_path: Path, marks: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No address and no RAY_ADDRESS: the job starts Ray here, runs, and stops it again."""
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    step = ray_job(tmp_path, marks, ITEMS, process_count_per_node=2)
    summary = step.run()
    local = ray_job(tmp_path, marks, ITEMS, name="local-job", compute_target="local")
    expected = rows(local.run())
    assert rows(summary) == expected == [f"{i} {n // 2}" for n, i in enumerate(ITEMS)]
    assert summary.status == "completed" and summary.workers == 2
    assert not ray.is_initialized()  # the job's own Ray is gone with the job
    logs = list((step_logs := Path(step.output) / "logs" / "user").rglob("*.txt"))
    stdout = [p for p in logs if p.parent.parent.name == "stdout"]
    assert stdout, f"no worker stdout collected under {step_logs}"
    text = "".join(p.read_text() for p in stdout)
    assert "init argv=['--mini_batch_size', '2']" in text
    # a Ray of our own ships no code (same machine): the actors run the driver's aprs
    assert f"aprs from {os.path.dirname(aprs.__file__)}\n" in text


# -- the multi-node cluster -------------------------------------------------------------


def test_actors_spread_over_node_count_nodes(
    tmp_path: Path, marks: Path, cluster: Cluster
) -> None:
    """node_count=2 x 2: each worker node hosts exactly two actors, the head none."""
    items = ["gather", *ITEMS]
    step = ray_job(
        tmp_path,
        marks,
        items,
        ray_address=cluster.address,
        node_count=2,
        process_count_per_node=2,
        worker_resources=WORKER,
        env={"APRS_TEST_WORKERS": "4"},
    )
    summary = step.run()
    assert summary.status == "completed" and summary.workers == 4
    where = Counter(node for node, _pid in inits(marks))
    assert set(where) == worker_node_ids(cluster)  # both worker nodes, not the head
    assert sorted(where.values()) == [2, 2]
    assert rows(summary) == [f"{i} {n // 2}" for n, i in enumerate(items)]


def test_output_equals_local_backend_row_by_row(
    tmp_path: Path, marks: Path, cluster: Cluster
) -> None:
    """The same job (with failing items) gives the same rows and counts on both backends."""
    items = [*ITEMS[:5], "bad", *ITEMS[5:]]
    common: dict[str, Any] = {"process_count_per_node": 2, "run_max_try": 2}
    on_ray = ray_job(
        tmp_path,
        marks,
        items,
        ray_address=cluster.address,
        node_count=2,
        worker_resources=WORKER,
        **common,
    ).run()
    local = ray_job(
        tmp_path, marks, items, name="local-job", compute_target="local", **common
    ).run()
    assert rows(on_ray) == rows(local)
    for field in ("items_succeeded", "items_failed", "mini_batches_failed", "retries"):
        assert getattr(on_ray, field) == getattr(local, field), field


def test_actor_killed_mid_job(tmp_path: Path, marks: Path, cluster: Cluster) -> None:
    """ray.kill of the actor running a batch: that batch crashes once, is retried, no loss."""
    items = [*ITEMS[:6], "kill-actor", *ITEMS[6:], "gather"]
    step = ray_job(
        tmp_path,
        marks,
        items,
        ray_address=cluster.address,
        process_count_per_node=2,
        worker_resources=WORKER,
        env={"APRS_TEST_WORKERS": "3"},  # "gather" waits for the replacement's init()
    )
    summary = step.run()
    assert summary.status == "completed"
    assert rows(summary) == [f"{i} {n // 2}" for n, i in enumerate(items)]
    assert summary.worker_crashes == 1 and summary.retries == 1
    [record] = read_failures(Path(step.output))
    # the crash is charged to the oldest call the driver has no reply for: mini-batch 3
    # (the one that killed its actor), or 2 when Ray lost the reply of the call that
    # finished on that actor just before the kill (Ray then fails that call too)
    assert record["kind"] == "crashed" and record["mini_batch_index"] in (2, 3)
    assert len(inits(marks)) == 3  # the replacement ran init() again


def test_hung_run_is_killed_and_replaced(
    tmp_path: Path, marks: Path, cluster: Cluster
) -> None:
    """A run() past run_invocation_timeout: the actor is killed, the batch retried."""
    items = [*ITEMS[:3], "hang", *ITEMS[3:8]]
    step = ray_job(
        tmp_path,
        marks,
        items,
        ray_address=cluster.address,
        process_count_per_node=2,
        worker_resources=WORKER,
        run_invocation_timeout=3,
    )
    summary = step.run()
    assert summary.status == "completed"
    assert rows(summary) == [f"{i} {n // 2}" for n, i in enumerate(items)]
    assert summary.worker_timeouts == 1
    [record] = read_failures(Path(step.output))
    assert record["kind"] == "timeout" and record["mini_batch_index"] == 1


def test_threshold_stops_job_and_cancels_running_calls(
    tmp_path: Path, marks: Path, cluster: Cluster
) -> None:
    """error_threshold crossed while another actor runs a call that would never return."""
    items = ["slow", "x", "bad", "y"]  # batch 0 never returns; batch 1 fails
    step = ray_job(
        tmp_path,
        marks,
        items,
        ray_address=cluster.address,
        process_count_per_node=2,
        worker_resources=WORKER,
        error_threshold=0,
        run_max_try=1,
    )
    with pytest.raises(aprs.ErrorThresholdError) as info:
        step.run()
    summary = info.value.summary
    assert summary is not None and summary.stop_reason == "error_threshold"
    assert summary.items_failed == 2 and summary.items_succeeded == 0


def _ray_runner(cluster: Cluster, marks: Path, *, workers: int) -> aprs.Runner:
    """A Runner of ray_probe.py on the module's cluster, half a CPU per actor."""
    return aprs.Runner(
        script_path("ray_probe"),
        process_count_per_node=workers,
        compute_target="ray",
        ray_address=cluster.address,
        worker_resources={"num_cpus": 0.5},
        environment_variables={"APRS_TEST_MARKS": str(marks)},
    )


def test_runner_on_ray(cluster: Cluster, marks: Path) -> None:
    """Runner(compute_target="ray"): warm actors answer submit() and map()."""
    import anyio

    async def go() -> tuple[list[Any], list[list[Any]]]:
        async with _ray_runner(cluster, marks, workers=2) as runner:
            one = await runner.submit(["p", "q"])
            many = [rows async for rows in runner.map(ITEMS[:6], batch_size=2)]
        return one, many

    one, many = anyio.run(go)
    assert one == ["p 0", "q 0"]
    assert [r.split()[0] for batch in many for r in batch] == ITEMS[:6]


def test_runner_on_ray_keeps_min_depth_after_a_failed_try(
    cluster: Cluster, marks: Path
) -> None:
    """The Runner's floor of 2 calls per actor (WorkerSpec.min_depth) holds on Ray after
    run() raised, as on the local pool: a batch gathered while the actor is busy still
    waits at the actor. Before the fix Ray dropped to 1 call per actor after any failure."""
    import anyio

    async def go() -> tuple[int, int]:
        async with _ray_runner(cluster, marks, workers=1) as runner:
            with pytest.raises(ValueError, match="bad item"):
                await runner.submit(["bad"])
            backend = runner._backend
            assert backend is not None
            return backend.capacity(), backend.statistics().depth

    capacity, depth = anyio.run(go)
    assert (capacity, depth) == (2, 2)


def test_killed_driver_resumes(tmp_path: Path, marks: Path, cluster: Cluster) -> None:
    """SIGKILL of the driver mid-job; the same command resumes; every row exactly once."""
    names = [
        f"{n:02d}_{item}" for n, item in enumerate([*ITEMS[:8], "stall", *ITEMS[8:]])
    ]
    folder = tmp_path / "inputs"
    folder.mkdir()
    for name in names:
        (folder / name).write_text(name)
    out = tmp_path / "resumed"
    cmd = [
        sys.executable,
        "-m",
        "aprs",
        "run",
        "--name",
        "resume-job",
        "--entry-script",
        str(script_path("ray_probe")),
        "--input",
        str(folder),
        "--output",
        str(out),
        "--compute-target",
        "ray",
        "--ray-address",
        cluster.address,
        "--mini-batch-size",
        "1",
        "--process-count-per-node",
        "2",
        "--worker-resources",
        "num_cpus=0.5",
        "--env",
        f"APRS_TEST_MARKS={marks}",
        "--no-progress",
    ]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    first = subprocess.Popen(cmd, env=env)
    try:
        _wait_for(lambda: (marks / "stalled").exists() or first.poll() is not None)
        assert first.poll() is None, "the first run ended before the stall"
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    (marks / "go").touch()
    done = subprocess.run(
        cmd, check=False, env=env, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr
    final = (out / "parallel_run_step.txt").read_text().splitlines()
    assert final == [f"{name} {n}" for n, name in enumerate(names)]


def test_too_few_nodes_is_a_clear_error(
    tmp_path: Path, marks: Path, cluster: Cluster
) -> None:
    """node_count=3 where only 2 nodes have worker slots: an error after ray_node_wait."""
    step = ray_job(
        tmp_path,
        marks,
        ITEMS,
        ray_address=cluster.address,
        node_count=3,
        process_count_per_node=1,
        worker_resources=WORKER,
        ray_node_wait=2,
    )
    with pytest.raises(aprs.BackendError, match=r"node_count=3 .* needs 3 Ray nodes"):
        step.run()
    assert not inits(marks)


def test_missing_extra_is_a_usage_error(tmp_path: Path) -> None:
    """Without an importable ray: exit 2 naming the install command (real CLI process)."""
    fake = tmp_path / "no_ray" / "ray"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(
        "raise ImportError(\"No module named 'ray'\", name='ray')\n"
    )
    (tmp_path / "in.txt").write_text("x")
    path = os.pathsep.join([str(fake.parent), *sys.path])
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "aprs",
            "run",
            "--entry-script",
            str(script_path("echo")),
            "--input",
            str(tmp_path / "in.txt"),
            "--output",
            str(tmp_path / "out"),
            "--compute-target",
            "ray",
            "--no-progress",
        ],
        check=False,
        env={**os.environ, "PYTHONPATH": path},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert "pip install 'aprs[ray]'" in done.stderr


# -- ship_inputs: file bytes through the object store ------------------------------------


def _shared_inputs(root: Path) -> dict[str, bytes]:
    """key=value folders, one base name in two folders, one file big enough for ray.put."""
    rng = random.Random(0)
    files = {
        "store=A/brand=x/01.txt": b"a-x-1",
        "store=A/brand=x/02.txt": b"a-x-2",
        "store=A/brand=y/01.txt": b"a-y-1",  # same base name as above
        "store=B/brand=x/big.bin": rng.randbytes(300_000),  # its batch goes by ray.put
        "store=B/brand=x/03.txt": b"b-x-3",
        "store=B/brand=y/04.txt": b"",
        "store=B/brand=y/05.txt": b"b-y-5",
    }
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return files


@pytest.mark.parametrize("keyed", [False, True], ids=["files", "partition-keys"])
def test_ship_inputs_runs_on_node_local_copies(
    tmp_path: Path,
    marks: Path,
    cluster: Cluster,
    keyed: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """ship_inputs: run() gets copies under a node-local folder (never the driver's
    paths), with the same names and contents, deleted after the call; rows equal the
    local backend's (which reads the files in place). Unkeyed, the byte budget is one
    byte: each batch is read only once the one before is written (no deadlock)."""
    if not keyed:
        from aprs import _produce

        monkeypatch.setattr(_produce, "SHIP_BUDGET", 1)
    root = tmp_path / "shared"
    _shared_inputs(root)
    common: dict[str, Any] = {"process_count_per_node": 1}
    if keyed:
        common["partition_keys"] = ["store", "brand"]
    else:
        common["mini_batch_size"] = 2

    def job(name: str, **config: Any) -> aprs.JobSummary:
        env = {"APRS_TEST_MARKS": str(marks), **config.pop("env", {})}
        step = build_step(
            tmp_path / name,
            "ship_probe",
            [aprs.FileDataset.from_files(str(root))],
            name=name,
            environment_variables=env,
            **common,
            **config,
        )
        return step.run()

    local = job("local", compute_target="local")  # first: the Ray job deletes a file
    shipped = job(
        "shipped",
        compute_target="ray",
        ray_address=cluster.address,
        node_count=2,
        worker_resources=WORKER,
        ship_inputs=True,
        env={"APRS_TEST_INPUT_ROOT": str(root)},
    )
    assert shipped.status == "completed" and shipped.items_failed == 0
    assert shipped.retries == 1  # big.bin's first try deleted the driver's copy
    assert not (root / "store=B/brand=x/big.bin").exists()
    assert rows(shipped) == rows(local) and len(rows(local)) == 7
    seen = [line for p in marks.glob("seen-*") for line in p.read_text().split()]
    ray_seen = [p for p in seen if "-inputs" in p]
    names = Counter(Path(p).name for p in ray_seen)
    assert set(names) == {"01.txt", "02.txt", "03.txt", "04.txt", "05.txt", "big.bin"}
    assert (
        names["big.bin"] == 2
    )  # its batch ran twice: the retry used the shipped bytes
    for path in ray_seen:
        assert not path.startswith(str(root)), path  # a copy,
        assert f"{root}{os.sep}store=" in path, path  # the driver's path re-rooted
        assert not os.path.exists(path), f"{path} outlived its run() call"


def test_ship_inputs_with_isolate_failures(
    tmp_path: Path, marks: Path, cluster: Cluster
) -> None:
    """A bisected mini-batch's parts reuse the shipped bytes: only the poison file fails,
    the rows and counts equal the local backend's."""
    root = tmp_path / "shared"
    root.mkdir()
    for n in range(6):
        name = "poison.txt" if n == 4 else f"{n:02d}.txt"
        (root / name).write_bytes(bytes([65 + n]) * (40_000 * n))  # 200 KB in all
    outputs = []
    for target in ("local", "ray"):
        extra: dict[str, Any] = {}
        env = {"APRS_TEST_MARKS": str(marks)}
        if target == "ray":  # run() fails if it gets a driver path
            extra = {"ray_address": cluster.address, "ship_inputs": True}
            extra["worker_resources"] = WORKER
            env["APRS_TEST_INPUT_ROOT"] = str(root)
        step = build_step(
            tmp_path / target,
            "ship_probe",
            [aprs.FileDataset.from_files(str(root))],
            name=f"isolate-{target}",
            environment_variables=env,
            compute_target=target,
            mini_batch_size=6,
            isolate_failures=True,
            run_max_try=1,
            **extra,
        )
        summary = step.run()
        assert (summary.items_succeeded, summary.items_failed) == (5, 1), target
        outputs.append(rows(summary))
    assert outputs[0] == outputs[1] and len(outputs[0]) == 5


def test_ship_inputs_unreadable_file_fails_its_batch(
    tmp_path: Path, marks: Path, cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file the driver cannot read when it ships the batch fails that batch (all its
    tries, with the reason), not the job. A 1-byte budget makes the order certain: b.txt
    is read only after a.txt's run() (which deletes it) is written."""
    from aprs import _produce

    monkeypatch.setattr(_produce, "SHIP_BUDGET", 1)
    root = tmp_path / "shared"
    root.mkdir()
    for name in ("a.txt", "b.txt", "c.txt"):
        (root / name).write_text(name)
    step = build_step(
        tmp_path / "out",
        "ship_probe",
        [aprs.FileDataset.from_files(str(root))],
        name="unreadable",
        environment_variables={
            "APRS_TEST_MARKS": str(marks),
            "APRS_TEST_INPUT_ROOT": str(root),
        },
        compute_target="ray",
        ray_address=cluster.address,
        worker_resources=WORKER,
        ship_inputs=True,
        mini_batch_size=1,
        process_count_per_node=1,
    )
    summary = step.run()
    assert (summary.items_succeeded, summary.items_failed) == (2, 1)
    assert [r.split("|")[2] for r in rows(summary)] == ["shared/a.txt", "shared/c.txt"]
    [record] = read_failures(Path(step.output))
    assert record["mini_batch_index"] == 1
    assert "could not be read to ship it" in record["message"]


def test_shipped_files_are_packed_in_order(
    tmp_path: Path, cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ship_files packs a big batch into few objects (one per CHUNK_BYTES) and
    materialise writes every file back, in order, at its re-rooted path."""
    from aprs._backends import KIND_ITEMS, _ray_ship

    monkeypatch.setattr(_ray_ship, "CHUNK_BYTES", 250_000)
    rng = random.Random(1)
    sizes = [120_000, 90_000, 0, 300_000, 5, 100_000]
    paths = []
    for n, size in enumerate(sizes):
        path = (
            tmp_path / "in" / f"d{n % 2}" / "same.bin"
            if n < 2
            else tmp_path / f"{n}.bin"
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(size))
        paths.append(str(path))
    ray.init(address=cluster.address, logging_level="ERROR")
    try:
        shipped = _ray_ship.ship_files(paths)
        assert shipped.inline is None and shipped.nbytes == sum(sizes)
        assert len(shipped.refs) == 3  # [120k, 90k, 0], [300k], [5, 100k]
        chunks = tuple(ray.get(shipped.refs))
        small = _ray_ship.ship_files(paths[4:5])
        assert small.inline is not None and not small.refs  # tiny batches go inline
    finally:
        ray.shutdown()
    folder = tmp_path / "node"
    files = (shipped.paths, None)
    payload = pickle.dumps(paths)
    local = pickle.loads(
        _ray_ship.materialise(str(folder), KIND_ITEMS, payload, files, chunks)
    )
    assert local == [str(folder) + p for p in paths]
    assert [Path(p).read_bytes() for p in local] == [
        Path(p).read_bytes() for p in paths
    ]
    # a part of the batch (isolate_failures) names fewer paths: only those are written
    part = tmp_path / "part"
    payload = pickle.dumps(paths[1:4])
    local = pickle.loads(
        _ray_ship.materialise(str(part), KIND_ITEMS, payload, files, chunks)
    )
    assert [Path(p).read_bytes() for p in local] == [
        Path(p).read_bytes() for p in paths[1:4]
    ]
    assert sum(1 for p in part.rglob("*") if p.is_file()) == 3


def test_ship_inputs_refused_where_it_cannot_apply(tmp_path: Path) -> None:
    """Tables are read by the workers from their path, and a local job sees its files:
    both are a ConfigError (exit 2) naming the fix."""
    table = tmp_path / "t.csv"
    table.write_text("a\n1\n")
    cfg = aprs.ParallelRunConfig(
        entry_script=str(script_path("echo")), compute_target="ray", ship_inputs=True
    )
    with pytest.raises(aprs.ConfigError, match="Put the tables on storage every node"):
        aprs.ParallelRunStep(
            "tables",
            cfg,
            [aprs.TabularDataset.from_delimited_files(str(table))],
            output=tmp_path / "out",
        )
    with pytest.raises(
        aprs.ConfigError, match='`ship_inputs` only applies to compute_target="ray"'
    ):
        aprs.ParallelRunConfig(entry_script="score.py", ship_inputs=True)


# -- tabular inputs on Ray -------------------------------------------------------------


def test_tabular_job_on_ray_equals_local(tmp_path: Path, cluster: Cluster) -> None:
    """CSV and Parquet tables, mini_batch_rows: the actors read their own slices and the
    ordered output is byte for byte the local backend's."""
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    score = Path(__file__).parent / "tabular" / "scripts" / "score_table.py"
    df = pd.DataFrame({"id": range(1200), "x": [i * 0.5 for i in range(1200)]})
    df["text"] = [f"row {i}" for i in range(1200)]
    df.iloc[:700].to_csv(tmp_path / "p0.csv", index=False)
    df.iloc[700:].to_csv(tmp_path / "p1.csv", index=False)
    df.iloc[:500].to_parquet(tmp_path / "p0.parquet", row_group_size=150)
    df.iloc[500:].to_parquet(tmp_path / "p1.parquet", row_group_size=150)
    tables = {
        "csv": aprs.TabularDataset.from_delimited_files(str(tmp_path / "p*.csv")),
        "parquet": aprs.TabularDataset.from_parquet_files(str(tmp_path / "p*.parquet")),
    }
    for fmt, ds in tables.items():
        outputs = []
        for target in ("ray", "local"):
            extra: dict[str, Any] = {}
            if target == "ray":
                extra = {"ray_address": cluster.address, "node_count": 2}
                extra["worker_resources"] = WORKER
            step = build_step(
                tmp_path / f"{fmt}-{target}",
                score,
                [ds.as_named_input("scores")],
                name=f"{fmt}-{target}",
                compute_target=target,
                mini_batch_rows=250,
                process_count_per_node=1,
                **extra,
            )
            summary = step.run()
            assert summary.status == "completed", (fmt, target)
            assert summary.items_succeeded == 1200 and summary.mini_batches_total > 4
            outputs.append(Path(summary.output_file or "").read_bytes())
        assert outputs[0] == outputs[1], fmt
        assert len(outputs[0].splitlines()) == 1200


def test_node_removed_mid_job(tmp_path: Path, marks: Path, cluster: Cluster) -> None:
    """A whole node goes away under a running batch: crash, retried on the other node.

    Last in the module: it takes node "a" or "b" away for good.
    """
    items = [*ITEMS[:4], "block", *ITEMS[4:10]]
    step = ray_job(
        tmp_path,
        marks,
        items,
        ray_address=cluster.address,
        node_count=2,
        process_count_per_node=1,
        worker_resources=WORKER,
        ray_node_wait=30,
    )
    import threading

    def remove_blocked_node() -> None:
        _wait_for(lambda: (marks / "blocked-node").exists())
        blocked = (marks / "blocked-node").read_text()
        node = next(n for n in cluster.worker_nodes if n.node_id == blocked)
        cluster.remove_node(node, allow_graceful=False)

    remover = threading.Thread(target=remove_blocked_node, daemon=True)
    remover.start()
    summary = step.run()
    remover.join(5)
    assert summary.status == "completed"
    assert rows(summary) == [f"{i} {n // 2}" for n, i in enumerate(items)]
    assert summary.worker_crashes >= 1
    crashed = [r for r in read_failures(Path(step.output)) if r["kind"] == "crashed"]
    assert [r["mini_batch_index"] for r in crashed] == [2]


def _wait_for(condition: Any, limit: float = 120.0) -> None:
    """Wait until ``condition()`` (a file the script made): a guard, not a timed check."""
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, "the script never reached the marker"
        time.sleep(0.1)


def test_isolate_failures_on_ray(tmp_path: Path, marks: Path, cluster: Cluster) -> None:
    """Bisection works through the seam: a poison item fails alone on Ray; a batch whose
    actor was killed once is split and ends with every item written."""
    items = [*ITEMS[:5], "bad", *ITEMS[5:8], "kill-actor", *ITEMS[8:]]
    step = ray_job(
        tmp_path,
        marks,
        items,
        ray_address=cluster.address,
        process_count_per_node=2,
        worker_resources=WORKER,
        mini_batch_size=4,
        run_max_try=1,
        isolate_failures=True,
    )
    summary = step.run()
    assert summary.status == "completed"
    assert rows(summary) == [f"{i} {n // 4}" for n, i in enumerate(items) if i != "bad"]
    assert (summary.items_failed, summary.items_isolated) == (1, 1)
    assert (summary.mini_batches_failed, summary.worker_crashes) == (1, 1)
    records = read_failures(Path(step.output))
    # the poison item's tries: the whole mini-batch 1, then down to item 1 alone
    raised = [
        (r["mini_batch_index"], r["part"] or [])
        for r in records
        if r["kind"] == "failed"
    ]
    assert raised[0] == (1, []) and raised[-1] == (1, [1, 1])
    # one crash: the killed actor's call (or the call before it on that actor, when Ray
    # lost that call's reply; see test_actor_killed_mid_job)
    assert [r["kind"] for r in records].count("crashed") == 1
