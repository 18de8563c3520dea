"""Mamba-MIS components: each checked against a plain reference, then the network's shapes and gradients."""

import numpy as np
import pytest
import torch

from spmamba.scan import scan_path
from spmamba.seg.amffb import AMFFB, MultiScaleFusion
from spmamba.seg.bfss import BFSS, BidirectionalScan1D
from spmamba.seg.mamba_mis import SEG_PRESETS, MambaMIS, MambaMISConfig
from spmamba.seg.spectral_gate import SpectralGate
from spmamba.ssm import reference_backend, selective_scan_ref


def _one_direction(layer, x, k, path):
    """Direction k of a BFSS written out: read the map along ``path``, S6 with direction k's parameters,
    write each output back at the position it was read from."""
    b, d, h, w = x.shape
    flat = torch.as_tensor(path[:, 0] * w + path[:, 1])
    seq = x.reshape(b, d, h * w)[:, :, flat]
    x_dbl = torch.einsum("bdl,cd->bcl", seq, layer.x_proj_weight[k])
    dts, Bs, Cs = torch.split(x_dbl, [layer.dt_rank, layer.d_state, layer.d_state], dim=1)
    dts = torch.einsum("brl,dr->bdl", dts, layer.dt_proj_weight[k])
    rows = slice(k * d, (k + 1) * d)
    y = selective_scan_ref(
        seq,
        dts,
        -torch.exp(layer.A_log[rows]),
        Bs,
        Cs,
        layer.D[rows],
        delta_bias=layer.dt_proj_bias[k],
        delta_softplus=True,
    )
    out = torch.empty_like(y)
    out[:, :, flat] = y
    return out.view(b, d, h, w)


@pytest.mark.parametrize("directions", [4, 1])
def test_bfss_is_each_directions_scan_mapped_back_and_fused(directions):
    torch.manual_seed(0)
    layer = BFSS(6, d_state=4, expand=1, num_directions=directions)
    with torch.no_grad():
        layer.fusion_logits.normal_()
    x = torch.randn(2, 6, 8, 8)
    names = ["identity", "transpose", "identity_reversed", "transpose_reversed"][:directions]
    paths = [scan_path("raster", 8, n) for n in names]
    # row-major, column-major, and each read backwards: what BFSS means by bidirectional
    assert (paths[0][:3] == [[0, 0], [0, 1], [0, 2]]).all()
    if directions == 4:
        assert (paths[1][:2] == [[0, 0], [1, 0]]).all() and (paths[2][0] == [7, 7]).all()
    x.requires_grad_(True)
    w = layer.fusion_weights()
    expected = sum(w[k][None, :, None, None] * _one_direction(layer, x, k, paths[k]) for k in range(directions))
    got = layer.scan(x)
    assert torch.allclose(got, expected, atol=1e-5)
    assert torch.allclose(w.sum(0), torch.full((6,), float(directions)))
    probe = torch.randn_like(got)  # the fused layer's gradients are those of the written-out sum
    grads = [torch.autograd.grad((y * probe).sum(), (x, layer.fusion_logits)) for y in (got, expected)]
    for g, e in zip(*grads, strict=True):
        assert torch.allclose(g, e, atol=1e-4)


def test_bfss_starts_as_the_plain_sum_and_numba_matches_the_reference():
    torch.manual_seed(1)
    layer = BFSS(8, d_state=4, expand=1)
    x = torch.randn(1, 8, 16, 16)
    plain = layer.scan_directions(x).sum(1).view(1, 8, 16, 16)
    assert torch.allclose(layer.scan(x), plain, atol=1e-5)
    with reference_backend():
        ref = layer.scan(x)
    assert torch.allclose(layer.scan(x), ref, atol=1e-4)


