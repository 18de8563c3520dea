"""Image metrics, intervals and the rule that picks the score weights."""

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from spmamba.metrics import auroc_gain_interval, auroc_interval
from spmamba.scoring import ComponentMaps, ScoreWeights
from spmamba.train import select_weights


def test_auroc_interval_contains_the_estimate_and_narrows_with_data():
    rng = np.random.default_rng(0)
    widths = []
    for n in (60, 600):
        labels = np.arange(n) % 2
        scores = rng.standard_normal(n) + labels
        lo, hi = auroc_interval(scores, labels, rounds=400)
        assert lo < roc_auc_score(labels, scores) < hi
        widths.append(hi - lo)
    assert widths[1] < widths[0] / 2


def test_gain_interval_is_paired():
    rng = np.random.default_rng(1)
    labels = np.arange(400) % 2
    base = rng.standard_normal(400) + labels
    gain, lo, hi = auroc_gain_interval(base + 0.3 * labels, base, labels, rounds=400)
    assert gain > 0 and lo > 0  # a consistent improvement on the same images is detected
    gain, lo, hi = auroc_gain_interval(base, base, labels, rounds=100)
    assert gain == lo == hi == 0


def test_gain_interval_of_several_runs_compares_their_mean_auroc():
    rng = np.random.default_rng(3)
    labels = np.arange(300) % 2
    shared = rng.standard_normal(300)  # the images' own difficulty, common to every run
    runs = [shared + 0.3 * rng.standard_normal(300) + k * labels for k in (0.5, 0.6, 1.0, 1.1)]
    gain, lo, hi = auroc_gain_interval(np.stack(runs[2:]), np.stack(runs[:2]), labels, rounds=300)
    means = [np.mean([roc_auc_score(labels, s) for s in pair]) for pair in (runs[2:], runs[:2])]
    assert gain == pytest.approx(means[0] - means[1])
    assert lo < gain < hi and lo > 0
    one, *_ = auroc_gain_interval(runs[2], runs[0], labels, rounds=300)  # a single run is a group of one
    assert one == pytest.approx(roc_auc_score(labels, runs[2]) - roc_auc_score(labels, runs[0]))


def _maps(proto_noise: float, seed: int = 2):
    """Abnormal images carry a bright blob in the reconstruction maps; the prototype map is noise."""
    rng = np.random.default_rng(seed)
    n = 80
    labels = np.arange(n) % 2
    per_scale = rng.random((n, 3, 32, 32)) * 0.2
    per_scale[labels == 1, :, 12:18, 12:18] += 0.6
    proto = rng.random((n, 32, 32)) * proto_noise
    return ComponentMaps(torch.from_numpy(per_scale), torch.from_numpy(proto)), labels


def test_published_weights_kept_unless_another_setting_wins_beyond_chance():
    maps, labels = _maps(proto_noise=0.0)
    weights, sel = select_weights(maps, labels)
    assert sel["chosen"] == "paper" and weights == ScoreWeights.paper()
    assert set(sel["settings"]) == {"paper", "reference", "max-only"}
    for row in sel["settings"].values():
        lo, hi = row["auroc_ci95"]
        assert lo <= row["auroc"] <= hi


def test_switches_when_the_gain_interval_is_above_zero():
    maps, labels = _maps(proto_noise=40.0)  # the prototype term drowns the signal; max-only ignores it
    weights, sel = select_weights(maps, labels)
    assert sel["chosen"] == "max-only" and weights == ScoreWeights.max_only()
    assert sel["settings"]["max-only"]["gain_ci95"][0] > 0


def test_pixel_metrics_follow_the_mask():
    from spmamba.metrics import pixel_metrics

    mask = np.zeros((2, 8, 8), bool)
    mask[1, 2:4, 2:4] = True
    perfect = mask.astype(float)
    assert pixel_metrics(perfect, mask) == {"pixel_auroc": 1.0, "pixel_ap": 1.0, "pixel_f1_max": 1.0, "aupro": 1.0}
    assert pixel_metrics(1 - perfect, mask)["pixel_auroc"] == 0.0


