"""Shared timing helpers for the bench scripts: medians of repeated runs, matmul throughput."""

from __future__ import annotations

import argparse
import platform
import socket
import statistics
import subprocess
import time
import urllib.request
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Callable

import torch


def timeit(fn: Callable[[], object], repeat: int = 5, warmup: int = 1) -> float:
    """Median wall time of ``fn`` in milliseconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def alternating(runs: dict[str, Callable[[], object]], repeat: int) -> dict[str, float]:
    """Median ms of each of ``runs``, taken in turn within each repetition so that drift in machine speed hits
    all alike; the first round warms up (compilation, allocator) and is not counted."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    for i in range(repeat + 1):
        for name, fn in runs.items():
            t = time.perf_counter()
            fn()
            if i:
                times[name].append((time.perf_counter() - t) * 1e3)
    return {name: statistics.median(ts) for name, ts in times.items()}


def under(variant: Callable[[], AbstractContextManager], fn: Callable[[], object]) -> Callable[[], object]:
    """``fn`` run inside a fresh ``variant()`` context each time (a before/after switch for ``alternating``)."""

    def run() -> object:
        with variant():
            return fn()

    return run


def matmul_run(n: int = 2048) -> tuple[Callable[[], object], Callable[[float], float]]:
    """A matrix multiply, and what turns its ms into GFLOP/s. Timed in turn with a model (``alternating``), it gives
    a floor at the machine's rate at the same moments as the model's times, where ``matmul_gflops`` at the start of a
    run can be off by half on a machine whose speed drifts (this one's moved 93-179 GFLOP/s between runs)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    return (lambda: a @ b), lambda ms: 2 * n**3 / (ms / 1e3) / 1e9


def matmul_gflops(n: int = 2048, repeat: int = 5) -> float:
    """This machine's fp32 matrix-multiply throughput at the current thread count."""
    matmul, gflops = matmul_run(n)
    return gflops(timeit(matmul, repeat=repeat, warmup=2))


def start(threads: int, columns: list[str]) -> float:
    """Set the thread count, print the machine line and a Markdown table head; return matmul GFLOP/s."""
    torch.set_num_threads(threads)
    gflops = matmul_gflops()
    print(
        f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{threads} thread(s), matmul {gflops:.0f} GFLOP/s"
    )
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    return gflops


def parser(doc: str | None, repeat: int = 5) -> argparse.ArgumentParser:
    """The options every bench script shares: thread count and repetitions."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=repeat, help="timed repetitions (median reported)")
    return ap


def free_port() -> int:
    """A TCP port nothing on this machine is listening on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(
    cmd: list[str], port: int, cwd: Path, env: dict, timeout: float = 300
) -> tuple[subprocess.Popen, float]:
    """Start ``cmd`` and wait until http://127.0.0.1:port/ answers 200: (the process, seconds it took)."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while time.perf_counter() - t < timeout:
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1).status == 200:
                return proc, time.perf_counter() - t
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise TimeoutError(" ".join(cmd))


def proc_mib(pid: int, key: str = "VmHWM") -> float:
    """A memory figure of a running process from /proc (VmRSS now, VmHWM its peak), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak(pid: int) -> bool:
    """Reset a process's peak RSS (VmHWM) to its current RSS, so the next reading is one request's peak."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False
