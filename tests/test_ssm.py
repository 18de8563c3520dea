import numpy as np
import pytest
import torch

from spmamba import _scan_cpu
from spmamba.ssm import (
    backend_name,
    reference_backend,
    selective_scan_directions,
    selective_scan_fn,
    selective_scan_ref,
)


def _inputs(b, d, L, n, groups, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g, dtype=dtype)  # noqa: E731
    u, delta = r(b, d, L), 0.5 * r(b, d, L) - 1
    A = -torch.exp(r(d, n))
    bc_shape = (b, n, L) if groups is None else (b, groups, n, L)
    return [t.requires_grad_() for t in (u, delta, A, r(*bc_shape), r(*bc_shape), r(d), 0.1 * r(d))]


def _rel(a, b):
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()


def _matches_reference(scan, want_inputs, names: str, dtype, tol: float) -> torch.Tensor:
    """``scan`` on the CPU kernels (inputs cast to ``dtype``) against the same call on the fp64 reference: the
    output and the gradient of every input, each within ``tol``. Returns the kernels' output."""
    inputs = [t.detach().to(dtype).requires_grad_() for t in want_inputs]
    y = scan(*inputs)
    with reference_backend():
        y_ref = scan(*want_inputs)
    assert y.shape == y_ref.shape and _rel(y.double(), y_ref) < tol
    grad = torch.randn_like(y_ref)
    got = torch.autograd.grad(y, inputs, grad.to(dtype))
    want = torch.autograd.grad(y_ref, want_inputs, grad)
    for name, a, b in zip(names.split(), got, want, strict=True):
        assert a.shape == b.shape, name
        assert _rel(a.double(), b) < tol, name
    return y


@pytest.mark.parametrize("L", [1, 7, 64, 65, 100, 257])
@pytest.mark.parametrize("groups", [None, 1, 4])
def test_cpu_kernel_matches_reference_fp64(L, groups):
    u, delta, A, B, C, D, bias = _inputs(2, 8, L, 5, groups, torch.float64, seed=L)
    kw = dict(delta_bias=bias, delta_softplus=True)
    y = selective_scan_fn(u, delta, A, B, C, D, **kw)
    y_ref = selective_scan_ref(u, delta, A, B, C, D, **kw)
    assert _rel(y, y_ref) < 1e-6
    grad = torch.randn_like(y)
    inputs = (u, delta, A, B, C, D, bias)
    got = torch.autograd.grad(y, inputs, grad)
    want = torch.autograd.grad(y_ref, inputs, grad)
    for name, a, b in zip("u delta A B C D delta_bias".split(), got, want, strict=True):
        assert a.shape == b.shape, name
        assert _rel(a, b) < 1e-6, name


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-6), (torch.float32, 1e-3)])
@pytest.mark.parametrize("L", [9, 130])
@pytest.mark.parametrize("n", [5, 16])  # the generic kernels, and those compiled for d_state 16
@pytest.mark.parametrize("d", [3, 8])  # channels per direction: one at a time, or LANES at a time
def test_scanning_through_permutations_matches_gather_scan_scatter(dtype, tol, L, n, d):
    """The kernel's read and write through ``perm`` against the definition (gather each direction's copy,
    scan, scatter back), outputs and every gradient, on random orders."""
    assert (_scan_cpu.kernels(np.float32, n) is _scan_cpu._GENERIC) == (n not in _scan_cpu.FIXED_STATES)
    assert (d % _scan_cpu.LANES == 0) == (d == 8)
    k = 3
    g = torch.Generator().manual_seed(L)
    perm = torch.stack([torch.randperm(L, generator=g) for _ in range(k)])
    _, delta, A, B, C, D, bias = _inputs(2, k * d, L, n, k, torch.float64, seed=L)
    u = torch.randn(2, d, L, generator=g, dtype=torch.float64, requires_grad=True)

    def scan(u, delta, A, B, C, D, bias):
        return selective_scan_directions(u, perm, delta, A, B, C, D, delta_bias=bias, delta_softplus=True)

    y = _matches_reference(scan, (u, delta, A, B, C, D, bias), "u delta A B C D delta_bias", dtype, tol)
    assert y.shape == (2, k, d, L)


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-6), (torch.float32, 1e-3)])
@pytest.mark.parametrize("n", [5, 16])
def test_step_projection_inside_the_kernel_matches_projecting_first(dtype, tol, n):
    """SS2D's dt projection formed by the kernel from each direction's low-rank inputs, against the definition
    (project to every channel's deltas with einsum, then scan): output and every gradient, projection's too."""
    k, d, r, L = 3, 4, 2, 70
    g = torch.Generator().manual_seed(n)
    perm = torch.stack([torch.randperm(L, generator=g) for _ in range(k)])
    _, _, A, B, C, D, bias = _inputs(2, k * d, L, n, k, torch.float64, seed=n)
    u = torch.randn(2, d, L, generator=g, dtype=torch.float64, requires_grad=True)
    dts = torch.randn(2, k, r, L, generator=g, dtype=torch.float64, requires_grad=True)
    proj = (0.5 * torch.randn(k, d, r, generator=g, dtype=torch.float64)).requires_grad_()

    def scan(u, dts, proj, A, B, C, D, bias):
        return selective_scan_directions(u, perm, dts, A, B, C, D, bias, True, dt_proj=proj)

    names = "u delta dt_proj A B C D delta_bias"
    y = _matches_reference(scan, (u, dts, proj, A, B, C, D, bias), names, dtype, tol)
    assert y.shape == (2, k, d, L)


