"""Numba kernels for the selective scan on the CPU.

Layout is what makes this fast: each channel's ``u``/``delta`` row is read
contiguously, ``B``/``C`` are time-major ``(groups, L, N)`` so one step's N
coefficients are a single contiguous vector, and the N-wide state update is
vectorised by LLVM. The step's decay exp(delta A) is ``2**(delta A log2 e)``, with
``A log2 e`` formed once per channel and ``2**t`` a polynomial that LLVM can vectorise
too (libm's scalar ``expf`` would block that); its relative error is 2e-7 (the exp of
softplus, 1e-6, and 4e-6 near -80, where rounding ``t`` dominates). Two things
silently stop LLVM vectorising and are kept out: ``math.floor`` (it returns an int,
so the polynomial ran in float64) and Python's division error model (a zero check
before every division; ``error_model="numpy"`` drops it, and no kernel divides by
anything that can be zero). With both in, the forward kernel was 4.5x slower.
The forward pass saves the state at chunk boundaries; the backward pass
recomputes each chunk from its saved state, so memory stays O(L/T * N).

The kernels read the sequence through ``perm`` (K, L): channel row ``c`` of direction ``k`` reads ``u`` at
``perm[k, l]`` and writes its output (and, backwards, its input gradient) at that same position. A 2-D scan's
K directions thus run on the map itself, with no gathered copy per direction; a plain scan passes one
identity row. Within a row the reads jump, but the row (L floats) stays in cache.

The step sizes come in as ``dts`` rows through projection rows ``wdt``: SS2D passes each direction's low-rank
inputs (R rows, R = d_model / 16) and its dt projection, and each channel forms its own deltas when it starts
(``delta_row``), so the (channels, L) delta tensor is never written; a plain scan passes its deltas as one row
per channel through a weight of 1.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import njit, prange, types
from numba.extending import overload

CHUNK = 64
BLOCKS = 64  # parallel work items in the forward pass
# Channels the forward pass steps together. One channel's step is a chain of dependent vector operations (the decay's
# polynomial, then the state update); four independent chains in one loop body keep the core's units busy and load
# B and C once for four. Forward kernel alone (bench_scan_revisions.py, one thread, AMD EPYC): 1.8x at d_state 8,
# 1.1-1.2x at 16; eight lanes were no faster at 16, and Mamba-MIS's 36 channels per direction do not divide by 8.
LANES = 4
_LOG2E = 1.4426950408889634
_LN2 = 0.6931471805599453


def _exp2_f32(t):
    """2**t: the exponent goes straight into the float's bits, and a degree-5 minimax polynomial (relative
    error 2e-7 in float32) gives 2**f for |f| <= 1/2. The kernels scale ``A`` by log2(e) once per channel, so
    each step's exp is this alone: 12 vector operations, where exp(x) as 2**(x log2 e) with a Taylor polynomial
    took 17."""
    t = min(max(t, np.float32(-125.0)), np.float32(127.0))
    k = np.floor(t + np.float32(0.5))  # np.floor stays float32 and vectorises; math.floor (an int) blocks it
    f = t - k
    p = np.float32(0.0013276444403215147)
    p = p * f + np.float32(0.009675537697152167)
    p = p * f + np.float32(0.05550713315234966)
    p = p * f + np.float32(0.24022119793278196)
    p = p * f + np.float32(0.6931469670679518)
    p = p * f + np.float32(1.00000007164003)
    return np.int32(np.float32(p).view(np.int32) + (np.int32(k) << np.int32(23))).view(np.float32)


def _exp_f32(x):
    return _exp2(x * np.float32(_LOG2E))


def _log1p_f32(y):
    """log(1 + y) for y in [0, 1] as 2*atanh(s), s = y / (2 + y) <= 1/3: vectorisable."""
    s = y / (np.float32(2.0) + y)
    s2 = s * s
    p = np.float32(1.0 / 15.0)
    p = p * s2 + np.float32(1.0 / 13.0)
    p = p * s2 + np.float32(1.0 / 11.0)
    p = p * s2 + np.float32(1.0 / 9.0)
    p = p * s2 + np.float32(1.0 / 7.0)
    p = p * s2 + np.float32(1.0 / 5.0)
    p = p * s2 + np.float32(1.0 / 3.0)
    p = p * s2 + np.float32(1.0)
    return np.float32(2.0) * s * p


def _exp_f64(x):
    return math.exp(x)


def _exp2_f64(t):
    return math.exp(t * _LN2)


def _log1p_f64(y):
    return math.log1p(y)


def _exp(x):
    """exp for the kernels: the polynomial above in float32, libm in float64."""
    raise NotImplementedError("only callable from numba-compiled code")


def _exp2(t):
    """2**t for the kernels, as ``_exp``."""
    raise NotImplementedError("only callable from numba-compiled code")


def _log1p(y):
    raise NotImplementedError("only callable from numba-compiled code")


@overload(_exp, inline="always", fastmath=True)
def _exp_overload(x):
    return _exp_f32 if x == types.float32 else _exp_f64


@overload(_exp2, inline="always", fastmath=True)
def _exp2_overload(t):
    return _exp2_f32 if t == types.float32 else _exp2_f64


@overload(_log1p, inline="always", fastmath=True)
def _log1p_overload(y):
    return _log1p_f32 if y == types.float32 else _log1p_f64


@njit(inline="always", fastmath=True, error_model="numpy")
def delta_row(dts, w, bias, softplus, out, slope):
    """out = softplus(w @ dts + bias) (or w @ dts + bias) and its derivative in slope: one channel's step sizes
    from its direction's low-rank inputs ``dts`` (R, L) through its row ``w`` (R,) of the projection (SS2D's
    dt_proj, so the (channels, L) deltas are never written out), or from its own row with R = 1, w = 1."""
    one = out.dtype.type(1.0)
    for l in range(out.shape[0]):
        out[l] = bias
    for r in range(dts.shape[0]):
        wr = w[r]
        for l in range(out.shape[0]):
            out[l] += wr * dts[r, l]
    for l in range(out.shape[0]):
        x = out[l]
        if softplus:
            e = _exp(-abs(x))
            out[l] = max(x, out.dtype.type(0.0)) + _log1p(e)
            slope[l] = one / (one + e) if x >= 0 else e / (one + e)
        else:
            slope[l] = one


@njit(inline="always", error_model="numpy")
def source_row(c, d_model, per_dir):
    """Channel row ``c``'s direction, and the row of ``u`` it reads."""
    b, d = c // d_model, c % d_model
    k = d // per_dir
    return k, b * per_dir + d - k * per_dir


