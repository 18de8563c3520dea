"""Scoring an archive: one process against a local Dask cluster of N single-threaded workers, on the same images
in one run.

    python bench/bench_archive.py [--images 500] [--workers 2] [--data DIR]

Scores the first ``--images`` images of ZhangLab's train/ and val/ folders (routed among the shipped
checkpoints, as ``spmamba predict --table`` does) into a CSV, once in this process on every core and once on
a fresh local cluster, and prints images/s for each, their ratio, the cluster's start-up overhead (from
starting the cluster to its first finished chunk, models loaded included), each worker's peak memory, and what
100,000 images would take at the measured rates.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from spmamba.archive import ANOMALY, Job, read_inputs, run, score_chunk  # noqa: E402
from spmamba.data import data_root  # noqa: E402


def _peak_mib() -> float:
    """This process's peak resident memory (VmHWM), for a worker to report."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=500)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--data", default=None)
    args = ap.parse_args()
    from dask.distributed import Client, LocalCluster

    root = data_root(args.data)
    if root is None:
        sys.exit("no data: pass --data or set SPMAMBA_DATA")
    items = read_inputs([str(root / "zhanglab" / "val"), str(root / "zhanglab" / "train")])[: args.images]
    job = Job(ANOMALY)
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        score_chunk(job, items[:1])  # load the checkpoints once, as a long run would have them
        single_load = time.perf_counter() - t
        one = run(items, job, Path(tmp) / "one.csv", progress=False)

        t = time.perf_counter()
        cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(cluster)
        started = time.perf_counter() - t
        client.run(score_chunk, job, items[:1])  # on every worker: its models loaded, as a first chunk would
        first = time.perf_counter() - t
        many = run(items, job, Path(tmp) / "many.csv", scheduler=cluster.scheduler_address, progress=False)
        peaks = client.run(_peak_mib)
        client.close()
        cluster.close()

    print(f"{len(items)} ZhangLab images, routed among the shipped checkpoints; chunks of 16 files")
    print()
    print("| run | images/s | wall s | start-up s (models loaded) | peak memory per process (MiB) |")
    print("|---|---|---|---|---|")
    mine = _peak_mib()
    print(f"| 1 process, all cores | {one.images_per_s:.2f} | {one.seconds:.0f} | {single_load:.1f} | {mine:.0f} |")
    worst = max(peaks.values())
    print(
        f"| local cluster, {args.workers} workers × 1 thread | {many.images_per_s:.2f} | {many.seconds:.0f} | "
        f"{first:.1f} ({started:.1f} to start the cluster) | {worst:.0f} (each: "
        + ", ".join(f"{v:.0f}" for v in peaks.values())
        + ") |"
    )
    print(f"\ncluster / one process: {many.images_per_s / one.images_per_s:.2f}×")
    per_worker = many.images_per_s / args.workers
    print(
        f"100,000 images: {1e5 / one.images_per_s / 3600:.1f} h in one process here; on a cluster at this "
        f"machine's {per_worker:.2f} images/s per single-threaded worker, N workers take "
        f"{1e5 / per_worker / 3600:.1f} h / N (e.g. {1e5 / per_worker / 64 / 60:.0f} min on 64)"
    )


if __name__ == "__main__":
    main()
