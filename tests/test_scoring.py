"""The batched torch scoring against a plain per-image NumPy/SciPy/skimage transcription of the method."""

import numpy as np
import pytest
import torch
from scipy import ndimage
from skimage.filters import difference_of_gaussians

from spmamba.scoring import ScoreWeights, ablation_weights, component_maps, gaussian_blur, rescore


def np_upsample(x, size):
    return ndimage.zoom(x, size / x.shape[0], order=1, grid_mode=False)  # bilinear, corners aligned


def np_upsample_half_pixel(x, size):
    """Bilinear with align_corners=False: pixel centres at half-integers, clamped at the border."""
    return ndimage.zoom(x, size / x.shape[0], order=1, grid_mode=True, mode="nearest")


def np_score(feats, recs, proto, size, w: ScoreWeights):
    """One image: lists of (C, h, w) arrays and an (h, w) prototype map, scored as the reference code does."""
    recon = (
        sum(
            np_upsample(
                1 - (f * r).sum(0) / np.maximum(np.linalg.norm(f, axis=0) * np.linalg.norm(r, axis=0), 1e-8), size
            )
            for f, r in zip(feats, recs, strict=True)
        )
        / 9
    )  # util/metric.py: divided by len(scales) * sum(scale weights) = 3 * 3
    recon = ndimage.gaussian_filter(recon, w.sigma)
    amap = recon + w.alpha * np_upsample_half_pixel(proto, size)
    y, x = np.unravel_index(np.argmax(amap), amap.shape)
    peak = amap[y, x]
    yy, xx = np.mgrid[: amap.shape[0], : amap.shape[1]]
    concen = np.mean((amap - peak) ** 2 * np.sqrt((yy - y) ** 2 + (xx - x) ** 2))
    contra = np.mean(np.abs(difference_of_gaussians(amap, w.dog_sigma, w.dog_k_sigma)))
    return amap, dict(peak=peak, concentration=concen, contrast=contra, total=peak + w.beta * concen + w.gamma * contra)


@pytest.mark.parametrize("sigma", [0.5, 0.6, 1.2, 4.0, 9.0])
def test_gaussian_blur_matches_scipy(sigma):
    x = np.random.default_rng(0).random((2, 20, 33))
    got = gaussian_blur(torch.from_numpy(x), sigma).numpy()
    for i in range(2):
        np.testing.assert_allclose(got[i], ndimage.gaussian_filter(x[i], sigma), atol=1e-12)


@pytest.mark.parametrize(
    "weights",
    [
        ScoreWeights.paper(),
        ScoreWeights.reference(),
        ScoreWeights.max_only(),
        ScoreWeights(2.0, 0.3, -10, 2.0, 1.0, 3.0),
    ],
)
def test_batched_scores_match_numpy_reference(weights):
    rng = np.random.default_rng(1)
    size, b = 64, 3
    shapes = [(8, 16), (16, 8), (32, 4)]  # (channels, side)
    feats = [torch.from_numpy(rng.standard_normal((b, c, s, s))) for c, s in shapes]
    recs = [f + torch.from_numpy(rng.standard_normal(f.shape)) * 0.5 for f in feats]
    proto = torch.from_numpy(rng.random((b, 4, 4)))
    scores = rescore(component_maps(feats, recs, proto, size), weights)
    for i in range(b):
        amap, ref = np_score(
            [f[i].numpy() for f in feats], [r[i].numpy() for r in recs], proto[i].numpy(), size, weights
        )
        np.testing.assert_allclose(scores.anomaly_map[i].numpy(), amap, atol=1e-10)
        for k, v in ref.items():
            np.testing.assert_allclose(getattr(scores, k)[i].item(), v, rtol=1e-9, err_msg=k)


def test_maps_shapes_and_component_semantics():
    feats = [torch.rand(2, 4, 8, 8)]
    maps = component_maps(feats, feats, torch.zeros(2, 2, 2), 32)
    assert maps.per_scale.shape == (2, 1, 32, 32) and maps.prototype.shape == (2, 32, 32)
    s = rescore(maps, ScoreWeights())
    assert torch.allclose(s.reconstruction, torch.zeros(2), atol=1e-6)  # perfect reconstruction
    assert torch.allclose(s.total, torch.zeros(2), atol=1e-4)