def test_orders_must_match_the_channels():
    _, delta, A, B, C, D, bias = _inputs(1, 6, 10, 3, 3, torch.float64)
    with pytest.raises(ValueError, match="need delta"):
        selective_scan_directions(
            torch.randn(1, 4, 10, dtype=torch.float64), torch.stack([torch.arange(10)] * 3), delta, A, B, C, D
        )
    u, perm = torch.randn(1, 2, 10, dtype=torch.float64), torch.stack([torch.arange(10)] * 3)
    with pytest.raises(ValueError, match="for dt_proj"):  # low-rank inputs of rank 2 through a rank-3 projection
        selective_scan_directions(u, perm, torch.randn(1, 3, 2, 10), A, B, C, D, dt_proj=torch.randn(3, 2, 3))


@pytest.mark.parametrize("softplus", [False, True])
def test_optional_arguments_fp64(softplus):
    u, delta, A, B, C, D, bias = _inputs(1, 4, 70, 3, 2, torch.float64, seed=3)
    delta = delta.detach().abs().requires_grad_() if not softplus else delta
    z = torch.randn(1, 4, 70, dtype=torch.float64, requires_grad=True)
    y = selective_scan_fn(u, delta, A, B, C, None, z=z, delta_softplus=softplus)
    y_ref = selective_scan_ref(u, delta, A, B, C, None, z=z, delta_softplus=softplus)
    assert _rel(y, y_ref) < 1e-6
    got = torch.autograd.grad(y.sum(), (u, delta, z))
    want = torch.autograd.grad(y_ref.sum(), (u, delta, z))
    for a, b in zip(got, want, strict=True):
        assert _rel(a, b) < 1e-6


@pytest.mark.parametrize("n", [8, 16])  # Mamba-MIS's and SP-Mamba's state sizes
def test_float32_fast_path_agrees_with_fp64_reference(n):
    u, delta, A, B, C, D, bias = _inputs(2, 16, 300, n, 2, torch.float64, seed=7)
    kw = dict(delta_bias=bias, delta_softplus=True)
    y_ref = selective_scan_ref(u, delta, A, B, C, D, **kw)
    f32 = [t.detach().float().requires_grad_() for t in (u, delta, A, B, C, D, bias)]
    y = selective_scan_fn(*f32[:6], delta_bias=f32[6], delta_softplus=True)
    assert y.dtype == torch.float32
    assert _rel(y.double(), y_ref) < 1e-4
    grad = torch.randn_like(y_ref)
    got = torch.autograd.grad(y, f32, grad.float())
    want = torch.autograd.grad(y_ref, (u, delta, A, B, C, D, bias), grad)
    for name, a, b in zip("u delta A B C D delta_bias".split(), got, want, strict=True):
        assert _rel(a.double(), b) < 1e-3, name


