"""`python -m perf.tabular`: scoring tables with aprs vs pandas, pandas + Pool and Ray Data.

    generate (once, under /tmp): 2M rows x 5 columns (id + 4 iris-like floats)
        as one CSV, 20 CSVs, 20 Parquet files
    for each round, peer, case: a fresh process (python -m perf.tabular --one PEER CASE)
        ──► rows/s, first output row (s), peak RSS of that process (the parent's),
            CPU s of that process and its children (the work, independent of the load)
    memory: aprs's parent peak RSS on a 50 MB CSV vs a 5 GB CSV (built by repetition,
        deleted afterwards)

Every peer trains the same LogisticRegression in its workers' init, predicts per 10,000-row
batch with 2 workers, and writes ``id,prediction`` rows in input order.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ._common import count_lines, peak_rss_mb
from ._measure import compile_packages

ROOT = Path(__file__).resolve().parent
SCRIPT = ROOT / "scripts" / "iris_score.py"
ROWS = int(os.environ.get("APRS_PERF_ROWS", "2000000"))
DATA = Path(os.environ.get("APRS_PERF_TABLES", "/tmp/aprs-perf-tables")) / str(ROWS)
BATCH = 10_000
WORKERS = 2
CASES = ("csv1", "csv20", "parquet20")
PEERS = ("aprs", "pandas serial", "pandas + Pool.imap", "Ray Data")


# -- data ------------------------------------------------------------------------------


def generate(rows: int = ROWS) -> None:
    """The three inputs (skipped when present)."""
    import numpy as np
    import pandas as pd

    if (DATA / f"done-{rows}").exists():
        return
    shutil.rmtree(DATA, ignore_errors=True)
    (DATA / "csv20").mkdir(parents=True)
    (DATA / "parquet20").mkdir()
    rng = np.random.default_rng(0)
    centers = np.array(
        [[5.0, 3.4, 1.5, 0.2], [5.9, 2.8, 4.3, 1.3], [6.6, 3.0, 5.6, 2.0]]
    )
    kind = rng.integers(0, 3, rows)
    values = (centers[kind] + rng.normal(0, 0.3, (rows, 4))).round(2)
    df = pd.DataFrame(
        values, columns=["sepal_length", "sepal_width", "petal_length", "petal_width"]
    )
    df.insert(0, "id", np.arange(rows))
    (DATA / "csv1").mkdir()
    df.to_csv(DATA / "csv1" / "iris.csv", index=False)
    step = -(-rows // 20)
    for i in range(20):
        part = df.iloc[i * step : (i + 1) * step]
        part.to_csv(DATA / "csv20" / f"part-{i:02d}.csv", index=False)
        part.to_parquet(DATA / "parquet20" / f"part-{i:02d}.parquet", index=False)
    (DATA / f"done-{rows}").touch()


def files(case: str) -> list[str]:
    return sorted(str(p) for p in (DATA / case).iterdir())


# -- measurements (one per process) ----------------------------------------------------


class FirstRow(threading.Thread):
    """Polls a file until it holds bytes: the time of the first output row."""

    def __init__(self, path: Path, t0: float) -> None:
        super().__init__(daemon=True)
        self.path, self.t0, self.at = path, t0, float("nan")

    def run(self) -> None:
        while True:
            try:
                if self.path.stat().st_size > 0:
                    self.at = time.perf_counter() - self.t0
                    return
            except OSError:
                pass
            time.sleep(0.002)


def run_aprs(case: str, out: Path) -> dict[str, Any]:
    import aprs

    fmt = "parquet" if case.startswith("parquet") else "csv"
    maker = (
        aprs.TabularDataset.from_parquet_files
        if fmt == "parquet"
        else aprs.TabularDataset.from_delimited_files
    )
    t0 = time.perf_counter()
    watch = FirstRow(out / "scores.csv.partial", t0)
    watch.start()
    cfg = aprs.ParallelRunConfig(
        entry_script=str(SCRIPT),
        mini_batch_rows=BATCH,
        process_count_per_node=WORKERS,
        append_row_file_name="scores.csv",
    )
    step = aprs.ParallelRunStep(
        name="bench-tables",
        parallel_run_config=cfg,
        inputs=[maker(files(case))],
        output=out,
        allow_reuse=False,
    )
    summary = step.run()
    elapsed = time.perf_counter() - t0
    assert summary.items_succeeded == ROWS, summary
    return {"s": elapsed, "first_s": watch.at, "lines": count_lines(out / "scores.csv")}


def chunks(case: str) -> Iterator[Any]:
    import pandas as pd
    import pyarrow.parquet as pq

    for path in files(case):
        if path.endswith(".parquet"):
            for batch in pq.ParquetFile(path).iter_batches(BATCH):
                yield batch.to_pandas()
        else:
            yield from pd.read_csv(path, chunksize=BATCH)


def _script() -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location("iris_score", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_serial(case: str, out: Path) -> dict[str, Any]:
    t0 = time.perf_counter()
    script = _script()
    script.init()
    first = float("nan")
    with open(out / "scores.csv", "w") as f:
        f.write("id,prediction\n")
        for chunk in chunks(case):
            f.write(script.score_text(chunk))
            if math.isnan(first):
                f.flush()
                first = time.perf_counter() - t0
    return {
        "s": time.perf_counter() - t0,
        "first_s": first,
        "lines": count_lines(out / "scores.csv"),
    }


_worker_script: Any = None


def _pool_init() -> None:
    global _worker_script
    _worker_script = _script()
    _worker_script.init()


def _pool_score(chunk: Any) -> str:
    return str(_worker_script.score_text(chunk))


def run_pool(case: str, out: Path) -> dict[str, Any]:
    import multiprocessing

    t0 = time.perf_counter()
    first = float("nan")
    with (
        multiprocessing.Pool(WORKERS, initializer=_pool_init) as pool,
        open(out / "scores.csv", "w") as f,
    ):
        f.write("id,prediction\n")
        for text in pool.imap(_pool_score, chunks(case)):
            f.write(text)
            if math.isnan(first):
                f.flush()
                first = time.perf_counter() - t0
    return {
        "s": time.perf_counter() - t0,
        "first_s": first,
        "lines": count_lines(out / "scores.csv"),
    }


class RayScorer:
    def __init__(self) -> None:
        self.script = _script()
        self.script.init()

    def __call__(self, batch: Any) -> Any:
        return self.script.run(batch)


def run_ray(case: str, out: Path) -> dict[str, Any]:
    import ray

    t0 = time.perf_counter()
    ray.init(
        address="local", num_cpus=WORKERS, include_dashboard=False, log_to_driver=False
    )
    init_s = time.perf_counter() - t0
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.execution_options.preserve_order = True
        paths = files(case)
        ds = (
            ray.data.read_parquet(paths)
            if case.startswith("parquet")
            else ray.data.read_csv(paths)
        )
        ds = ds.map_batches(
            RayScorer,
            batch_size=BATCH,
            batch_format="pandas",
            concurrency=WORKERS,
            num_cpus=0.5,  # 2 scoring actors leave a CPU for Ray's read tasks (no stall)
        )
        ds.write_csv(str(out / "ray"))
        elapsed = time.perf_counter() - t0
    finally:
        ray.shutdown()
    lines = sum(count_lines(p) - 1 for p in (out / "ray").iterdir())
    return {
        "s": elapsed,
        "first_s": float("nan"),
        "lines": lines + 1,
        "ray_init_s": init_s,
    }


RUNNERS: dict[str, Callable[[str, Path], dict[str, Any]]] = {
    "aprs": run_aprs,
    "pandas serial": run_serial,
    "pandas + Pool.imap": run_pool,
    "Ray Data": run_ray,
}


def one(peer: str, case: str) -> dict[str, Any]:
    out = Path(tempfile.mkdtemp(prefix="aprs-perf-tab-"))
    try:
        result = RUNNERS[peer](case, out)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    assert result["lines"] == ROWS + 1, result
    result["rss_mb"] = peak_rss_mb()
    result["cpu_s"] = cpu_seconds()
    return result


def cpu_seconds() -> float:
    """CPU time of this process and every child it waited for (workers, pool processes;
    not Ray's, whose workers belong to the raylet): the work done, whatever the load."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


def memory(size_gb: float) -> dict[str, float]:
    """aprs's parent peak RSS on a ~50 MB CSV and a CSV of ``size_gb`` GB."""
    big = DATA / "big"
    big.mkdir(exist_ok=True)
    source = DATA / "csv1" / "iris.csv"
    with open(source, "rb") as f:
        header = f.readline().rstrip(b"\n")
        body = f.read(50 << 20)
    small = big / "small.csv"
    body = body.rsplit(b"\n", 1)[0] + b"\n"
    small.write_bytes(header + b"\n" + body)
    huge = big / "huge.csv"
    try:
        with open(huge, "wb") as f:
            f.write(header + b"\n")
            while f.tell() < size_gb * (1 << 30):
                f.write(body)
        results = {}
        for name, path in (("50MB", small), (f"{size_gb:g}GB", huge)):
            proc = _child(["--memory-one", str(path)])
            results[name] = proc["rss_mb"]
            results[name + "_s"] = proc["s"]
        return results
    finally:
        shutil.rmtree(big, ignore_errors=True)


def memory_one(path: str) -> dict[str, Any]:
    import aprs

    out = Path(tempfile.mkdtemp(prefix="aprs-perf-mem-"))
    t0 = time.perf_counter()
    try:
        cfg = aprs.ParallelRunConfig(
            entry_script=str(SCRIPT),
            mini_batch_size="4MB",
            process_count_per_node=WORKERS,
            output_action="summary_only",
        )
        step = aprs.ParallelRunStep(
            name="bench-memory",
            parallel_run_config=cfg,
            inputs=[aprs.TabularDataset.from_delimited_files(path)],
            output=out,
            allow_reuse=False,
        )
        step.run()
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return {"rss_mb": peak_rss_mb(), "s": time.perf_counter() - t0}


def _child(args: list[str]) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "perf.tabular", *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT.parent,
        timeout=1800,
    )
    if proc.returncode != 0:
        return {
            "error": proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed"
        }
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m perf.tabular")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--peers", nargs="+", default=list(PEERS))
    p.add_argument("--cases", nargs="+", default=list(CASES))
    p.add_argument(
        "--memory-gb", type=float, default=5.0, help="0 skips the memory run"
    )
    p.add_argument("--one", nargs=2, metavar=("PEER", "CASE"), help=argparse.SUPPRESS)
    p.add_argument("--memory-one", help=argparse.SUPPRESS)
    p.add_argument("--generate", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        print(json.dumps(one(*args.one)))
        return 0
    if args.memory_one:
        print(json.dumps(memory_one(args.memory_one)))
        return 0
    if args.generate:
        generate()
        return 0
    compile_packages()  # as pip install leaves them (perf._measure)
    # generate in a child: ru_maxrss survives fork + exec, so this driver must stay small
    subprocess.run(
        [sys.executable, "-m", "perf.tabular", "--generate"],
        check=True,
        cwd=ROOT.parent,
    )
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for _ in range(args.repeat):  # rounds interleaved: drift spreads over all peers
        for case in args.cases:
            for peer in args.peers:
                result = _child(["--one", peer, case])
                print(peer, case, result, file=sys.stderr, flush=True)
                runs.setdefault((peer, case), []).append(result)
    print(report(runs, args.cases, args.peers))
    if args.memory_gb:
        print(
            f"\nparent peak RSS (aprs, 4MB batches, summary_only): {memory(args.memory_gb)}"
        )
    return 0


def report(
    runs: dict[tuple[str, str], list[dict[str, Any]]],
    cases: list[str],
    peers: list[str],
) -> str:
    lines = []
    for case in cases:
        lines += [
            f"\n### {case}: {ROWS:,} rows, {BATCH:,}-row batches, {WORKERS} workers\n",
            "| peer | rows/s ↑ | first row s ↓ | peak RSS MB (parent) ↓ | CPU s ↓ | aprs/peer |",
            "|---|---|---|---|---|---|",
        ]
        medians: dict[str, float] = {}
        for peer in peers:
            ok = [r for r in runs.get((peer, case), []) if "error" not in r]
            if ok:
                medians[peer] = ROWS / statistics.median(r["s"] for r in ok)
        for peer in peers:
            rs = runs.get((peer, case), [])
            ok = [r for r in rs if "error" not in r]
            if not ok:
                err = rs[0].get("error", "not run") if rs else "not run"
                lines.append(f"| {peer} | error: {err} | | | | |")
                continue
            speeds = sorted(ROWS / r["s"] for r in ok)
            first = statistics.median(r["first_s"] for r in ok)
            rss = statistics.median(r["rss_mb"] for r in ok)
            cpu = statistics.median(r.get("cpu_s", math.nan) for r in ok)
            extra = ""
            if "ray_init_s" in ok[0]:
                extra = f" (ray.init {statistics.median(r['ray_init_s'] for r in ok):.1f} s, included)"
            ratio = medians.get("aprs", float("nan")) / medians[peer]
            lines.append(
                f"| {peer}{extra} | {medians[peer]:,.0f} [{speeds[0]:,.0f}..{speeds[-1]:,.0f}] "
                f"| {first:.2f} | {rss:.0f} | {cpu:.2f} | {ratio:.2f} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
