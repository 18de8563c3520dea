"""Checks on the real chest X-rays in ../shared/data and on the shipped checkpoint (skipped when absent)."""

import numpy as np
import pytest

from spmamba.checkpoint import load_checkpoint, read_metadata
from spmamba.data import data_root, discover, patient_id, subsample
from spmamba.inference import maps_for_samples
from spmamba.metrics import image_metrics
from spmamba.scoring import ScoreWeights, rescore
from tests.conftest import SHIPPED, needs_checkpoint

ROOT = data_root()
ZHANGLAB = ROOT / "zhanglab" if ROOT else None
need_data = pytest.mark.skipif(
    ZHANGLAB is None or not ZHANGLAB.is_dir(),
    reason="real data not found: set SPMAMBA_DATA or provide ../shared/data/zhanglab",
)
need_weights = needs_checkpoint


@need_data
def test_zhanglab_layout_counts_and_patient_disjoint_validation():
    s = discover(ZHANGLAB)
    # The shift split: the lowest 15% of patient numbers of each series (normals of train/ and val/, pneumonia
    # of val/ and extra/), as the official test normals predate the pool.
    shift = [x.label for x in s.shift_val]
    assert shift.count(0) == 186 and shift.count(1) == 839 and "IM-241" in s.shift_rule
    # Of what stays, 27 training radiographs belong to patients with validation images: they move to validation.
    assert s.moved_to_val == 27 and len(s.train) == 1249 - 27 - 173 and {x.label for x in s.train} == {0}
    labels = [x.label for x in s.val]
    assert labels.count(0) == 106 and labels.count(1) == 314
    groups = [{patient_id(x.path) for x in part} for part in (s.train, s.val, s.shift_val)]
    assert None not in groups[0] and not (groups[0] & groups[1] or groups[0] & groups[2] or groups[1] & groups[2])
    assert not s.test  # the official test split is kept outside the repository


@need_weights
def test_shipped_checkpoint_is_a_complete_model_card():
    meta = read_metadata(SHIPPED)
    assert SHIPPED.stat().st_size < 50e6
    assert meta["model_config"]["scan_order"] == "circular_hilbert" and meta["model_config"]["num_directions"] == 8
    cal = meta["calibration"]
    assert cal["n_normal"] == 106 and cal["n_abnormal"] == 314 and np.isfinite(cal["threshold"])
    assert cal["val_false_positive_rate"] <= 0.05 and len(cal["val_false_positive_rate_ci95"]) == 2
    assert meta["training"]["train_images"] == 1049 and meta["training"]["moved_to_val_by_patient"] == 27
    # trained with the shift split held out: its figures and the threshold's rates there are in the card
    assert (meta["training"]["shift_normal"], meta["training"]["shift_abnormal"]) == (186, 839)
    assert meta["metrics"]["weight_selection"]["split"] == "shift" and "shift_false_positive_rate" in cal
    assert meta["training"]["options"]["intensity"] == "clahe" and meta["training"]["options"]["keep"] == "last"
    assert meta["metrics"]["weight_selection"]["chosen"] in ("paper", "reference", "max-only")
    assert 0.5 < meta["metrics"]["validation"]["auroc"] <= 1


@need_data
@need_weights
def test_shipped_checkpoint_separates_real_normal_and_pneumonia():
    model, meta = load_checkpoint(SHIPPED)  # read directly, not through the Predictor, as an independent path
    val = discover(ZHANGLAB).val
    normal = subsample([s for s in val if s.label == 0], 24, seed=1)
    abnormal = subsample([s for s in val if s.label == 1], 24, seed=1)
    samples = normal + abnormal
    maps = maps_for_samples(model, samples, batch_size=16)
    scores = rescore(maps, ScoreWeights.from_dict(meta["score_weights"])).total.numpy()
    auroc = image_metrics(scores, np.array([s.label for s in samples]))["auroc"]
    assert auroc > 0.6, auroc