def test_float32_polynomials_match_libm():
    """The kernels' vectorisable exp and log1p, against numpy's, over the ranges the scan feeds them."""
    import numba
    import numpy as np

    from spmamba._scan_cpu import _exp, _exp2, _log1p

    @numba.njit(fastmath=True, error_model="numpy")
    def all_three(x, y, e, e2, l1):
        for i in range(x.shape[0]):
            e[i] = _exp(x[i])
            e2[i] = _exp2(x[i])
            l1[i] = _log1p(y[i])

    x = np.linspace(-80, 80, 100_001, dtype=np.float32)
    y = np.linspace(0, 1, 100_001, dtype=np.float32)
    e, e2, l1 = np.empty_like(x), np.empty_like(x), np.empty_like(y)
    all_three(x, y, e, e2, l1)
    assert np.abs(e / np.exp(x.astype(np.float64)) - 1).max() < 5e-6  # 1e-6 within +-20, 4e-6 near -80
    assert np.abs(e2 / np.exp2(x.astype(np.float64)) - 1).max() < 3e-7  # exact exponent, 2e-7 polynomial
    assert np.abs(l1 - np.log1p(y.astype(np.float64))).max() < 3e-7


def test_half_precision_inputs_run_in_float32():
    u, delta, A, B, C, D, bias = (t.detach() for t in _inputs(1, 4, 20, 4, 1, torch.float32))
    y = selective_scan_fn(u.bfloat16(), delta, A, B, C, D, delta_bias=bias, delta_softplus=True)
    assert y.dtype == torch.bfloat16
    y_ref = selective_scan_ref(u.bfloat16().float(), delta, A, B, C, D, delta_bias=bias, delta_softplus=True)
    assert _rel(y.float(), y_ref) < 2e-2


def test_groups_must_divide_channels():
    u, delta, A, B, C, D, bias = (t.detach() for t in _inputs(1, 6, 10, 4, 4, torch.float32))
    with pytest.raises(ValueError, match="not divisible"):
        selective_scan_fn(u, delta, A, B, C, D)


def test_backend_is_reported(monkeypatch):
    from spmamba import ssm

    assert backend_name("cpu") == "numba CPU"
    monkeypatch.setattr(ssm, "_mamba_cuda", lambda: None)  # mamba-ssm absent
    assert backend_name("cuda") == "PyTorch reference (mamba-ssm not installed)"
    monkeypatch.setattr(ssm, "_mamba_cuda", lambda: object())  # mamba-ssm importable
    assert backend_name("cuda") == "mamba-ssm CUDA"
    assert backend_name("meta") == "PyTorch reference"


def test_the_fast_scan_leaves_torchs_thread_count_as_it_was():
    """numba's OpenMP layer, started by the first parallel scan, reset the process's thread count: a
    ``--threads 1`` (or Dask's one thread per worker) became two after the first image. A fresh process, as
    the first launch is what did it."""
    import subprocess
    import sys

    code = (
        "import torch; torch.set_num_threads(1)\n"
        "from spmamba.ssm import selective_scan_fn\n"
        "b, d, n, L = 1, 4, 3, 40\n"
        "u, delta = torch.randn(b, d, L), torch.rand(b, d, L)\n"
        "A, B, C = -torch.rand(d, n), torch.randn(b, n, L), torch.randn(b, n, L)\n"
        "for _ in range(2): selective_scan_fn(u, delta, A, B, C)\n"
        "print(torch.get_num_threads())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1"