@njit(inline="always", error_model="numpy")
def delta_source(c, d_model, n_dirs, low_rank):
    """The row of ``dts`` channel row ``c`` takes its step sizes from: its own (R = 1), or with low-rank inputs
    its direction's, shared by the direction's channels."""
    if not low_rank:
        return c
    return (c // d_model) * n_dirs + (c % d_model) // (d_model // n_dirs)


def _compile(n_fixed: int) -> tuple:
    """The forward and backward kernels, with d_state a compile-time constant where ``n_fixed`` > 0.

    With the state loop's length known at compile time, SP-Mamba (d_state 16) runs its forward pass about 1.2x
    and a training step about 1.1x as fast as with the length read from ``A`` (bench/bench_state_kernels.py,
    BENCHMARKS.md). At d_state 8 a constant loop ran 2.6x slower, so 8 keeps the generic kernels. numba
    caches each closure on disk under its constant.
    """

    @njit(parallel=True, fastmath=True, error_model="numpy", cache=True)
    def forward(
        u, perm, dts, wdt, low_rank, bias, softplus, A, Bt, Ct, Dv, per_group, groups, d_model, y, hs, save_states
    ):  # fmt: skip
        bd, L = y.shape
        N = A.shape[1] if n_fixed == 0 else n_fixed
        T = CHUNK
        per_dir = d_model // perm.shape[0]
        # four channels at a time where four neighbours share a direction and a B/C group (see LANES)
        Q = LANES if per_group % LANES == 0 and per_dir % LANES == 0 else 1
        units = bd // Q
        n_blocks = min(units, BLOCKS)
        for blk in prange(n_blocks):  # scratch is allocated once per block of channels, not per channel
            h = np.empty((LANES, N), u.dtype)
            a2 = np.empty((LANES, N), u.dtype)  # A in powers of two: exp(dl a) = 2**(dl a2)
            dt = np.empty((LANES, L), u.dtype)
            slope = np.empty(L, u.dtype)
            for unit in range(blk * units // n_blocks, (blk + 1) * units // n_blocks):
                c = unit * Q
                d = c % d_model
                g = (c // d_model) * groups + d // per_group
                k, row = source_row(c, d_model, per_dir)
                p = perm[k]
                h[:] = 0.0
                for q in range(Q):
                    src = dts[delta_source(c + q, d_model, perm.shape[0], low_rank)]
                    delta_row(src, wdt[d + q], bias[d + q], softplus, dt[q], slope)
                    for n in range(N):
                        a2[q, n] = A[d + q, n] * _LOG2E
                if Q == 1:
                    for l in range(L):
                        if save_states and l % T == 0:
                            hs[c, l // T, :] = h[0]
                        pl = p[l]
                        dl = dt[0, l]
                        ul = u[row, pl]
                        du = dl * ul
                        acc = u.dtype.type(0.0)
                        for n in range(N):
                            x = _exp2(dl * a2[0, n]) * h[0, n] + du * Bt[g, l, n]
                            h[0, n] = x
                            acc += x * Ct[g, l, n]
                        y[c, pl] = acc + Dv[d] * ul
                    continue
                for l in range(L):  # the same step written out for four channels: their chains interleave
                    if save_states and l % T == 0:
                        hs[c : c + LANES, l // T, :] = h
                    pl = p[l]
                    dl0, dl1, dl2, dl3 = dt[0, l], dt[1, l], dt[2, l], dt[3, l]
                    u0, u1, u2, u3 = u[row, pl], u[row + 1, pl], u[row + 2, pl], u[row + 3, pl]
                    du0, du1, du2, du3 = dl0 * u0, dl1 * u1, dl2 * u2, dl3 * u3
                    acc0 = acc1 = acc2 = acc3 = u.dtype.type(0.0)
                    for n in range(N):
                        bn, cn = Bt[g, l, n], Ct[g, l, n]
                        x0 = _exp2(dl0 * a2[0, n]) * h[0, n] + du0 * bn
                        x1 = _exp2(dl1 * a2[1, n]) * h[1, n] + du1 * bn
                        x2 = _exp2(dl2 * a2[2, n]) * h[2, n] + du2 * bn
                        x3 = _exp2(dl3 * a2[3, n]) * h[3, n] + du3 * bn
                        h[0, n], h[1, n], h[2, n], h[3, n] = x0, x1, x2, x3
                        acc0 += x0 * cn
                        acc1 += x1 * cn
                        acc2 += x2 * cn
                        acc3 += x3 * cn
                    y[c, pl] = acc0 + Dv[d] * u0
                    y[c + 1, pl] = acc1 + Dv[d + 1] * u1
                    y[c + 2, pl] = acc2 + Dv[d + 2] * u2
                    y[c + 3, pl] = acc3 + Dv[d + 3] * u3

    @njit(parallel=True, fastmath=True, error_model="numpy", cache=True)
    def backward(
        u, perm, dts, wdt, low_rank, bias, softplus, A, Bt, Ct, Dv, per_group, groups, d_model,
        hs, dy, du, ddelta, dA, dBt, dCt, dD, dbias,
    ):  # fmt: skip
        bd, L = ddelta.shape
        per_dir = d_model // perm.shape[0]
        N = A.shape[1] if n_fixed == 0 else n_fixed
        T = CHUNK
        n_chunks = hs.shape[1]
        n_groups = dBt.shape[0]
        for g in prange(n_groups):
            b = g // groups
            hbuf = np.empty((T + 1, N), u.dtype)  # row 0: state before the chunk
            abuf = np.empty((T, N), u.dtype)
            dh = np.empty(N, u.dtype)
            dA_c = np.empty(N, u.dtype)
            a2 = np.empty(N, u.dtype)
            dt = np.empty(L, u.dtype)
            slope = np.empty(L, u.dtype)
            for j in range(per_group):
                d = (g % groups) * per_group + j
                c = b * d_model + d
                k, row = source_row(c, d_model, per_dir)
                p = perm[k]
                delta_row(dts[delta_source(c, d_model, perm.shape[0], low_rank)], wdt[d], bias[d], softplus, dt, slope)
                a = A[d]
                for n in range(N):
                    a2[n] = a[n] * _LOG2E
                dh[:] = 0.0
                dA_c[:] = 0.0
                db_acc = u.dtype.type(0.0)
                dd_acc = u.dtype.type(0.0)
                for ch in range(n_chunks - 1, -1, -1):
                    l0 = ch * T
                    l1 = min(L, l0 + T)
                    hbuf[0] = hs[c, ch]
                    for l in range(l0, l1):
                        i = l - l0
                        dl = dt[l]
                        du_ = dl * u[row, p[l]]
                        for n in range(N):
                            e = _exp2(dl * a2[n])
                            abuf[i, n] = e
                            hbuf[i + 1, n] = e * hbuf[i, n] + du_ * Bt[g, l, n]
                    for l in range(l1 - 1, l0 - 1, -1):
                        i = l - l0
                        pl = p[l]
                        dyl = dy[c, pl]
                        dl = dt[l]
                        ul = u[row, pl]
                        dd_acc += dyl * ul
                        ddt_acc = u.dtype.type(0.0)
                        du_acc = u.dtype.type(0.0)
                        for n in range(N):
                            dhn = dh[n] + dyl * Ct[g, l, n]
                            dCt[g, l, n] += dyl * hbuf[i + 1, n]
                            t1 = dhn * hbuf[i, n] * abuf[i, n]
                            dA_c[n] += t1 * dl
                            bn = Bt[g, l, n]
                            ddt_acc += t1 * a[n] + dhn * bn * ul
                            du_acc += dhn * bn
                            dBt[g, l, n] += dhn * dl * ul
                            dh[n] = abuf[i, n] * dhn
                        gd = ddt_acc * slope[l]
                        ddelta[c, l] = gd
                        db_acc += gd
                        du[c, pl] = du_acc * dl + Dv[d] * dyl
                dA[c] = dA_c
                dD[c] = dd_acc
                dbias[c] = db_acc

    return forward, backward


FIXED_STATES = (16,)  # the d_state values with kernels of their own: where measured faster (see _compile)
_GENERIC = _compile(0)
_FIXED = {n: _compile(n) for n in FIXED_STATES}
DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def n_chunks(length: int) -> int:
    return (length + CHUNK - 1) // CHUNK


def kernels(dtype: np.dtype, n_state: int) -> tuple:
    """The (forward, backward) kernels for this dtype and state size (numba compiles each dtype on first use)."""
    if np.dtype(dtype) not in DTYPES:
        raise TypeError(f"the CPU selective scan runs in float32 or float64, got {dtype}")
    return _FIXED.get(n_state, _GENERIC)


def set_threads(n: int) -> None:
    numba.set_num_threads(max(1, min(n, numba.config.NUMBA_NUM_THREADS)))
