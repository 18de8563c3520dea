"""Selective scan (S6) with mamba-ssm's ``selective_scan_fn`` semantics.

Backends, chosen per call: mamba-ssm's CUDA kernel when it is importable and the
tensors are on CUDA; our numba kernel on the CPU; the sequential PyTorch
reference otherwise (it is also what the tests check both against).
"""

from __future__ import annotations

import contextlib
import functools

import numpy as np
import torch
import torch.nn.functional as F

from . import _scan_cpu


@functools.lru_cache(maxsize=1)
def _mamba_cuda():
    try:
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
    except Exception:  # ImportError, or a CUDA build mismatch raised at import
        return None
    return selective_scan_fn


_FORCE_REFERENCE = False


@contextlib.contextmanager
def reference_backend():
    """Run every scan with the sequential PyTorch reference (benchmarks compare against it)."""
    global _FORCE_REFERENCE
    previous, _FORCE_REFERENCE = _FORCE_REFERENCE, True
    try:
        yield
    finally:
        _FORCE_REFERENCE = previous


def backend_name(device: torch.device | str = "cpu") -> str:
    """The kernel ``selective_scan_fn`` uses for tensors on ``device``."""
    if torch.device(device).type == "cuda":
        return "mamba-ssm CUDA" if _mamba_cuda() is not None else "PyTorch reference (mamba-ssm not installed)"
    return "numba CPU" if torch.device(device).type == "cpu" else "PyTorch reference"


def _prepare_delta(delta, delta_bias, delta_softplus):
    if delta_bias is not None:
        delta = delta + delta_bias[..., None].to(delta.dtype)
    return F.softplus(delta) if delta_softplus else delta


def _expand_bc(x: torch.Tensor, d: int) -> torch.Tensor:
    """(b, n, l) or (b, g, n, l) -> (b, d, n, l) so every channel sees its group's row."""
    if x.dim() == 3:
        x = x.unsqueeze(1)
    return x.repeat_interleave(d // x.shape[1], dim=1)


def selective_scan_ref(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False):
    """Plain sequential PyTorch scan: the readable definition, used by the tests."""
    dtype_in = u.dtype
    delta = _prepare_delta(delta, delta_bias, delta_softplus)
    b, d, L = u.shape
    Bx, Cx = _expand_bc(B, d), _expand_bc(C, d)
    h = u.new_zeros(b, d, A.shape[1])
    ys = []
    for t in range(L):
        dA = torch.exp(delta[:, :, t, None] * A)
        h = dA * h + (delta[:, :, t] * u[:, :, t])[..., None] * Bx[..., t]
        ys.append((h * Cx[..., t]).sum(-1))
    y = torch.stack(ys, -1)
    if D is not None:
        y = y + u * D[:, None]
    if z is not None:
        y = y * F.silu(z)
    return y.to(dtype_in)


def _time_major(x: torch.Tensor, b: int) -> np.ndarray:
    """(b, n, l) or (b, g, n, l) -> contiguous (b*g, l, n) array."""
    if x.dim() == 3:
        x = x.unsqueeze(1)
    return x.transpose(-1, -2).reshape(b * x.shape[1], x.shape[-1], x.shape[-2]).contiguous().numpy()


def _on_torch_threads(kernel, *args) -> None:
    """Run a numba kernel on as many threads as torch uses, and leave torch's count as it was: numba's OpenMP
    layer, started by the first parallel launch, resets the process's OpenMP thread count (so a
    ``torch.set_num_threads(1)`` made before the first scan was silently undone)."""
    n = torch.get_num_threads()
    _scan_cpu.set_threads(n)
    kernel(*args)
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)


