"""The eight points where the model once differed from the authors' reference code, each pinned
against an independent computation (numbers and rules written out as the reference code has them)."""

import numpy as np
import pytest
import torch
from scipy import ndimage
from skimage.filters import difference_of_gaussians
from sklearn.metrics import f1_score
from timm.layers import DropPath

from spmamba.metrics import best_f1, image_metrics
from spmamba.model import SPMamba, SPMambaConfig
from spmamba.model.decoder import LocalPath, SPSSBlock
from spmamba.model.ss2d import SS2D
from spmamba.scoring import ComponentMaps, ScoreWeights, component_maps, contrast, rescore
from tests.conftest import tiny_config


def test_1_reconstruction_map_is_the_sum_of_scales_over_nine():
    rng = np.random.default_rng(0)
    per_scale = rng.random((2, 3, 32, 32))
    maps = ComponentMaps(torch.from_numpy(per_scale), torch.zeros(2, 32, 32))
    s = rescore(maps, ScoreWeights.max_only())
    for i in range(2):
        expected = ndimage.gaussian_filter((per_scale[i, 0] + per_scale[i, 1] + per_scale[i, 2]) / 9.0, 4.0)
        np.testing.assert_allclose(s.anomaly_map[i].numpy(), expected, atol=1e-12)
        assert s.total[i].item() == pytest.approx(expected.max(), rel=1e-12)


def _forward(cfg):
    torch.manual_seed(0)
    model = SPMamba(cfg, encoder_weights=None).train()
    feats = [
        torch.randn(2, c, cfg.image_size // s, cfg.image_size // s)
        for c, s in zip(model.encoder.channels, (4, 8, 16), strict=True)
    ]
    return model, model.forward_features(feats)


def test_2_loss_is_five_times_summed_mse_plus_25_mean_distance():
    model, out = _forward(tiny_config())
    mse = sum(((r - f) ** 2).mean() for f, r in zip(out.features, out.reconstructions, strict=True))
    d = out.prototype_distance.detach().numpy()
    d_up = np.stack([ndimage.zoom(x, 128 / x.shape[0], order=1, grid_mode=True, mode="nearest") for x in d])
    expected = 5 * mse.item() + 25 * d_up.mean()
    assert model.loss(out).item() == pytest.approx(expected, rel=1e-5)


def test_3_drop_path_reversed_linspace_one_rate_per_block():
    model = SPMamba(SPMambaConfig(encoder="efficientnet_lite0", depths=(3, 4, 6, 3)), encoder_weights=None)
    rates = np.linspace(0, 0.2, 16)[::-1]  # reference: linspace(0, 0.2, sum(depths))[::-1]
    # Stage slices start at 0, 3, 7, 13; block b of a stage takes the slice's b-th rate.
    expected = [[rates[0]], [rates[3], rates[4]], [rates[7], rates[8]], [rates[13]]]
    for stage, want in zip(model.decoder.stages, expected, strict=True):
        blocks = [m for m in stage if isinstance(m, SPSSBlock)]
        got = []
        for block in blocks:
            probs = {
                layer.drop_path.drop_prob if isinstance(layer.drop_path, DropPath) else 0.0 for layer in block.mamba
            }
            assert len(probs) == 1  # every VSS layer of a block shares the block's rate
            got.append(probs.pop())
        np.testing.assert_allclose(got, want, atol=1e-7)


def test_4_prototype_distance_upsampled_with_half_pixel_centres():
    rng = np.random.default_rng(1)
    d = rng.random((2, 8, 8))
    maps = component_maps([torch.rand(2, 4, 8, 8)], [torch.rand(2, 4, 8, 8)], torch.from_numpy(d), 256)
    for i in range(2):
        np.testing.assert_allclose(
            maps.prototype[i].numpy(), ndimage.zoom(d[i], 32, order=1, grid_mode=True, mode="nearest"), atol=1e-10
        )


def test_5_prototype_banks_reference_k5_standard_normal_paper_k10():
    ref = SPMamba(SPMambaConfig.preset("reference"), encoder_weights=None)
    assert tuple(ref.prototype.prototypes.shape) == (64, 5, 512)
    assert ref.prototype.prototypes.std().item() == pytest.approx(1.0, abs=0.02)
    assert ref.prototype.prototypes.mean().item() == pytest.approx(0.0, abs=0.02)
    assert SPMambaConfig.preset("paper").prototype_banks == 10


def test_6_no_weight_decay_for_biases_and_1d_parameters_and_reference_init():
    torch.manual_seed(0)
    model = SPMamba(tiny_config(bottleneck_dim=256), encoder_weights=None)
    groups = model.parameter_groups(1e-4)
    names = {id(p): n for n, p in model.named_parameters()}
    no_decay = {names[id(p)] for p in groups[0]["params"]}
    decay = {names[id(p)] for p in groups[1]["params"]}
    assert groups[0]["weight_decay"] == 0.0 and groups[1]["weight_decay"] == 1e-4
    trainable = {n for n, p in model.named_parameters() if not n.startswith("encoder.")}
    assert no_decay | decay == trainable and not no_decay & decay
    assert all(n.endswith(".bias") or model.get_parameter(n).ndim == 1 for n in no_decay)
    assert all(not n.endswith(".bias") and model.get_parameter(n).ndim > 1 for n in decay)
    assert any(n.endswith("dt_proj_bias") for n in decay)  # 2-D (K, D) and not named '.bias': decayed, as there
    assert any(n.endswith(".D") for n in no_decay) and any(n.endswith("A_log") for n in decay)
    # Decoder Linear layers: trunc-normal(0.02); SPSS convs: N(0, sqrt(2 / fan_out)), zero bias.
    ss2d = next(m for m in model.decoder.modules() if isinstance(m, SS2D))
    w = ss2d.in_proj.weight
    assert w.std().item() == pytest.approx(0.02, rel=0.1)  # torch's default would give 1 / sqrt(3 * 256) = 0.036
    conv = next(m for m in model.decoder.modules() if isinstance(m, LocalPath)).body[0][0]  # 1x1, 256 -> 256
    assert conv.weight.std().item() == pytest.approx(np.sqrt(2 / 256), rel=0.05)
    assert torch.count_nonzero(conv.bias) == 0
    assert ss2d.conv.weight.std().item() == pytest.approx(np.sqrt(2 / 9), rel=0.1)  # depthwise 3x3


@pytest.mark.parametrize("low, high", [(0.5, 1.0), (0.6, 1.2), (0.5, 1.5)])
def test_7_contrast_is_skimage_difference_of_gaussians(low, high):
    amap = np.random.default_rng(2).random((3, 40, 40))
    got = contrast(torch.from_numpy(amap), low, high).numpy()
    want = [np.mean(np.abs(difference_of_gaussians(a, low, high))) for a in amap]  # border mode 'nearest'
    np.testing.assert_allclose(got, want, rtol=1e-10)


def test_8_f1_is_the_best_over_all_thresholds():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 200)
    scores = rng.random(200) + 0.4 * labels
    brute = max(f1_score(labels, scores >= t) for t in np.unique(scores))
    assert best_f1(scores, labels) == pytest.approx(brute, abs=1e-12)
    assert image_metrics(scores, labels)["oracle_f1"] == pytest.approx(brute, abs=1e-12)
