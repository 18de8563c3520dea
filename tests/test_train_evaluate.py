"""The whole path on a tiny synthetic dataset: train, resume, calibrate, evaluate (seconds, no real data)."""

import csv
import dataclasses
import json
import re

import numpy as np
import pytest
import torch

from spmamba.checkpoint import read_metadata
from spmamba.cli import main
from spmamba.data import discover
from spmamba.model import SPMamba
from spmamba.train import TrainOptions, train
from tests.conftest import write_synthetic


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    rng = np.random.default_rng(0)
    for split, n_normal, n_abnormal in (("train", 16, 0), ("val", 4, 4), ("test", 4, 4)):
        for i in range(n_normal):
            write_synthetic(root / split / "NORMAL" / f"n{i}.png", rng, False)
        for i in range(n_abnormal):
            write_synthetic(root / split / "PNEUMONIA" / f"p{i}.png", rng, True)
    return root


def test_discover_layout(dataset):
    s = discover(dataset)
    assert (len(s.train), len(s.val), len(s.test)) == (16, 8, 8)
    assert {x.label for x in s.train} == {0} and sorted(x.label for x in s.val) == [0] * 4 + [1] * 4


def test_train_resume_and_evaluate(dataset, tmp_path, capsys):
    out = tmp_path / "runs" / "synthetic-lite0.safetensors"  # a folder not made yet: training makes it first
    assert (
        main(
            [
                "train",
                str(dataset),
                "--out",
                str(out),
                "--epochs",
                "2",
                "--batch-size",
                "8",
                "--config",
                "cpu-lite0",
                "--modality",
                "cr",
                "DX",
            ]
        )
        == 0
    )  # through the command line
    assert "validation AUROC=" in capsys.readouterr().out
    opts = TrainOptions(
        data=str(dataset), out=str(out), config="cpu-lite0", epochs=2, batch_size=8, modalities=("cr", "DX")
    )
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
    assert meta["training"]["modalities"] == ["CR", "DX"]  # recorded from --modality; the demo preselects by them

    roc, js, table = tmp_path / "roc.png", tmp_path / "eval.json", tmp_path / "eval.csv"
    args = ["evaluate", str(out), str(dataset / "test"), "--roc", str(roc), "--json", str(js), "--csv", str(table)]
    assert main(args) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    m = re.fullmatch(r"AUROC=([\d.]+) ACC=([\d.]+) F1=([\d.]+)", last)
    assert m, last
    result = json.loads(js.read_text())
    assert float(m.group(1)) == pytest.approx(100 * result["image"]["auroc"], abs=0.05)
    assert result["image"]["threshold"] == pytest.approx(cal["threshold"])
    assert set(result["ablation_auroc"]) == {"max only", "+ prototype", "+ contrast", "+ concentration", "all four"}
    assert roc.stat().st_size > 1000
    # every image's score and components, in the JSON and the CSV alike; the summary is computed from them
    per = result["per_image"]
    assert len(per) == result["n_normal"] + result["n_abnormal"] and {r["label"] for r in per} == {0, 1}
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score([r["label"] for r in per], [r["total"] for r in per]) == pytest.approx(
        result["image"]["auroc"]
    )
    with open(table) as fh:
        csv_rows = list(csv.DictReader(fh))
    assert [r["file"] for r in csv_rows] == [r["file"] for r in per]
    assert [float(r["total"]) for r in csv_rows] == pytest.approx([r["total"] for r in per])
    assert {"reconstruction", "prototype", "concentration", "contrast", "above_threshold"} <= set(csv_rows[0])
    # the dataset root works too (its test/ folder is used), and so does a CSV list of the same images
    assert main(["evaluate", str(out), str(dataset)]) == 0
    rows = [f"{p.relative_to(dataset)},{int(p.parent.name != 'NORMAL')}" for p in sorted(dataset.glob("test/*/*.png"))]
    (dataset / "test.csv").write_text("path,label\n" + "\n".join(rows) + "\n")
    capsys.readouterr()
    assert main(["evaluate", str(out), str(dataset / "test.csv")]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == last


def test_out_of_fold_calibration_scores_every_training_normal_once(dataset, tmp_path, capsys):
    """Two folds trained with the checkpoint's own recipe: each training normal gets one out-of-fold score,
    the threshold is their 5%-FPR quantile, the rates on validation come with intervals, and the checkpoint
    keeps its validation calibration beside the new one; the verdict names the population it is placed in."""
    from spmamba.inference import Predictor
    from spmamba.metrics import calibrate

    out = tmp_path / "m.safetensors"
    args = ["train", str(dataset), "--out", str(out), "--epochs", "1", "--batch-size", "8", "--config", "cpu-lite0"]
    assert main(args) == 0
    before = read_metadata(out)["calibration"]
    calibrate_args = ["calibrate", str(out), str(dataset), "--folds", "2", "--workdir", str(tmp_path / "oof")]
    assert main([*calibrate_args, "--fold", "1"]) == 0  # one fold alone (folds can train in parallel processes)
    assert [p.name for p in (tmp_path / "oof").glob("fold?.safetensors")] == ["fold1.safetensors"]
    assert read_metadata(out)["calibration"] == before  # training a fold does not calibrate
    assert main([*calibrate_args, "--fold", "2"]) == 2
    assert main(calibrate_args) == 0  # trains fold 0, reuses fold 1, calibrates
    meta = read_metadata(out)
    cal = meta["calibration"]
    scores = np.array(cal["out_of_fold"]["scores"])
    assert len(scores) == 16 and np.isfinite(scores).all() and cal["out_of_fold"]["folds"] == 2
    assert cal["threshold"] == pytest.approx(calibrate(scores, np.zeros(16, int))["threshold"])
    for key in ("val_false_positive_rate", "val_true_positive_rate"):
        lo, hi = cal[f"{key}_ci95"]
        assert 0 <= lo <= cal[key] <= hi <= 1
    assert meta["calibration_validation"] == before
    # accuracy and F1 on validation are those at the new threshold, wherever they are shown
    from spmamba.metrics import image_metrics

    val = discover(dataset).val
    model = Predictor(out)
    totals = model.score(model.maps_for_samples(val), model.weights).total.numpy()
    at = image_metrics(totals, np.array([s.label for s in val]), cal["threshold"])
    v = meta["metrics"]["validation"]
    assert v["threshold"] == cal["threshold"] and v["f1"] == pytest.approx(at["f1"])
    assert v["accuracy"] == pytest.approx(at["accuracy"]) and f"F1 {100 * at['f1']:.1f}" in meta["summary"]
    assert meta["metrics"]["validation_at_validation_threshold"]["threshold"] == before["threshold"]
    assert json.loads(out.with_suffix(".metrics.json").read_text())["summary"] == meta["summary"]
    text = Predictor(out).judge(float(scores.max()), {}).text
    assert "training normals, each scored by a model that did not train on it" in text and "weak" in text
    assert "out-of-fold" in capsys.readouterr().out


def test_a_shift_split_gets_its_own_false_alarm_rate_at_the_threshold(tmp_path):
    """With another acquisition group held out (numbered patients), the checkpoint's calibration states the
    share of that group's normals its threshold flags: the rate a verdict promises for new patients."""
    from spmamba.inference import Predictor

    rng = np.random.default_rng(1)
    for i in range(1, 21):
        write_synthetic(tmp_path / "train" / "NORMAL" / f"IM-{i:04d}-0001.png", rng, False)
    for i in range(1, 11):
        write_synthetic(tmp_path / "val" / "PNEUMONIA" / f"person{i}_virus_{i}.png", rng, True)
    for i in range(21, 25):
        write_synthetic(tmp_path / "val" / "NORMAL" / f"IM-{i:04d}-0001.png", rng, False)
    splits = discover(tmp_path)
    shift = splits.shift_val
    assert {s.label for s in shift} == {0, 1}
    out = tmp_path / "m.safetensors"
    args = ["train", str(tmp_path), "--out", str(out), "--epochs", "1", "--batch-size", "8", "--config", "cpu-lite0"]
    assert main(args) == 0
    cal = read_metadata(out)["calibration"]
    model = Predictor(out)
    totals = model.score(model.maps_for_samples(shift), model.weights).total.numpy()
    labels = np.array([s.label for s in shift])
    flagged = totals >= cal["threshold"]
    assert cal["shift_false_positive_rate"] == pytest.approx(flagged[labels == 0].mean())
    assert cal["shift_true_positive_rate"] == pytest.approx(flagged[labels == 1].mean())
    assert "from another acquisition group" in model.judge(float(totals.max()), {}).text


def test_ablation_switches_build_the_table_4_networks(dataset, tmp_path):
    """--scan-order, --num-directions and --prototype-banks 0 change the preset as the paper's ablations do;
    with the prototype module off the distance map is zero and the loss is reconstruction alone."""
    from spmamba.train import model_config

    base = model_config(TrainOptions(config="cpu-lite0"))
    raster = model_config(TrainOptions(config="cpu-lite0", scan_order="raster", num_directions=4))
    assert (raster.scan_order, raster.num_directions) == ("raster", 4)
    assert dataclasses.replace(raster, scan_order=base.scan_order, num_directions=base.num_directions) == base
    lite2 = model_config(TrainOptions(config="cpu-lite0", encoder="efficientnet_lite2"))
    assert dataclasses.replace(lite2, encoder=base.encoder) == base and lite2.encoder == "efficientnet_lite2"
    off = model_config(TrainOptions(config="cpu-lite0", prototype_banks=0))
    model = SPMamba(off, encoder_weights=None).eval()
    assert model.prototype is None and not any(k.startswith("prototype.") for k in model.state_dict())
    with torch.no_grad():
        out = model(torch.rand(2, 3, off.image_size, off.image_size))
    assert out.prototype_distance.shape[0] == 2 and not out.prototype_distance.any()
    mse = sum(torch.nn.functional.mse_loss(r, f) for f, r in zip(out.features, out.reconstructions, strict=True))
    assert torch.isclose(model.loss(out), off.loss_mse_weight * mse)
    # trained, saved, loaded and scored like any checkpoint; its card states the switches
    ckpt = tmp_path / "raster-noproto.safetensors"
    args = ["train", str(dataset), "--out", str(ckpt), "--epochs", "1", "--batch-size", "8", "--config", "cpu-lite0"]
    assert main([*args, "--scan-order", "raster", "--num-directions", "4", "--prototype-banks", "0"]) == 0
    from spmamba.card import render_card
    from spmamba.inference import Predictor

    predictor = Predictor(ckpt)
    assert predictor.model.prototype is None and predictor.model.config.scan_order == "raster"
    scores = predictor.score(predictor.maps([np.random.default_rng(0).random((64, 64)).astype(np.float32)]))
    assert np.isfinite(float(scores.total[0])) and float(scores.prototype[0]) == 0
    card = render_card(ckpt)
    assert "raster scan in 4 directions, no prototype module" in card
    assert "--scan-order raster --num-directions 4 --prototype-banks 0" in card  # the command retrains it
