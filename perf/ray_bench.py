"""`python -m perf.ray_bench`: aprs on the local pool, aprs on Ray, and Ray Data, same work.

    driver ──► for each case, K rounds: a fresh process (this module, "case NAME")
               local      aprs, compute_target="local"
               ray1       aprs on a single-node Ray (started in the measured process)
               ray3       aprs on a local 3-node cluster (head + 2 nodes, node_count=2)
               data1      Ray Data map_batches, actor pool of the same size, single node
               data3      Ray Data on the same 3-node cluster
           ──► Markdown table on stdout: throughput, start-up, driver peak RSS, per-batch cost

Same work everywhere: N in-memory ints cut into batches of B; each worker's run() returns
``[x * 2 for x in batch]``; the rows (``str(x) + "\\n"``) land in one file in input order
(Ray Data: ``iter_batches`` on the driver, which keeps the order of the input blocks). The
"startup" row runs a 10-item job (connect or start Ray, start the workers, one batch). The
"per batch" row is elapsed / batches for 1-item batches (the dispatch overhead, with run()
doing nothing). Times exclude interpreter start-up; cluster creation (ray3/data3) is not
timed, connecting to it is.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

WORKERS = 2
SCRIPT = Path(__file__).resolve().parent / "scripts" / "double.py"
STORE = 200 * 2**20


def _items(n: int) -> list[int]:
    return list(range(n))


def _aprs(target: str, n: int, batch: int, address: str | None, nodes: int) -> float:
    import aprs

    extra: dict[str, Any] = {}
    if target == "ray":
        extra = {
            "compute_target": "ray",
            "ray_address": address,
            "node_count": nodes,
            "worker_resources": {"num_cpus": 0.5},
        }
    cfg = aprs.ParallelRunConfig(
        entry_script=str(SCRIPT),
        mini_batch_size=batch,
        process_count_per_node=WORKERS // nodes,
        **extra,
    )
    with tempfile.TemporaryDirectory() as out:
        step = aprs.ParallelRunStep(
            name="bench",
            parallel_run_config=cfg,
            inputs=[_items(n)],
            output=out,
            allow_reuse=False,
        )
        started = time.perf_counter()
        summary = step.run()
        elapsed = time.perf_counter() - started
        assert summary.items_succeeded == n, summary
    return elapsed


def _data(n: int, batch: int, address: str | None) -> float:
    import ray

    started = time.perf_counter()
    ray.init(address=address or "local", log_to_driver=False, logging_level="ERROR")
    try:
        import ray.data

        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.execution_options.preserve_order = True

        class Double:
            def __call__(self, b: dict[str, Any]) -> dict[str, Any]:
                return {"id": b["id"] * 2}

        ds = ray.data.range(n, override_num_blocks=max(1, n // max(batch, 1000)))
        ds = ds.map_batches(Double, batch_size=batch, concurrency=WORKERS, num_cpus=0.5)
        rows = 0
        with (
            tempfile.TemporaryDirectory() as out,
            open(os.path.join(out, "parallel_run_step.txt"), "w") as f,
        ):
            for b in ds.iter_batches(batch_size=None, batch_format="numpy"):
                f.write("".join(f"{x}\n" for x in b["id"].tolist()))
                rows += len(b["id"])
        assert rows == n, rows
    finally:
        ray.shutdown()
    return time.perf_counter() - started


def _cluster() -> Any:
    from ray.cluster_utils import Cluster

    c = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 0, "object_store_memory": STORE},
    )
    for _ in range(2):
        c.add_node(num_cpus=1, object_store_memory=STORE)
    c.wait_for_nodes()
    return c


def run_case(name: str, n: int, batch: int) -> dict[str, float]:
    """One measurement in this process: elapsed seconds and peak RSS."""
    cluster = _cluster() if name.endswith("3") else None
    address = cluster.address if cluster is not None else None
    try:
        if name == "local":
            elapsed = _aprs("local", n, batch, None, 1)
        elif name.startswith("ray"):
            elapsed = _aprs("ray", n, batch, address, 2 if cluster else 1)
        else:
            elapsed = _data(n, batch, address)
    finally:
        if cluster is not None:
            cluster.shutdown()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"elapsed": elapsed, "rss_mb": rss}


CASES = ["local", "ray1", "ray3", "data1", "data3"]
LABELS = {
    "local": "aprs, local pool",
    "ray1": "aprs on Ray, 1 node",
    "ray3": "aprs on Ray, 3-node local cluster",
    "data1": "Ray Data map_batches, 1 node",
    "data3": "Ray Data map_batches, 3-node local cluster",
}


def _measure(name: str, n: int, batch: int) -> dict[str, float] | str:
    cmd = [sys.executable, "-m", "perf.ray_bench", "case", name, str(n), str(batch)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
    if done.returncode:
        return f"error: {(done.stderr.strip().splitlines() or ['?'])[-1][:120]}"
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str]) -> int:
    if argv[:1] == ["case"]:
        print(json.dumps(run_case(argv[1], int(argv[2]), int(argv[3]))))
        return 0
    repeat = int(argv[0]) if argv else 3
    n, batch = (200_000, 100) if "--quick" not in argv else (20_000, 100)
    rows = []
    for case in CASES:
        runs: dict[str, list[float]] = {"thr": [], "start": [], "per": [], "rss": []}
        error = ""
        for _ in range(repeat):
            big = _measure(case, n, batch)
            small = _measure(case, 10, 10)
            per = _measure(case, 2000, 1)
            if isinstance(big, str) or isinstance(small, str) or isinstance(per, str):
                error = next(r for r in (big, small, per) if isinstance(r, str))
                break
            runs["thr"].append(n / big["elapsed"])
            runs["start"].append(small["elapsed"])
            runs["per"].append(per["elapsed"] / 2000 * 1e6)
            runs["rss"].append(big["rss_mb"])
            print(case, {k: v[-1] for k, v in runs.items()}, file=sys.stderr)
        rows.append((case, runs, error))
    print(_table(rows, n, batch, repeat))
    return 0


def _table(
    rows: list[tuple[str, dict[str, list[float]], str]], n: int, b: int, k: int
) -> str:
    def med(v: list[float]) -> float:
        return statistics.median(v)

    out = [
        (
            f"{n:,} ints in batches of {b}, {WORKERS} workers (0.5 CPU each on Ray), "
            f"K={k}; medians. Per batch = elapsed / 2000 for 2000 1-item batches."
        ),
        "",
        "| peer | items/s ↑ | start-up s ↓ | per batch µs ↓ | driver peak RSS MB ↓ |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for case, runs, error in rows:
        if error:
            out.append(f"| {LABELS[case]} | {error} | | | |")
            continue
        out.append(
            f"| {LABELS[case]} | {med(runs['thr']):,.0f} | {med(runs['start']):.2f} | "
            f"{med(runs['per']):,.0f} | {med(runs['rss']):.0f} |"
        )
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
