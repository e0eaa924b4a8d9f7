"""`python -m perf.ray_bench`: aprs on the local pool, aprs on Ray, and Ray Data, same work.

    driver ──► data (once, under /tmp): F files of S KB; the tables of perf/tabular.py
           ──► for each round, workload, case: a fresh process (--one CASE WORKLOAD)
               local      aprs, compute_target="local", 2 worker processes
               ray1       aprs on a single-node Ray it starts itself (2 actors)
               ray3       aprs on a local 3-node cluster (head without CPUs + 2 nodes of 2
                          logical CPUs, node_count=2 x 1)
               ray3-ship  ray3 with ship_inputs (file workload only: bytes, not paths)
               data1      Ray Data map_batches, actor pool of 2, single node
               data3      Ray Data on the same 3-node cluster
           ──► Markdown tables on stdout: throughput (and aprs/Ray Data on the same
               cluster), first output row, ray.init, workers ready, driver peak RSS, and
               for "overhead" the cost of one batch

Workloads (the same run() work in every case, rows written in input order on the driver):
    files      F files, 10 per batch; run() reads each file, returns "name size crc32"
    csv20      perf/tabular.py: 2M iris rows in 20 CSVs, 10,000-row batches, LogisticRegression
    parquet20  the same rows in 20 Parquet files
    overhead   B in-memory ints in 1-item batches, run() returns its input: µs per batch =
               the time from the first batch's end to the last's / (B - 1) (aprs: from
               logs/minibatches.jsonl; Ray Data: from the rows reaching the driver), so
               start-up and teardown are left out
Ray Data reads the same inputs (from_items of the paths, read_csv / read_parquet, range),
maps with an actor class doing the same work (0.5 CPU each, leaving CPU for its read
tasks), and the driver writes its ``iter_batches`` (``preserve_order``) to one file.
Cluster creation is not timed; connecting to it is. Peak RSS is the measured process's
VmHWM (the driver; Ray's own daemons and the workers are other processes).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ._common import count_lines, peak_rss_mb
from ._measure import compile_packages

ROOT = Path(__file__).resolve().parent
SCRIPTS = ROOT / "scripts"
WORKERS = 2
STORE = 300 * 2**20  # object store per node of the local cluster
CASES = ("local", "ray1", "ray3", "ray3-ship", "data1", "data3")
WORKLOADS = ("files", "csv20", "parquet20", "overhead")
LABELS = {
    "local": "aprs, local pool",
    "ray1": "aprs on Ray, 1 node",
    "ray3": "aprs on Ray, 3-node cluster",
    "ray3-ship": "aprs on Ray, 3-node cluster, --ship-inputs",
    "data1": "Ray Data, 1 node",
    "data3": "Ray Data, 3-node cluster",
}
PEER = {"ray1": "data1", "ray3": "data3", "ray3-ship": "data3"}  # same cluster
FILE_BATCH = 10
TABLE_BATCH = 10_000
DATA = Path(os.environ.get("APRS_PERF_RAY_DATA", "/tmp/aprs-perf-ray"))


# -- inputs ------------------------------------------------------------------------------


def file_folder(count: int, kb: int) -> Path:
    """``count`` files of ``kb`` KB of pseudo-random bytes (made once)."""
    folder = DATA / f"files-{count}x{kb}k"
    if (folder / ".done").exists():
        return folder / "in"
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "in").mkdir(parents=True)
    block = os.urandom(kb * 1024)
    for i in range(count):
        (folder / "in" / f"f{i:06d}.bin").write_bytes(block[i % 97 :] + block[: i % 97])
    (folder / ".done").touch()
    return folder / "in"


def table_files(case: str) -> list[str]:
    from perf import tabular  # its ROWS come from APRS_PERF_ROWS, set by main()

    tabular.generate()
    return tabular.files(case)


def items_of(workload: str, args: argparse.Namespace) -> int:
    return {"files": args.files, "overhead": args.batches}.get(workload, args.rows)


# -- aprs --------------------------------------------------------------------------------


class _Timings(logging.Handler):
    """Catches the Ray backend's "connected in X s" and "all N actors ready after Y s"."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.connect_s = self.first_s = self.ready_s = float("nan")

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args if isinstance(record.args, tuple) else ()
        if record.msg.startswith("Ray: connected"):
            self.connect_s = float(args[0])  # type: ignore[arg-type]
        elif record.msg.startswith("Ray: first"):
            self.first_s = float(args[0])  # type: ignore[arg-type]
        elif record.msg.startswith("Ray: all"):
            self.ready_s = float(args[1])  # type: ignore[arg-type]


