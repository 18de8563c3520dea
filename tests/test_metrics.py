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
