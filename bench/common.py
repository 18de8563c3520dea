"""Shared timing helpers for the bench scripts: medians of repeated runs, matmul throughput."""
from __future__ import annotations

import platform
import statistics
import time
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


def matmul_gflops(n: int = 2048, repeat: int = 5) -> float:
    """This machine's fp32 matrix-multiply throughput at the current thread count."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    ms = timeit(lambda: a @ b, repeat=repeat, warmup=2)
    return 2 * n ** 3 / (ms / 1e3) / 1e9


def header(threads: int) -> str:
    torch.set_num_threads(threads)
    return (f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, "
            f"{threads} thread(s), matmul {matmul_gflops():.0f} GFLOP/s")
