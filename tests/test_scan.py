import numpy as np
import pytest
import torch

from spmamba.scan import (
    ORDERS,
    base_path,
    direction_names,
    scan_path,
    scan_permutations,
)

SIZES = (4, 8, 16, 32, 64)


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("n", SIZES)
def test_every_order_visits_each_position_once(order, n):
    p = base_path(order, n)
    assert p.shape == (n * n, 2)
    assert len({tuple(x) for x in p}) == n * n
    assert p.min() == 0 and p.max() == n - 1


@pytest.mark.parametrize("order", ["circular_hilbert", "hilbert", "boustrophedon"])
@pytest.mark.parametrize("n", SIZES)
def test_continuous_orders_move_one_step_at_a_time(order, n):
    steps = np.abs(np.diff(base_path(order, n), axis=0)).sum(1)
    assert (steps == 1).all()


@pytest.mark.parametrize("n", SIZES)
def test_circular_hilbert_structure(n):
    p = [tuple(x) for x in base_path("circular_hilbert", n)]
    start = 0
    for r in range(n // 4):
        side = n - 2 * r
        ring = p[start : start + 4 * (side - 1)]
        # every position of the ring lies on ring r, and the ring starts top-left going right
        assert all(min(i, j, n - 1 - i, n - 1 - j) == r for i, j in ring)
        assert ring[0] == (r, r) and ring[1] == (r, r + 1)
        assert ring[side - 1] == (r, n - 1 - r)  # top-right corner, then down: clockwise
        assert ring[side] == (r + 1, n - 1 - r)
        start += len(ring)
    core = np.array(p[start:])
    assert len(core) == (n // 2) ** 2
    assert (core >= n // 4).all() and (core < 3 * n // 4).all()
    np.testing.assert_array_equal(core - n // 4, base_path("hilbert", n // 2))


def test_hilbert_is_the_classic_curve():
    assert [tuple(x) for x in base_path("hilbert", 2)] == [(0, 0), (1, 0), (1, 1), (0, 1)]


def test_baseline_orders_on_4x4():
    assert base_path("raster", 4)[:5].tolist() == [[0, 0], [0, 1], [0, 2], [0, 3], [1, 0]]
    assert base_path("boustrophedon", 4)[3:6].tolist() == [[0, 3], [1, 3], [1, 2]]
    assert base_path("zigzag", 4)[:4].tolist() == [[0, 0], [0, 1], [1, 0], [2, 0]]
    assert base_path("zorder", 4)[:5].tolist() == [[0, 0], [0, 1], [1, 0], [1, 1], [0, 2]]


@pytest.mark.parametrize("k", [8, 16])
def test_directions_are_distinct_permutations(k):
    perm = scan_permutations("circular_hilbert", 16, k)
    assert perm.shape == (k, 256)
    assert len({tuple(r.tolist()) for r in perm}) == k
    ar = torch.arange(256)
    for p in perm:
        assert torch.equal(p.sort().values, ar)


def test_paper_directions_start_corners_and_sense():
    n = 8
    names = direction_names(8)
    starts = {d: tuple(scan_path("circular_hilbert", n, d)[0]) for d in names}
    assert starts["identity"] == (0, 0) and starts["transpose"] == (0, 0)
    assert starts["rot90"] == (0, n - 1) and starts["rot90_transpose"] == (0, n - 1)
    # clockwise from top-left goes right; its transpose goes down (counter-clockwise)
    assert tuple(scan_path("circular_hilbert", n, "identity")[1]) == (0, 1)
    assert tuple(scan_path("circular_hilbert", n, "transpose")[1]) == (1, 0)
    for d in names[:4]:
        np.testing.assert_array_equal(
            scan_path("circular_hilbert", n, d + "_reversed"), scan_path("circular_hilbert", n, d)[::-1]
        )
        # forward directions read out-to-centre: the last position is inside the core
        r, c = scan_path("circular_hilbert", n, d)[-1]
        assert n // 4 <= r < 3 * n // 4 and n // 4 <= c < 3 * n // 4


def test_bad_sizes_and_names():
    with pytest.raises(ValueError, match="power-of-two"):
        base_path("hilbert", 12)
    with pytest.raises(ValueError, match="n >= 4"):
        base_path("circular_hilbert", 2)
    with pytest.raises(ValueError, match="unknown scan order"):
        base_path("spiral", 8)
    with pytest.raises(ValueError, match="num_directions"):
        direction_names(3)
