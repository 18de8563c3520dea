"""Scan orders: the sequences in which the SS2D decoder reads a 2-D map.

Every order is an index permutation of the flattened n x n map. A *direction*
is the base order composed with one symmetry of the square and optionally read
backwards. The decoder gathers ``x.flatten(-2)[..., perm]`` to build a sequence
and scatters the scan output back with the inverse permutation.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

ORDERS = ("circular_hilbert", "raster", "boustrophedon", "zigzag", "hilbert", "zorder")

# Symmetries of the square as coordinate maps (r, c) -> (r', c') on an n x n grid.
# The first four are the paper implementation's: the order on the map, on its
# transpose, on its 90-degree rotation, and on the transpose of that rotation.
_SYMMETRIES = {
    "identity": lambda r, c, n: (r, c),
    "transpose": lambda r, c, n: (c, r),
    "rot90": lambda r, c, n: (c, n - 1 - r),
    "rot90_transpose": lambda r, c, n: (r, n - 1 - c),
    "rot180": lambda r, c, n: (n - 1 - r, n - 1 - c),
    "rot270": lambda r, c, n: (n - 1 - c, r),
    "flip_vertical": lambda r, c, n: (n - 1 - r, c),
    "anti_transpose": lambda r, c, n: (n - 1 - c, n - 1 - r),
}


def _check_size(n: int, need_pow2: bool) -> None:
    if n < 1 or (need_pow2 and (n < 2 or n & (n - 1))):
        raise ValueError(f"this scan order needs a power-of-two map size, got {n}")


def _hilbert_path(n: int) -> np.ndarray:
    """Hilbert curve over an n x n grid from the top-left corner, as (row, col)."""
    _check_size(n, True)
    d = np.arange(n * n)
    x = np.zeros_like(d)
    y = np.zeros_like(d)
    t = d.copy()
    s = 1
    while s < n:
        rx = 1 & (t // 2)
        ry = 1 & (t ^ rx)
        swap = ry == 0
        flip = swap & (rx == 1)
        x = np.where(flip, s - 1 - x, x)
        y = np.where(flip, s - 1 - y, y)
        x, y = np.where(swap, y, x), np.where(swap, x, y)
        x = x + s * rx
        y = y + s * ry
        t //= 4
        s *= 2
    return np.stack([y, x], 1)  # x is the column, y the row


def _ring_path(n: int, r: int) -> list[tuple[int, int]]:
    """Ring r of an n x n map, clockwise from its top-left corner."""
    lo, hi = r, n - 1 - r
    path = [(lo, c) for c in range(lo, hi + 1)]
    path += [(rr, hi) for rr in range(lo + 1, hi + 1)]
    path += [(hi, c) for c in range(hi - 1, lo - 1, -1)]
    path += [(rr, lo) for rr in range(hi - 1, lo, -1)]
    return path


def _circular_hilbert_path(n: int) -> np.ndarray:
    _check_size(n, True)
    if n < 4:
        raise ValueError(f"the Circular-Hilbert scan needs n >= 4, got {n}")
    rings = [p for r in range(n // 4) for p in _ring_path(n, r)]
    core = _hilbert_path(n // 2) + n // 4
    return np.concatenate([np.asarray(rings, dtype=np.int64).reshape(-1, 2), core])


def _zorder_path(n: int) -> np.ndarray:
    _check_size(n, True)
    d = np.arange(n * n)
    r = np.zeros_like(d)
    c = np.zeros_like(d)
    for b in range(int(np.log2(n))):
        c |= ((d >> (2 * b)) & 1) << b
        r |= ((d >> (2 * b + 1)) & 1) << b
    return np.stack([r, c], 1)


def _zigzag_path(n: int) -> np.ndarray:
    """JPEG-style zigzag over anti-diagonals."""
    path = []
    for s in range(2 * n - 1):
        diag = [(r, s - r) for r in range(max(0, s - n + 1), min(s, n - 1) + 1)]
        path += diag if s % 2 else diag[::-1]
    return np.asarray(path, dtype=np.int64)


def base_path(order: str, n: int) -> np.ndarray:
    """(row, col) positions of the base (first-direction) order, shape (n*n, 2)."""
    if order == "circular_hilbert":
        return _circular_hilbert_path(n)
    if order == "hilbert":
        return _hilbert_path(n)
    if order == "zorder":
        return _zorder_path(n)
    if order == "zigzag":
        return _zigzag_path(n)
    rows, cols = np.divmod(np.arange(n * n), n)
    if order == "raster":
        return np.stack([rows, cols], 1)
    if order == "boustrophedon":
        return np.stack([rows, np.where(rows % 2 == 1, n - 1 - cols, cols)], 1)
    raise ValueError(f"unknown scan order {order!r}; choose one of {', '.join(ORDERS)}")


def direction_names(num_directions: int) -> list[str]:
    """Names of the directions: 8 is the paper implementation's set, 16 the paper's maximum."""
    if num_directions not in (1, 2, 4, 8, 16):
        raise ValueError(f"num_directions must be 1, 2, 4, 8 or 16, got {num_directions}")
    if num_directions == 1:
        return ["identity"]
    syms = list(_SYMMETRIES)[: num_directions // 2]
    return syms + [s + "_reversed" for s in syms]


def scan_path(order: str, n: int, direction: str = "identity") -> np.ndarray:
    """(row, col) path of ``order`` on an n x n map read in ``direction`` (for plotting)."""
    reverse = direction.endswith("_reversed")
    sym = direction[: -len("_reversed")] if reverse else direction
    if sym not in _SYMMETRIES:
        raise ValueError(f"unknown direction {direction!r}")
    p = base_path(order, n)
    r, c = _SYMMETRIES[sym](p[:, 0], p[:, 1], n)
    path = np.stack([r, c], 1)
    return path[::-1].copy() if reverse else path


@lru_cache(maxsize=None)
def scan_permutations(order: str, n: int, num_directions: int = 8, device: str = "cpu") -> torch.Tensor:
    """Cached (num_directions, n*n) long tensor: ``seq[k] = flat[perm[k]]`` reads the map in direction k."""
    paths = [scan_path(order, n, d) for d in direction_names(num_directions)]
    return torch.from_numpy(np.stack([p[:, 0] * n + p[:, 1] for p in paths])).to(device)