def _inputs(u2, perm, dts, wdt, low_rank, bias, softplus, A, Bt, Ct, Dv, groups) -> tuple:
    """The arguments the numba forward and backward kernels share, in their order."""
    d = A.shape[0]
    arrays = (u2.numpy(), perm, dts.numpy(), wdt.numpy(), low_rank, bias.numpy(), softplus, A.numpy(), Bt, Ct)
    return (*arrays, Dv.numpy(), d // groups, groups, d)


class _CPUScan(torch.autograd.Function):
    """The numba kernels. ``perm`` (K, L) or None: with K orderings, ``u`` is (b, d / K, L) and direction k's
    rows read it at ``perm[k]`` and write their outputs there; the result is (b, K, d / K, L). ``dt_proj``
    (K, d / K, R) or None: with it, ``delta`` is (b, K, R, L), each direction's low-rank step inputs, and the
    kernel forms channel (k, i)'s steps as ``dt_proj[k, i] @ delta[:, k]``; without, ``delta`` is (b, d, L)."""

    @staticmethod
    def forward(ctx, u, delta, dt_proj, A, B, C, D, delta_bias, softplus, record, perm):
        ctx.record = record
        d = A.shape[0]
        b, L = u.shape[0], u.shape[-1]
        groups = 1 if B.dim() == 3 else B.shape[1]
        if d % groups:
            raise ValueError(f"d_inner {d} is not divisible by the {groups} B/C groups")
        fwd, _ = _scan_cpu.kernels(u.numpy().dtype, A.shape[1])
        order = np.arange(L)[None] if perm is None else perm.numpy()
        u2 = u.detach().reshape(-1, L).contiguous()
        low_rank = dt_proj is not None
        if low_rank:  # (b*K, R, L) direction inputs, (d, R) projection rows
            dts = delta.detach().reshape(-1, delta.shape[-2], L).contiguous()
            wdt = dt_proj.detach().reshape(d, -1).contiguous()
        else:  # each channel its own row: R = 1 through a weight of 1
            dts = delta.detach().reshape(b * d, 1, L).contiguous()
            wdt = u.new_ones(d, 1)
        Bt, Ct = _time_major(B.detach(), b), _time_major(C.detach(), b)
        Dv = (D if D is not None else u.new_zeros(d)).detach().contiguous()
        bias = (delta_bias if delta_bias is not None else u.new_zeros(d)).detach().contiguous()
        A = A.detach().contiguous()
        y = u.new_empty(b * d, L)
        save = ctx.record
        hs = u.new_empty(b * d, _scan_cpu.n_chunks(L) if save else 1, A.shape[1])
        shared = _inputs(u2, order, dts, wdt, low_rank, bias, softplus, A, Bt, Ct, Dv, groups)
        _on_torch_threads(fwd, *shared, y.numpy(), hs.numpy(), save)
        if save:
            ctx.save_for_backward(u2, dts, wdt, bias, A, Dv, hs)
            ctx.extra = (
                order,
                Bt,
                Ct,
                B.shape,
                C.shape,
                groups,
                softplus,
                low_rank,
                D is not None,
                delta_bias is not None,
            )
        return y.view(b, d, L) if perm is None else y.view(b, len(order), -1, L)

    @staticmethod
    def backward(ctx, dy):
        u2, dts, wdt, bias, A, Dv, hs = ctx.saved_tensors
        order, Bt, Ct, b_shape, c_shape, groups, softplus, low_rank, has_d, has_bias = ctx.extra
        d, k, L = A.shape[0], len(order), u2.shape[1]
        b = u2.shape[0] * k // d
        bd = b * d
        _, bwd = _scan_cpu.kernels(u2.numpy().dtype, A.shape[1])
        dy2 = dy.reshape(bd, L).contiguous()
        du, ddelta = u2.new_empty(bd, L), u2.new_empty(bd, L)
        dA = u2.new_zeros(bd, A.shape[1])
        dD, dbias = u2.new_zeros(bd), u2.new_zeros(bd)
        dBt, dCt = np.zeros_like(Bt), np.zeros_like(Ct)
        _on_torch_threads(
            bwd,
            *_inputs(u2, order, dts, wdt, low_rank, bias, softplus, A, Bt, Ct, Dv, groups),
            hs.numpy(),
            dy2.numpy(),
            du.numpy(),
            ddelta.numpy(),
            dA.numpy(),
            dBt,
            dCt,
            dD.numpy(),
            dbias.numpy(),
        )

        def back(x, shape):  # (b*g, l, n) -> original (b, [g,] n, l)
            return torch.from_numpy(x).view(b, -1, L, shape[-2]).transpose(-1, -2).reshape(shape)

        if low_rank:  # through the projection: the delta inputs' and the projection's gradients
            per_dir = ddelta.view(b, k, d // k, L)
            d_delta = torch.einsum("bkdl,kdr->bkrl", per_dir, wdt.view(k, d // k, -1))
            d_proj = torch.einsum("bkdl,bkrl->kdr", per_dir, dts.view(b, k, -1, L))
        else:
            d_delta, d_proj = ddelta.view(b, d, L), None
        return (
            du.view(b, k, d // k, L).sum(1),  # each direction's gradient is already at the positions it read
            d_delta,
            d_proj,
            dA.view(b, d, -1).sum(0),
            back(dBt, b_shape),
            back(dCt, c_shape),
            dD.view(b, d).sum(0) if has_d else None,
            dbias.view(b, d).sum(0) if has_bias else None,
            None,
            None,
            None,
        )


def uses_cpu_kernel(u: torch.Tensor) -> bool:
    """Whether scans of ``u`` run on the numba kernels (where SS2D's dt projection is formed inside the scan)."""
    return u.device.type == "cpu" and not _FORCE_REFERENCE


def _numba_scan(u, delta, A, B, C, D, delta_bias, delta_softplus, perm=None, dt_proj=None) -> torch.Tensor:
    inputs = (u, delta, dt_proj, A, B, C, D, delta_bias)
    record = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in inputs)
    dtype = u.dtype if u.dtype in (torch.float32, torch.float64) else torch.float32
    args = [None if t is None else t.to(dtype) for t in inputs]
    return _CPUScan.apply(*args, bool(delta_softplus), record, perm).to(u.dtype)


def selective_scan_fn(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False):
    """y = S6 scan of u, shapes as in mamba-ssm: u, delta, z (b, d, l); A (d, n);
    B, C (b, n, l) or (b, g, n, l) with d divisible by g; D, delta_bias (d,)."""
    if u.is_cuda:
        cuda_fn = _mamba_cuda()
        if cuda_fn is not None:
            return cuda_fn(u, delta, A, B, C, D, z, delta_bias, delta_softplus)
        return selective_scan_ref(u, delta, A, B, C, D, z, delta_bias, delta_softplus)
    if not uses_cpu_kernel(u):
        return selective_scan_ref(u, delta, A, B, C, D, z, delta_bias, delta_softplus)
    y = _numba_scan(u, delta, A, B, C, D, delta_bias, delta_softplus)
    return y if z is None else y * F.silu(z)


def selective_scan_directions(
    u, perm, delta, A, B, C, D=None, delta_bias=None, delta_softplus=False, dt_proj=None
) -> torch.Tensor:
    """The same sequence scanned in K orders, each direction's outputs put back where it read them.

    u (b, d, l); perm (K, l) long: direction k reads ``u[..., perm[k]]``; delta (b, K*d, l) and B, C
    (b, K, n, l) in each direction's own order; A (K*d, n); D, delta_bias (K*d,), direction-major as in
    ``selective_scan_fn``. With ``dt_proj`` (K, d, R), delta is (b, K, R, l), each direction's low-rank step
    inputs, and the channel deltas are ``dt_proj[k] @ delta[:, k]`` (SS2D's dt projection). Returns (b, K, d, l)
    in u's order. On the CPU the kernel reads and writes through ``perm`` (no copy of u per direction, no gather
    back) and forms the deltas itself (the (b, K*d, l) tensor is never written). Elsewhere it is
    ``gathered_directions``.
    """
    k, (b, d, length) = perm.shape[0], u.shape
    if dt_proj is not None:  # the kernel indexes without bounds checks: every shape must agree
        r = dt_proj.shape[-1]
        ok = delta.shape == (b, k, r, length) and dt_proj.shape == (k, d, r)
        want = f"delta (b, K, R, l) = {(b, k, r, length)} for dt_proj (K, d, R) = {(k, d, r)}"
    else:
        ok = delta.shape == (b, k * d, length)
        want = f"delta (b, K*d, l) = {(b, k * d, length)}"
    if perm.shape != (k, length) or not ok:
        raise ValueError(f"{k} orders of u {tuple(u.shape)} need {want}; got delta {tuple(delta.shape)}")
    if uses_cpu_kernel(u):
        return _numba_scan(u, delta, A, B, C, D, delta_bias, delta_softplus, perm.long().contiguous(), dt_proj)
    return gathered_directions(u, perm, delta, A, B, C, D, delta_bias, delta_softplus, dt_proj)


def gathered_directions(
    u, perm, delta, A, B, C, D=None, delta_bias=None, delta_softplus=False, dt_proj=None
) -> torch.Tensor:
    """``selective_scan_directions`` by its definition: the deltas projected, a gathered copy of u per
    direction, one ``selective_scan_fn`` over all of them, each output scattered back to where it was read."""
    b, d, length = u.shape
    k = perm.shape[0]
    if dt_proj is not None:
        delta = torch.einsum("bkrl,kdr->bkdl", delta, dt_proj).reshape(b, k * d, length)
    index = perm.view(1, k, 1, length).expand(b, -1, d, -1)
    seqs = torch.gather(u.unsqueeze(1).expand(b, k, d, length), 3, index)
    ys = selective_scan_fn(seqs.reshape(b, k * d, length), delta, A, B, C, D, None, delta_bias, delta_softplus)
    return torch.zeros_like(seqs).scatter(3, index, ys.view(b, k, d, length))