def test_rescore_reacts_to_weights_without_recomputing_maps():
    rng = np.random.default_rng(2)
    maps = component_maps(
        [torch.from_numpy(rng.random((1, 4, 8, 8)))],
        [torch.from_numpy(rng.random((1, 4, 8, 8)))],
        torch.from_numpy(rng.random((1, 2, 2))),
        32,
    )
    base = rescore(maps, ScoreWeights(alpha=0.0))
    more = rescore(maps, ScoreWeights(alpha=1.0))
    assert (more.peak > base.peak).all()
    assert torch.equal(base.reconstruction, more.reconstruction)


def test_ablation_switches_terms():
    ab = ablation_weights(ScoreWeights())
    assert list(ab) == ["max only", "+ prototype", "+ contrast", "+ concentration", "all four"]
    assert (ab["max only"].alpha, ab["max only"].beta, ab["max only"].gamma) == (0, 0, 0)
    assert ab["+ contrast"].beta == 0 and ab["+ contrast"].gamma == 400
    assert ab["+ concentration"].gamma == 0 and ab["+ concentration"].beta == -0.025


def test_ablation_of_max_only_weights_adds_the_papers_terms():
    """A checkpoint that keeps max-only weights (brain MRI) still gets a table of what each term does."""
    ab = ablation_weights(ScoreWeights.max_only())
    assert ab["all four"] == ScoreWeights.paper() and ab["+ prototype"].alpha == 1.0
    ref = ablation_weights(ScoreWeights.reference())
    assert ref["all four"] == ScoreWeights.reference()  # other weights keep their own values


def test_map_norm_matches_numpy_statistics_and_standardises_its_own_maps():
    """Accumulated in batches, the per-position mean and spread equal numpy's over the whole set; applied to
    the maps it was fitted on, each position has mean 0 and spread 1 (where the floor is not reached)."""
    from spmamba.scoring import ComponentMaps, MapNorm

    g = torch.Generator().manual_seed(0)
    scale = torch.rand(1, 3, 6, 5, generator=g) + 0.5  # every pixel its own spread
    maps = ComponentMaps(torch.rand(20, 3, 6, 5, generator=g) * scale, torch.rand(20, 6, 5, generator=g) * 2)
    norm = MapNorm.fit(ComponentMaps(maps.per_scale[i : i + 7], maps.prototype[i : i + 7]) for i in range(0, 20, 7))
    ref = maps.per_scale.double().numpy()
    np.testing.assert_allclose(norm.per_scale_mean.numpy(), ref.mean(0), rtol=1e-5)
    np.testing.assert_allclose(norm.per_scale_std.numpy(), ref.std(0), rtol=1e-4)
    np.testing.assert_allclose(norm.prototype_std.numpy(), maps.prototype.double().numpy().std(0), rtol=1e-4)
    z = norm.apply(maps)
    np.testing.assert_allclose(z.per_scale.mean(0).numpy(), 0, atol=1e-5)
    np.testing.assert_allclose(z.per_scale.std(0, unbiased=False).numpy(), 1, rtol=1e-4)
    back = MapNorm.from_tensors(norm.tensors())
    assert torch.equal(back.prototype_mean, norm.prototype_mean) and MapNorm.from_tensors({}) is None
    flat = MapNorm.fit([ComponentMaps(torch.ones(3, 1, 4, 4), torch.ones(3, 4, 4))])
    assert torch.isfinite(flat.apply(ComponentMaps(torch.ones(1, 1, 4, 4), torch.ones(1, 4, 4))).per_scale).all()


def test_scoring_in_chunks_equals_scoring_all_at_once(monkeypatch):
    """A volume's slices are scored RESCORE_CHUNK at a time to bound memory; every image is scored alone, so
    the chunks give the scores of one pass (random maps, a chunk size that leaves a remainder)."""
    import spmamba.scoring as scoring

    g = torch.Generator().manual_seed(0)
    maps = scoring.ComponentMaps(torch.rand(11, 3, 32, 32, generator=g), torch.rand(11, 32, 32, generator=g))
    whole = scoring.rescore(maps, scoring.ScoreWeights())
    monkeypatch.setattr(scoring, "RESCORE_CHUNK", 4)
    chunked = scoring.rescore(maps, scoring.ScoreWeights())
    for a, b in zip(whole, chunked, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