def _aprs_inputs(
    workload: str, args: argparse.Namespace
) -> tuple[list[Any], dict[str, Any]]:
    """The job's inputs, script and batching for ``workload``."""
    import aprs

    if workload == "files":
        folder = file_folder(args.files, args.file_kb)
        config = {
            "entry_script": str(SCRIPTS / "file_digest.py"),
            "mini_batch_size": FILE_BATCH,
        }
        return [aprs.FileDataset.from_files(str(folder))], config
    if workload == "overhead":
        return [list(range(args.batches))], {
            "entry_script": str(SCRIPTS / "noop.py"),
            "mini_batch_size": 1,
        }
    maker = (
        aprs.TabularDataset.from_parquet_files
        if workload.startswith("parquet")
        else aprs.TabularDataset.from_delimited_files
    )
    config = {
        "entry_script": str(SCRIPTS / "iris_score.py"),
        "mini_batch_rows": TABLE_BATCH,
        "append_row_file_name": "scores.csv",
    }
    return [maker(table_files(workload))], config


def run_aprs(
    case: str, workload: str, args: argparse.Namespace, address: str | None
) -> dict[str, Any]:
    import aprs

    inputs, config = _aprs_inputs(workload, args)
    if case != "local":
        nodes = 2 if address else 1
        config.update(
            compute_target="ray",
            ray_address=address,
            node_count=nodes,
            worker_resources={"num_cpus": 0.5},
            ship_inputs=case.endswith("-ship"),
        )
        config["process_count_per_node"] = WORKERS // nodes
    else:
        config["process_count_per_node"] = WORKERS
    timings = _Timings()
    logging.getLogger("aprs.ray").addHandler(timings)
    logging.getLogger("aprs.ray").setLevel(logging.INFO)
    out = Path(tempfile.mkdtemp(prefix="aprs-perf-ray-"))
    try:
        name = config.get("append_row_file_name", "parallel_run_step.txt")
        t0 = time.perf_counter()
        first = FirstRow(out / f"{name}.partial", t0)
        step = aprs.ParallelRunStep(
            name="ray-bench",
            parallel_run_config=aprs.ParallelRunConfig(**config),
            inputs=inputs,
            output=out,
            allow_reuse=False,
        )
        summary = step.run()
        elapsed = time.perf_counter() - t0
        lines = count_lines(out / name)
        per_batch, steady = _steady(out / "logs" / "minibatches.jsonl")
    finally:
        shutil.rmtree(out, ignore_errors=True)
    assert summary.items_succeeded == items_of(workload, args), summary
    return {
        "s": elapsed,
        "first_s": first.at(),
        "connect_s": timings.connect_s,
        "first_ready_s": timings.first_s,
        "ready_s": timings.ready_s,
        "lines": lines,
        "per_batch_s": per_batch,
        "steady_rate": steady,
    }


def _steady(journal: Path) -> tuple[float, float]:
    """(seconds between consecutive batch ends, items/s after the first batch's end):
    start-up and teardown left out."""
    ends: list[tuple[float, int]] = []
    with open(journal, "rb") as f:
        for line in f:
            row = json.loads(line)
            if isinstance(row, list):
                ends.append((row[5], row[6]))
    ends.sort()
    span = ends[-1][0] - ends[0][0]
    items = sum(n for _, n in ends[1:])
    return span / max(1, len(ends) - 1), items / span if span > 0 else float("nan")