def test_bidirectional_1d_scan_reads_both_ways():
    torch.manual_seed(2)
    layer = BidirectionalScan1D(4, d_state=4)
    seq = torch.randn(2, 10, 4, requires_grad=True)
    out = layer(seq)
    assert out.shape == seq.shape
    out[:, 0].sum().backward()  # the first position hears the last one only through the backward scan
    assert seq.grad[:, -1].abs().sum() > 0
    with reference_backend(), torch.no_grad():  # the kernel's reversed index against a reversed copy
        assert torch.allclose(out, layer(seq), atol=1e-5)


def _full_spectrum_reference(x, weight):
    """The same filter applied with a full complex FFT: the half spectrum's weights extended to all
    frequencies by Hermitian symmetry (W(-k) = conj W(k)), so the output is real."""
    b, h, w, c = x.shape
    half = torch.view_as_complex(weight.contiguous())  # (h, w//2+1, c)
    full = torch.zeros(h, w, c, dtype=half.dtype)
    full[:, : w // 2 + 1] = half
    for ky in range(h):
        for kx in range(w // 2 + 1, w):
            full[ky, kx] = half[(-ky) % h, (-kx) % w].conj()
    spec = torch.fft.fft2(x.to(torch.complex64), dim=(1, 2), norm="ortho")
    return torch.fft.ifft2(spec * full, dim=(1, 2), norm="ortho")


@pytest.mark.parametrize("size", [(8, 8), (6, 10)])
def test_spectral_gate_matches_a_full_fft_reference(size):
    torch.manual_seed(3)
    h, w = size
    gate = SpectralGate(5, h, w)
    with torch.no_grad():
        gate.complex_weight.normal_()
        # In the columns that are their own mirror (kx = 0 and, for even w, w/2) the half spectrum holds both
        # W(ky) and W(-ky); only their Hermitian part can act on a real map, so the reference gets that part.
        for kx in (0, w // 2) if w % 2 == 0 else (0,):
            col = torch.view_as_complex(gate.complex_weight[:, kx].contiguous())
            mirrored = col[(-torch.arange(h)) % h].conj()
            gate.complex_weight[:, kx] = torch.view_as_real((col + mirrored) / 2)
    x = torch.randn(2, h, w, 5)
    ref = _full_spectrum_reference(x, gate.complex_weight)
    assert ref.imag.abs().max() < 1e-4
    assert torch.allclose(gate(x), ref.real, atol=1e-4)


def test_spectral_gate_starts_near_identity_and_resamples_for_other_sizes():
    gate = SpectralGate(3, 8, 8)
    x = torch.randn(1, 8, 8, 3)
    assert (gate(x) - x).abs().mean() < 0.1 * x.abs().mean()
    assert gate(torch.randn(1, 16, 16, 3)).shape == (1, 16, 16, 3)


def test_multiscale_fusion_brings_every_other_level_to_each_level():
    torch.manual_seed(4)
    fusion = MultiScaleFusion([4, 8, 16])
    feats = [torch.zeros(1, 4, 16, 16), torch.zeros(1, 8, 8, 8), torch.randn(1, 16, 4, 4)]
    assert all(torch.equal(o, f) for o, f in zip(fusion(feats), feats, strict=True))  # scale 0: identity at start
    with torch.no_grad():
        fusion.scale.fill_(1.0)
    out = fusion(feats)
    # the finest level now carries the coarsest level's content, projected and upsampled
    expected = torch.nn.functional.interpolate(fusion.proj[0][2](feats[2]), size=(16, 16), mode="bilinear")
    expected = expected + fusion.proj[0][1].bias[None, :, None, None]  # level 1 is zeros: its projection is the bias
    assert torch.allclose(out[0], expected, atol=1e-6)
    assert out[2].shape == feats[2].shape


def test_bridge_keeps_shapes_and_passes_gradients_to_every_level():
    torch.manual_seed(5)
    bridge = AMFFB([4, 8, 16, 32], d_model=4, d_state=4)
    with torch.no_grad():
        bridge.fusion.scale.fill_(0.5)
    feats = [torch.randn(2, c, s, s, requires_grad=True) for c, s in ((4, 16), (8, 8), (16, 4), (32, 2))]
    out = bridge(feats)
    assert [o.shape for o in out] == [f.shape for f in feats]
    out[0].sum().backward()  # the finest output depends on every level (channel attention and fusion)
    assert all(f.grad is not None and f.grad.abs().sum() > 0 for f in feats)


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"bfss_directions": 1},
        {"spectral_gate": False},
        {"bridge": False},
        {"detail_branch": True},
        {"stem": "conv"},
        {"stem": "conv", "mlp_ratio": 2},
    ],
    ids=str,
)
def test_network_and_its_ablations_map_images_to_logits_of_the_same_size(overrides):
    torch.manual_seed(6)
    cfg = MambaMISConfig(image_size=64, channels=4, d_state=4, bridge_dim=4, **overrides)
    model = MambaMIS(cfg)
    x = torch.randn(2, 3, 64, 64)
    logits = model(x)
    assert logits.shape == (2, 1, 64, 64)
    logits.mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, missing
    assert MambaMISConfig.from_dict(cfg.to_dict()) == cfg
    older = {k: v for k, v in cfg.to_dict().items() if k not in ("detail_branch", "stem", "mlp_ratio")}
    assert MambaMISConfig.from_dict(older) == MambaMISConfig.from_dict({**older, "stem": "patch"})
    assert not MambaMISConfig.from_dict(older).detail_branch and MambaMISConfig.from_dict(older).mlp_ratio == 0


