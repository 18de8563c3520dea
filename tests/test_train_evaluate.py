"""The whole path on a tiny synthetic dataset: train, resume, calibrate, evaluate (seconds, no real data)."""
import json
import re

import numpy as np
import pytest
from PIL import Image

from spmamba.checkpoint import read_metadata
from spmamba.cli import main
from spmamba.data import discover
from spmamba.train import TrainOptions, train


def _write(path, rng, abnormal):
    yy, xx = np.mgrid[:64, :64]
    img = 0.4 + 0.2 * np.sin(xx / 9 + rng.random() * 6) * np.cos(yy / 11) + 0.03 * rng.standard_normal((64, 64))
    mask = np.zeros((64, 64), bool)
    if abnormal:
        cy, cx = rng.integers(16, 48, 2)
        mask = (yy - cy) ** 2 + (xx - cx) ** 2 < 64
        img[mask] = 1.0
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8)).save(path)
    return mask


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    rng = np.random.default_rng(0)
    for split, n_normal, n_abnormal in (("train", 16, 0), ("val", 4, 4), ("test", 4, 4)):
        for i in range(n_normal):
            _write(root / split / "NORMAL" / f"n{i}.png", rng, False)
        for i in range(n_abnormal):
            _write(root / split / "PNEUMONIA" / f"p{i}.png", rng, True)
    return root


def test_discover_layout(dataset):
    s = discover(dataset)
    assert (len(s.train), len(s.val), len(s.test)) == (16, 8, 8)
    assert {x.label for x in s.train} == {0} and sorted(x.label for x in s.val) == [0] * 4 + [1] * 4


def test_train_resume_and_evaluate(dataset, tmp_path, capsys):
    out = tmp_path / "synthetic-lite0.safetensors"
    opts = TrainOptions(data=str(dataset), out=str(out), epochs=2, batch_size=8, modalities=("cr", "DX"))
    train(opts)
    first = read_metadata(out)["training"]["history"]
    assert [h["encoder_cached"] for h in first] == [False, True]  # epoch 2 reads the feature cache
    opts.epochs, opts.resume = 3, True
    metrics = train(opts)
    meta = read_metadata(out)
    history = meta["training"]["history"]
    assert [h["epoch"] for h in history] == [1, 2, 3]  # resumed, not restarted
    assert history[:2] == first
    cal = meta["calibration"]
    assert cal["n_normal"] == 4 and cal["n_abnormal"] == 4 and len(cal["normal_scores"]) == 4
    assert 0 <= metrics["validation"]["auroc"] <= 1
    assert meta["summary"].startswith("synthetic")
    assert meta["training"]["modalities"] == ["CR", "DX"]  # the demo preselects by these

    roc, js = tmp_path / "roc.png", tmp_path / "eval.json"
    assert main(["evaluate", str(out), str(dataset / "test"), "--roc", str(roc), "--json", str(js)]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    m = re.fullmatch(r"AUROC=([\d.]+) ACC=([\d.]+) F1=([\d.]+)", last)
    assert m, last
    result = json.loads(js.read_text())
    assert float(m.group(1)) == pytest.approx(100 * result["image"]["auroc"], abs=0.05)
    assert result["image"]["threshold"] == pytest.approx(cal["threshold"])
    assert set(result["ablation_auroc"]) == {"max only", "+ prototype", "+ contrast", "+ concentration", "all four"}
    assert roc.stat().st_size > 1000
    # the dataset root works too (its test/ folder is used)
    assert main(["evaluate", str(out), str(dataset)]) == 0


@pytest.mark.parametrize("layout", ["mvtec", "bmad"])
def test_mask_layouts(tmp_path, layout):
    from spmamba.data import labelled_folder

    rng = np.random.default_rng(3)
    test = tmp_path / "brain" / "test"
    for i in range(3):
        if layout == "mvtec":  # category/test/<class>/x.png + category/ground_truth/<class>/x_mask.png
            _write(test / "good" / f"g{i}.png", rng, False)
            mask = _write(test / "Ungood" / f"u{i}.png", rng, True)
            gt = test.parent / "ground_truth" / "Ungood" / f"u{i}_mask.png"
        else:  # BMAD: test/<class>/img/x.png + test/<class>/label/x.png
            _write(test / "good" / "img" / f"g{i}.png", rng, False)
            mask = _write(test / "Ungood" / "img" / f"u{i}.png", rng, True)
            gt = test / "Ungood" / "label" / f"u{i}.png"
        gt.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(mask.astype(np.uint8) * 255).save(gt)
    samples = labelled_folder(test)
    assert [s.label for s in samples] == [0, 0, 0, 1, 1, 1]
    assert all(s.mask is None for s in samples[:3])
    assert all(s.mask is not None and s.mask.stem.startswith(s.path.stem) for s in samples[3:])


def test_csv_list(tmp_path):
    from spmamba.data import csv_list

    rng = np.random.default_rng(4)
    _write(tmp_path / "imgs" / "a.png", rng, False)
    _write(tmp_path / "imgs" / "b.png", rng, True)
    (tmp_path / "list.csv").write_text("path,label\nimgs/a.png,0\nimgs/b.png,1\n")
    listed = csv_list(tmp_path / "list.csv")
    assert [(s.path.name, s.label) for s in listed] == [("a.png", 0), ("b.png", 1)]
    assert all(s.path.is_file() for s in listed)


def test_pixel_metrics_follow_the_mask():
    from spmamba.metrics import pixel_metrics

    mask = np.zeros((2, 8, 8), bool)
    mask[1, 2:4, 2:4] = True
    perfect = mask.astype(float)
    assert pixel_metrics(perfect, mask) == {"pixel_auroc": 1.0, "pixel_ap": 1.0, "pixel_f1_max": 1.0}
    assert pixel_metrics(1 - perfect, mask)["pixel_auroc"] == 0.0


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