class FirstRow:
    """When the first output bytes appeared in ``path`` (polled by a thread)."""

    def __init__(self, path: Path, t0: float) -> None:
        import threading

        self._at = float("nan")
        self._stop = threading.Event()

        def poll() -> None:
            while not self._stop.is_set():
                try:
                    if path.stat().st_size > 0:
                        self._at = time.perf_counter() - t0
                        return
                except OSError:
                    pass
                time.sleep(0.001)

        threading.Thread(target=poll, daemon=True).start()

    def at(self) -> float:
        self._stop.set()
        return self._at


# -- Ray Data ----------------------------------------------------------------------------


class FileDigest:
    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        rows = []
        for path in batch["path"]:
            with open(path, "rb") as f:
                data = f.read()
            rows.append(f"{os.path.basename(path)} {len(data)} {zlib.crc32(data):08x}")
        return {"row": rows}


class TableScorer:
    """perf/scripts/iris_score.py in a Ray Data actor: init() once, run() per batch."""

    def __init__(self) -> None:
        import importlib.util

        spec = importlib.util.spec_from_file_location(
            "iris_score", SCRIPTS / "iris_score.py"
        )
        assert spec is not None and spec.loader is not None
        self.script = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(self.script)
        self.script.init()

    def __call__(self, batch: Any) -> Any:
        return self.script.run(batch)


class Noop:
    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        return batch


def _data_pipeline(
    workload: str, args: argparse.Namespace
) -> tuple[Any, Callable[[Any], str]]:
    """(dataset, batch -> output text) doing ``workload``'s work in an actor pool."""
    import ray.data

    common = {"concurrency": WORKERS, "num_cpus": 0.5}
    if workload == "files":
        paths = sorted(str(p) for p in file_folder(args.files, args.file_kb).iterdir())
        ds = ray.data.from_items([{"path": p} for p in paths])
        ds = ds.map_batches(FileDigest, batch_size=FILE_BATCH, **common)
        return ds, lambda b: "".join(f"{r}\n" for r in b["row"])
    if workload == "overhead":
        ds = ray.data.range(args.batches).map_batches(Noop, batch_size=1, **common)
        return ds, lambda b: "".join(f"{x}\n" for x in b["id"].tolist())
    paths = table_files(workload)
    ds = (
        ray.data.read_parquet(paths)
        if workload.startswith("parquet")
        else ray.data.read_csv(paths)
    )
    ds = ds.map_batches(
        TableScorer, batch_size=TABLE_BATCH, batch_format="pandas", **common
    )
    return ds, lambda b: str(b.to_csv(header=False, index=False))


def run_data(
    case: str, workload: str, args: argparse.Namespace, address: str | None
) -> dict[str, Any]:
    import ray

    t0 = time.perf_counter()
    kwargs: dict[str, Any] = {"log_to_driver": False, "logging_level": "ERROR"}
    if address is None:
        kwargs.update(num_cpus=WORKERS, include_dashboard=False)
    ray.init(address=address or "local", **kwargs)
    connect_s = time.perf_counter() - t0
    first = float("nan")
    try:
        import ray.data

        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.execution_options.preserve_order = True
        ds, text = _data_pipeline(workload, args)
        fmt = "pandas" if workload in ("csv20", "parquet20") else "numpy"
        lines = 0
        with (
            tempfile.TemporaryDirectory() as out,
            open(os.path.join(out, "rows.txt"), "w") as f,
        ):
            for batch in ds.iter_batches(batch_size=None, batch_format=fmt):
                chunk = text(batch)
                f.write(chunk)
                lines += chunk.count("\n")
                last = time.perf_counter()
                if math.isnan(first):  # the first batch
                    f.flush()
                    first, first_rows = last - t0, lines
    finally:
        ray.shutdown()
    elapsed = time.perf_counter() - t0
    assert lines == items_of(workload, args), lines
    # per row after the first block (1-row batches in "overhead": per batch)
    span = last - t0 - first
    per = span / max(1, lines - first_rows)
    return {
        "s": elapsed,
        "first_s": first,
        "connect_s": connect_s,
        "first_ready_s": float("nan"),
        "ready_s": float("nan"),
        "lines": lines,
        "per_batch_s": per,
        "steady_rate": (lines - first_rows) / span if span > 0 else float("nan"),
    }