def _aupro_by_thresholds(maps, masks, max_fpr=0.3):
    """AUPRO written out as MVTec AD's evaluation describes it: one binarisation per distinct score,
    regions from skimage's regionprops, trapezoids up to max_fpr with the last segment interpolated."""
    from skimage.measure import label, regionprops

    normal = ~masks
    regions = [(i, r.coords) for i, m in enumerate(masks) for r in regionprops(label(m, connectivity=2))]
    points = [(0.0, 0.0)]
    for t in np.unique(maps)[::-1]:
        hit = maps >= t
        pro = np.mean([hit[i][tuple(c.T)].mean() for i, c in regions])
        points.append(((hit & normal).sum() / normal.sum(), pro))
    fpr, pro = np.array(points).T
    area = 0.0
    for k in range(1, len(fpr)):
        x0, x1, y0, y1 = fpr[k - 1], fpr[k], pro[k - 1], pro[k]
        if x0 >= max_fpr:
            break
        if x1 > max_fpr:
            y1, x1 = y0 + (y1 - y0) * (max_fpr - x0) / (x1 - x0), max_fpr
        area += (x1 - x0) * (y0 + y1) / 2
    return area / max_fpr


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_aupro_matches_the_per_threshold_definition(seed):
    from spmamba.metrics import aupro

    rng = np.random.default_rng(seed)
    masks = np.zeros((4, 24, 24), bool)
    masks[0, 3:9, 4:12] = True  # a large region ...
    masks[0, 15:17, 18:20] = True  # ... and a small one in the same image
    masks[2, 10:20, 2:5] = True  # image 1 and 3 are normal
    maps = rng.random(masks.shape) + 0.8 * masks * rng.random(masks.shape)
    maps = np.round(maps, 2)  # ties, as quantised maps have
    assert aupro(maps, masks) == pytest.approx(_aupro_by_thresholds(maps, masks), abs=1e-9)


def test_aupro_of_noise_is_the_diagonal_and_small_regions_count_as_much_as_large():
    from spmamba.metrics import aupro

    rng = np.random.default_rng(0)
    masks = np.zeros((8, 64, 64), bool)
    masks[:4, 10:40, 10:40] = True
    assert aupro(rng.random(masks.shape), masks) == pytest.approx(0.15, abs=0.01)  # PRO = FPR: 0.3^2 / 2 / 0.3
    masks[:4, 50:52, 50:52] = True  # a small region per image that the map misses entirely
    found_large_only = masks.astype(float)
    found_large_only[:, 50:52, 50:52] = 0
    # Half the regions found at FPR 0, the rest only at FPR 1: PRO(0.3) = 0.65, area (0.5 + 0.65) / 2;
    # pixel AUROC barely notices the 16 missed pixels.
    assert aupro(found_large_only, masks) == pytest.approx(0.575)
    assert roc_auc_score(masks.ravel(), found_large_only.ravel()) > 0.99


def test_calibration_flags_at_most_the_target_share_of_normals():
    from spmamba.metrics import calibrate, image_metrics

    scores = np.array([0.1, 0.2, 0.3, 0.35, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99])
    labels = np.array([0, 0, 0, 1, 0, 1, 1, 1, 1, 1])
    cal = calibrate(scores, labels, target_fpr=0.25)
    assert cal["threshold"] == pytest.approx(0.45)  # one of the four normals (0.6) may be flagged
    assert cal["val_false_positive_rate"] == 0.25
    assert cal["normal_scores"] == [0.1, 0.2, 0.3, 0.6] and cal["n_abnormal"] == 6
    m = image_metrics(scores, labels, cal["threshold"])
    assert m["accuracy"] == 0.8 and m["oracle_accuracy"] == 0.9 and m["auroc"] == pytest.approx(23 / 24)
    strict = calibrate(scores, labels)  # 5% of 4 normals: none may be flagged
    assert 0.6 < strict["threshold"] < 0.61 and strict["val_false_positive_rate"] == 0.0
    lo, hi = strict["val_false_positive_rate_ci95"]
    assert lo == hi == 0.0


def test_fpr_interval_covers_the_rate():
    from spmamba.metrics import calibrate

    rng = np.random.default_rng(5)
    scores, labels = rng.random(300), (np.arange(300) >= 200).astype(int)
    cal = calibrate(scores, labels, target_fpr=0.1)
    assert cal["val_false_positive_rate"] == pytest.approx(0.1)
    lo, hi = cal["val_false_positive_rate_ci95"]
    assert 0.04 < lo < 0.1 < hi < 0.16  # binomial sd for 200 normals is 2.1 points