def test_the_channel_mlp_is_a_residual_sub_block_that_adds_what_its_ratio_says():
    """``mlp_ratio`` r adds LN + (C -> rC -> C) per block: 2rC² + (r + 3)C weights, and nothing when 0."""
    from spmamba.seg.mamba_mis import ChannelMLP

    base = MambaMISConfig(image_size=64, channels=4, d_state=4, bridge_dim=4, stem="conv")
    with_mlp = MambaMIS(MambaMISConfig(**{**base.to_dict(), "mlp_ratio": 2}))
    blocks = [m for m in with_mlp.modules() if isinstance(m, ChannelMLP)]
    assert len(blocks) == sum(base.depths) + sum(base.decoder_depths)
    count = sum(p.numel() for p in with_mlp.parameters()) - sum(p.numel() for p in MambaMIS(base).parameters())
    widths = [4, 8, 16, 32] + [16, 8, 4]
    assert count == sum(2 * 2 * c * c + (2 + 3) * c for c in widths)
    mlp = ChannelMLP(8, 2)
    x = torch.randn(2, 5, 5, 8)
    torch.testing.assert_close(mlp(x), x + mlp.mlp(mlp.norm(x)))


def test_the_conv_stem_is_checked_and_feeds_the_first_mamba_stage_a_quarter_resolution_map():
    with pytest.raises(ValueError, match="unknown stem 'pixel'"):
        MambaMISConfig(stem="pixel")
    with pytest.raises(ValueError, match="detail branch belongs to the patch stem"):
        MambaMISConfig(stem="conv", detail_branch=True)
    model = MambaMIS(MambaMISConfig(image_size=64, channels=8, d_state=4, bridge_dim=4, stem="conv"))
    quarter, (full, half) = model.stem(torch.randn(1, 3, 64, 64))
    assert quarter.shape == (1, 16, 16, 8) and full.shape == (1, 4, 64, 64) and half.shape == (1, 8, 32, 32)


def test_presets_grow_from_cpu_to_paper_scale():
    sizes = [
        sum(p.numel() for p in MambaMIS(SEG_PRESETS[n]).parameters()) for n in ("cpu-tiny", "cpu-small", "paper-scale")
    ]
    assert sizes == sorted(sizes) and sizes[-1] > 10 * sizes[0]
    assert np.isclose(sizes[0] / 1e6, 0.66, atol=0.05)