# -- one measurement ---------------------------------------------------------------------


def _cluster() -> Any:
    from ray.cluster_utils import Cluster

    c = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 0,
            "object_store_memory": STORE,
            "include_dashboard": False,
        },
    )
    for _ in range(
        2
    ):  # 2 logical CPUs: Ray Data's read tasks need 1 next to its actors
        c.add_node(num_cpus=2, object_store_memory=STORE)
    c.wait_for_nodes()
    return c


def one(case: str, workload: str, args: argparse.Namespace) -> dict[str, Any]:
    """Measure ``case`` on ``workload`` in this process; the cluster is made first, untimed."""
    if workload in ("csv20", "parquet20"):
        table_files(workload)  # generated before the clock starts
    cluster = _cluster() if case.startswith(("ray3", "data3")) else None
    address = cluster.address if cluster is not None else None
    try:
        run = run_data if case.startswith("data") else run_aprs
        result = run(case, workload, args, address)
    finally:
        if cluster is not None:
            cluster.shutdown()
    result["rss_mb"] = peak_rss_mb()
    return result


# -- the driver --------------------------------------------------------------------------


def _child(case: str, workload: str, args: argparse.Namespace) -> dict[str, Any] | str:
    """One measurement in a fresh process: its result, or "error: ..." / "timeout"."""
    cmd = [sys.executable, "-m", "perf.ray_bench", "--one", case, workload]
    child = subprocess.Popen(
        [*cmd, *_sizes(args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT.parent,
    )
    try:
        out, err = child.communicate(timeout=args.timeout)
    except subprocess.TimeoutExpired:
        child.send_signal(signal.SIGINT)  # its finally: shuts its Ray cluster down
        try:
            child.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            child.kill()
            child.communicate()
        return "timeout"
    if child.returncode:
        last = (err.strip().splitlines() or ["?"])[-1]
        return f"error: {last[:160]}"
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def _sizes(args: argparse.Namespace) -> list[str]:
    return [
        f"--files={args.files}",
        f"--file-kb={args.file_kb}",
        f"--rows={args.rows}",
        f"--batches={args.batches}",
    ]


def _pairs(args: argparse.Namespace) -> Iterator[tuple[str, str]]:
    for workload in args.workloads:
        for case in args.cases:
            if case.endswith("-ship") and workload != "files":
                continue  # only file inputs are shipped
            yield workload, case


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m perf.ray_bench",
        description="aprs on the local pool and on Ray vs Ray Data map_batches, same work "
        "(see the module docstring). Markdown on stdout, progress on stderr.",
    )
    p.add_argument("--workloads", nargs="+", choices=WORKLOADS, default=list(WORKLOADS))
    p.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES))
    p.add_argument(
        "--rounds", type=int, default=3, help="runs per case, interleaved (default 3)"
    )
    p.add_argument(
        "--files", type=int, default=2000, help="files of the files workload (2000)"
    )
    p.add_argument(
        "--file-kb", type=int, default=64, help="size of each file in KB (64)"
    )
    p.add_argument(
        "--rows", type=int, default=2_000_000, help="rows of the tables (2M)"
    )
    p.add_argument(
        "--batches", type=int, default=5000, help="1-item batches of overhead (5000)"
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run: 200 files, 100k rows, 500 batches, 1 round",
    )
    p.add_argument(
        "--timeout", type=float, default=600, help="seconds per measurement (600)"
    )
    p.add_argument(
        "--one", nargs=2, metavar=("CASE", "WORKLOAD"), help=argparse.SUPPRESS
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.quick:
        args.files, args.rows, args.batches, args.rounds = 200, 100_000, 500, 1
    os.environ["APRS_PERF_ROWS"] = str(args.rows)  # perf.tabular reads it on import
    if args.one:
        print(json.dumps(one(args.one[0], args.one[1], args)))
        return 0
    compile_packages()  # as pip install leaves them (perf._measure)
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    errors: dict[tuple[str, str], str] = {}
    started = time.perf_counter()
    for _ in range(args.rounds):  # interleaved: drift spreads over all cases
        for key in _pairs(args):
            if key in errors:
                continue
            result = _child(key[1], key[0], args)
            print(*key, result, file=sys.stderr, flush=True)
            if isinstance(result, str):
                errors[key] = result
            else:
                runs.setdefault(key, []).append(result)
    print(report(runs, errors, args))
    print(f"\n(total {time.perf_counter() - started:.0f} s)", file=sys.stderr)
    return 0


def report(
    runs: dict[tuple[str, str], list[dict[str, Any]]],
    errors: dict[tuple[str, str], str],
    args: argparse.Namespace,
) -> str:
    """One Markdown table per workload; medians of the rounds."""
    head = (
        f"{WORKERS} workers everywhere (Ray: 0.5 CPU each; 3-node cluster: node_count=2 x 1), "
        f"rounds={args.rounds}, medians. files: {args.files} x {args.file_kb} KB, "
        f"{FILE_BATCH} per batch; tables: {args.rows:,} rows, {TABLE_BATCH:,}-row batches; "
        f"overhead: {args.batches:,} 1-item no-op batches."
    )
    out = [head]
    for workload in args.workloads:
        out += ["", f"### {workload}", ""]
        out.append(
            "| case | items/s ↑ | steady items/s ↑ | vs Ray Data on the same cluster: end to end / steady | "
            "first row s ↓ | "
            "ray.init s | first / all workers ready s | µs/batch ↓ | driver peak RSS MB ↓ |"
        )
        out.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for w, case in _pairs(args):
            if w == workload:
                out.append(_row(workload, case, runs, errors, args))
    return "\n".join(out)


def _row(
    workload: str,
    case: str,
    runs: dict[tuple[str, str], list[dict[str, Any]]],
    errors: dict[tuple[str, str], str],
    args: argparse.Namespace,
) -> str:
    if (workload, case) in errors:
        return f"| {LABELS[case]} | {errors[workload, case]} | | | | | | | |"
    got = runs.get((workload, case), [])
    if not got:
        return f"| {LABELS[case]} | — | | | | | | | |"

    def med(key: str) -> float:
        return statistics.median(r[key] for r in got)

    items = items_of(workload, args)
    rate = items / med("s")
    steady = med("steady_rate")
    peer = runs.get((workload, PEER.get(case, "")), [])
    ratio = ""
    if peer:
        peer_rate = items / statistics.median(r["s"] for r in peer)
        peer_steady = statistics.median(r["steady_rate"] for r in peer)
        ratio = f"{rate / peer_rate:.2f}x / {_num(steady / peer_steady, '.2f')}"
    per = ""
    if workload == "overhead":
        per = f"{med('per_batch_s') * 1e6:,.0f}"

    def fmt(key: str) -> str:
        value = med(key)
        return "" if math.isnan(value) else f"{value:.2f}"

    return (
        f"| {LABELS[case]} | {rate:,.0f} | {_num(steady, ',.0f')} | {ratio} | {fmt('first_s')} | {fmt('connect_s')} | "
        f"{_ready(fmt('first_ready_s'), fmt('ready_s'))} | {per} | {med('rss_mb'):.0f} |"
    )


def _num(value: float, spec: str) -> str:
    """``value`` formatted (a ratio when spec is ".2f": with an "x"); "—" for nan."""
    if math.isnan(value):
        return "—"
    return format(value, spec) + ("x" if spec == ".2f" else "")


def _ready(first: str, every: str) -> str:
    """ "first / all"; "—" for all when the job ended before every actor was ready."""
    return f"{first} / {every or '—'}" if first else ""


if __name__ == "__main__":
    sys.exit(main())