def test_flag_rates_count_each_class_at_the_threshold():
    """The shares a threshold flags are plain counts per class, each with an interval around it; a split with
    one class gives that class's rate alone."""
    from spmamba.metrics import flag_rates

    rng = np.random.default_rng(8)
    scores, labels = rng.random(120), rng.integers(0, 2, 120)
    out = flag_rates(scores, labels, 0.7, "shift")
    assert out["shift_false_positive_rate"] == (scores[labels == 0] >= 0.7).sum() / (labels == 0).sum()
    assert out["shift_true_positive_rate"] == (scores[labels == 1] >= 0.7).sum() / (labels == 1).sum()
    for key in ("shift_false_positive_rate", "shift_true_positive_rate"):
        lo, hi = out[f"{key}_ci95"]
        assert lo < out[key] < hi
    assert set(flag_rates(scores[labels == 0], labels[labels == 0], 0.7, "val")) == {
        "val_false_positive_rate",
        "val_false_positive_rate_ci95",
    }


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_resample_at_once_equals_sklearn_on_each_resample(seed):
    """The weighted fast path gives, resample by resample, what sklearn gives on the resampled items (scores
    with ties included), so every interval is the straightforward one, computed in one pass."""
    from sklearn.metrics import accuracy_score, average_precision_score, f1_score

    from spmamba.metrics import (
        bootstrap_counts,
        bootstrap_interval,
        image_metrics_with_intervals,
        weighted_ap,
        weighted_auroc,
    )

    rng = np.random.default_rng(seed)
    n = 80
    labels = (rng.random(n) < 0.4).astype(int)
    scores = np.round(rng.random(n) + 0.4 * labels, 1)  # rounded: many ties, across the classes too
    counts = bootstrap_counts(n, labels, rounds=50)
    slow = [  # the straightforward way: index the resample, call sklearn
        (roc_auc_score(labels[i], scores[i]), average_precision_score(labels[i], scores[i]))
        for i in (np.repeat(np.arange(n), c.astype(int)) for c in counts)
    ]
    np.testing.assert_allclose(weighted_auroc(scores, labels, counts), [a for a, _ in slow], rtol=1e-12)
    np.testing.assert_allclose(weighted_ap(scores, labels, counts), [p for _, p in slow], rtol=1e-12)
    if seed:
        return  # the intervals below are checked once: the straightforward way costs 8,000 sklearn calls
    fast = image_metrics_with_intervals(scores, labels, threshold=0.7)
    for key, fn in (
        ("auroc", lambda i: roc_auc_score(labels[i], scores[i])),
        ("ap", lambda i: average_precision_score(labels[i], scores[i])),
        ("accuracy", lambda i: accuracy_score(labels[i], scores[i] >= 0.7)),
        ("f1", lambda i: f1_score(labels[i], scores[i] >= 0.7)),
    ):
        np.testing.assert_allclose(fast[f"{key}_ci95"], bootstrap_interval(fn, n, labels), rtol=1e-12)


def test_oracle_threshold_matches_one_accuracy_pass_per_threshold():
    from sklearn.metrics import accuracy_score

    from spmamba.metrics import oracle_threshold

    rng = np.random.default_rng(3)
    for n in (2, 7, 50, 300):
        scores = rng.integers(0, 12, n) / 4.0  # many ties, as real score grids have
        labels = rng.integers(0, 2, n)
        labels[:2] = (0, 1)
        reference = max((accuracy_score(labels, scores >= t), t) for t in np.unique(scores))
        assert oracle_threshold(scores, labels) == (float(reference[0]), float(reference[1]))


def test_pixel_auroc_interval_brackets_sklearns_value_and_narrows_with_images():
    from spmamba.metrics import pixel_auroc_interval

    rng = np.random.default_rng(0)
    widths = []
    for n in (20, 200):
        masks = np.zeros((n, 16, 16), bool)
        masks[: n // 2, 4:9, 4:9] = True
        maps = rng.random(masks.shape) + 0.6 * masks
        lo, hi = pixel_auroc_interval(maps, masks, rounds=300)
        assert lo < roc_auc_score(masks.ravel(), maps.ravel()) < hi
        widths.append(hi - lo)
    assert widths[1] < widths[0] / 2


def test_image_metrics_with_intervals_bracket_each_figure():
    from spmamba.metrics import image_metrics_with_intervals

    rng = np.random.default_rng(0)
    labels = np.arange(200) % 2
    scores = rng.standard_normal(200) + 1.5 * labels
    m = image_metrics_with_intervals(scores, labels, threshold=0.75)
    for k in ("auroc", "ap", "accuracy", "f1"):
        assert m[f"{k}_ci95"][0] < m[k] < m[f"{k}_ci95"][1], k
