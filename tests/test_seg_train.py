"""Segmentation metrics against brute force; the split; train -> checkpoint -> evaluate/predict end to end."""

import json
import re

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.spatial.distance import cdist

from spmamba.cli import main
from spmamba.seg.data import split_pairs
from spmamba.seg.metrics import dice, hd95, iou
from spmamba.seg.train import dice_per_image


def _hd95_brute(a, b):
    """Every surface pixel's distance to the nearest surface pixel of the other mask, both ways."""
    from scipy import ndimage

    def surface(m):
        return np.argwhere(m & ~ndimage.binary_erosion(m, border_value=0))

    sa, sb = surface(a), surface(b)
    d = cdist(sa, sb)
    return np.percentile(np.concatenate([d.min(1), d.min(0)]), 95)


@pytest.mark.parametrize("seed", range(4))
def test_hd95_matches_brute_force_on_random_shapes(seed):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:40, :50]
    a = ((yy - rng.integers(10, 30)) ** 2 + (xx - rng.integers(10, 40)) ** 2) < rng.integers(20, 120)
    b = np.zeros_like(a)
    b[rng.integers(0, 20) : rng.integers(22, 40), rng.integers(0, 25) : rng.integers(27, 50)] = True
    assert hd95(a, b) == pytest.approx(_hd95_brute(a, b))
    assert hd95(a, a) == 0.0


def test_dice_iou_and_the_empty_cases():
    a = np.zeros((10, 10), bool)
    b = a.copy()
    a[2:6, 2:6], b[4:8, 2:6] = True, True  # 16 px each, 8 shared
    assert dice(a, b) == pytest.approx(0.5) and iou(a, b) == pytest.approx(8 / 24)
    empty = np.zeros_like(a)
    assert dice(empty, empty) == 1.0 and hd95(empty, empty) == 0.0
    assert dice(empty, a) == 0.0 and hd95(empty, a) == pytest.approx(np.hypot(10, 10))  # a missed lesion


def test_batched_dice_per_image_matches_the_metrics_dice_on_random_maps():
    """Training's per-epoch (and bench/seg_fit.py's) Dice, batched in torch, against ``metrics.dice`` image by
    image: logits above 0 are the prediction; an image with no lesion and no prediction scores 1."""
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(7, 1, 12, 10, generator=gen)
    masks = (torch.rand(7, 1, 12, 10, generator=gen) > 0.6).float()
    logits[3], masks[3] = -1.0, 0.0  # both empty
    masks[5] = 0.0  # a prediction where there is no lesion
    net = torch.nn.Identity()
    got = dice_per_image(net, logits, masks, batch=3)
    want = [dice(logits[i, 0].numpy() > 0, masks[i, 0].numpy() > 0.5) for i in range(7)]
    assert got == pytest.approx(want) and got[3] == 1.0 and got[5] == 0.0


def _write_pairs(root, n, rng, prefix="case"):
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[:48, :40]
    for i in range(n):
        mask = (yy - rng.integers(14, 34)) ** 2 + (xx - rng.integers(12, 28)) ** 2 < rng.integers(30, 90)
        img = 0.3 + 0.1 * rng.standard_normal((48, 40)) + 0.5 * mask
        Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8)).save(root / "images" / f"{prefix}_{i}.png")
        Image.fromarray(mask.astype(np.uint8) * 255).save(root / "masks" / f"{prefix}_{i}.png")


def test_split_keeps_patients_together_and_never_validates_on_a_training_image(tmp_path):
    rng = np.random.default_rng(0)
    _write_pairs(tmp_path, 6, rng, "benign")
    _write_pairs(tmp_path, 4, rng, "malignant")
    (tmp_path / "images" / "malignant_9.png").write_bytes((tmp_path / "images" / "benign_0.png").read_bytes())
    (tmp_path / "masks" / "malignant_9.png").write_bytes((tmp_path / "masks" / "benign_0.png").read_bytes())
    split = split_pairs(tmp_path, val_fraction=0.3)
    val = {p.name for p, _ in split.val}
    assert {n.split("_")[0] for n in val} == {"benign", "malignant"}  # stratified by class
    assert not ({"benign_0.png", "malignant_9.png"} & val and {"benign_0.png", "malignant_9.png"} - val)
    tcga = tmp_path / "tcga"
    for patient in ("TCGA_AA_0001", "TCGA_AA_0002", "TCGA_AA_0003"):
        _write_pairs(tcga, 3, rng, f"{patient}_2000")
    by_patient = split_pairs(tcga, val_fraction=0.3)
    val_patients = {p.name[:12] for p, _ in by_patient.val}
    assert len(val_patients) == 1 and not val_patients & {p.name[:12] for p, _ in by_patient.train}


@pytest.mark.parametrize("model", ["mamba-mis", "unet"])
def test_train_evaluate_predict_end_to_end(tmp_path, capsys, model):
    rng = np.random.default_rng(1)
    _write_pairs(tmp_path / "data", 10, rng)
    out = tmp_path / "runs" / "seg.safetensors"  # a folder not made yet: training makes it before epoch 1
    args = ["seg", "train", str(tmp_path / "data"), "--out", str(out), "--model", model, "--image-size", "32"]
    assert main([*args, "--epochs", "2", "--batch-size", "4", "--channels", "4"]) == 0
    meta = json.loads(out.with_suffix(".metrics.json").read_text())
    assert meta["training"]["best_epoch"] in (1, 2) and len(meta["training"]["history"]) == 2
    assert meta["validation"]["n"] == len(meta["training"]["val_images"]) == 2
    capsys.readouterr()
    assert main(["seg", "evaluate", str(out), str(tmp_path / "data")]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert re.fullmatch(r"DICE=\d\.\d{3} IOU=\d\.\d{3} HD95=\d+\.\d", last)
    assert (
        main(
            [
                "seg",
                "predict",
                str(out),
                str(tmp_path / "data/images/case_0.png"),
                "--json",
                "--out",
                str(tmp_path / "m"),
            ]
        )
        == 0
    )
    result = json.loads(capsys.readouterr().out)[0]
    (mask,) = result["masks"]  # a PNG input: the PNG alone, in a folder named by a digest, never by the input
    from spmamba.export import mask_folder

    source = str(tmp_path / "data/images/case_0.png")
    assert Image.open(mask).size == (40, 48) and mask == str(mask_folder(tmp_path / "m", source) / "lesion-mask.png")
    # resuming a finished run repeats only the final evaluation
    assert main([*args, "--epochs", "2", "--batch-size", "4", "--channels", "4", "--resume"]) == 0
    # the model card states the checkpoint's own figures, and its command line re-parses to the same run
    import shlex

    import yaml

    from spmamba.card import GENERATED_END
    from spmamba.cli import build_parser

    card = tmp_path / "card.md"
    assert main(["card", str(out), "--out", str(card)]) == 0
    text = card.read_text()
    header = yaml.safe_load(text.split("---")[1])
    assert header["pipeline_tag"] == "image-segmentation"
    assert header["model-index"][0]["results"][0]["metrics"][0]["value"] == round(meta["validation"]["dice"], 3)
    assert text.rstrip().endswith(GENERATED_END)
    line = next(row for row in text.splitlines() if row.startswith("| Command |"))
    argv = shlex.split(line.split("`")[1].replace("$SPMAMBA_DATA", str(tmp_path)))
    parsed = vars(build_parser().parse_args(argv[1:]))
    for key in ("model", "image_size", "channels", "epochs", "batch_size"):
        assert parsed[key] == meta["training"]["options"][key], key
    assert parsed["data"] == str(tmp_path / "data")
    # the machine is on record (the numba kernels round by CPU type), and the card names it
    from llvmlite import binding

    assert meta["training"]["cpu"] == binding.get_host_cpu_name()
    assert f"({meta['training']['cpu']}; torch " in next(r for r in text.splitlines() if r.startswith("| Wall time |"))


def test_train_state_restores_every_trainable_weight(tmp_path):
    """A resumed run must continue from the same network: the segmentation encoder is trained (unlike
    SP-Mamba's frozen one), so its weights belong in the train state; a state without them is refused."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from spmamba.seg.train import SegTrainOptions, build
    from spmamba.training import load_state, save_state

    def fresh(seed):
        torch.manual_seed(seed)
        model = build(SegTrainOptions(data="-", out="-", image_size=32, channels=4))
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        return model, opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=3)

    model, opt, sched = fresh(0)
    model(torch.rand(2, 3, 32, 32)).mean().backward()
    opt.step()
    sched.step()
    path = tmp_path / "run.train-state.safetensors"
    save_state(path, model, opt, sched, {"epoch": 1})
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # written aside and renamed into place
    other, other_opt, other_sched = fresh(1)
    assert load_state(path, other, other_opt, other_sched) == {"epoch": 1}
    for (name, a), b in zip(model.state_dict().items(), other.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert other_sched.last_epoch == 1

    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata()
    tensors = {k: v for k, v in load_file(str(path)).items() if not k.startswith("model.encoder.")}
    save_file(tensors, str(path), metadata=metadata)  # what the earlier code wrote
    with pytest.raises(ValueError, match="weights missing"):
        load_state(path, *fresh(2))


def test_summary_resamples_patients_when_file_names_carry_them():
    """Slices of one patient are alike: the interval must resample patients, and equal the image bootstrap
    when every image is its own group."""
    from spmamba.metrics import bootstrap_interval
    from spmamba.seg.train import summarise

    rng = np.random.default_rng(0)
    rows = []
    for p in range(6):
        level = rng.uniform(0.3, 0.95)
        rows += [
            {"image": f"TCGA_CS_{4940 + p}_19970205_{k}.png", "dice": level, "iou": level, "hd95": 1.0}
            for k in range(10)
        ]
    by_patient = summarise(rows)
    assert (by_patient["groups"], by_patient["resampled"]) == (6, "patients")
    per_patient = np.array([rows[10 * p]["dice"] for p in range(6)])
    assert by_patient["dice_ci95"] == pytest.approx(bootstrap_interval(lambda i: float(per_patient[i].mean()), 6))
    as_images = summarise([dict(r, image=f"img{i}.png") for i, r in enumerate(rows)])
    assert as_images["resampled"] == "images"
    width = lambda v: v["dice_ci95"][1] - v["dice_ci95"][0]  # noqa: E731
    assert width(as_images) < width(by_patient)  # 60 "independent" slices look more certain than 6 patients


def test_the_presets_conv_stem_is_the_default_and_older_patch_stem_checkpoints_say_so():
    from spmamba.card import command, reproducible, seg_network_name
    from spmamba.seg.train import SegTrainOptions, build

    def options(**kw):
        return SegTrainOptions(data="-", out="-", image_size=32, channels=4, **kw)

    assert build(options()).config.stem == "conv"
    patch = build(options(stem="patch", detail_branch=True)).config
    assert patch.stem == "patch" and patch.detail_branch
    cfg = {"bfss_directions": 4, "spectral_gate": True, "bridge": True}
    meta = {"model": "mamba-mis", "training": {"options": {"config": "cpu-tiny", "keep": "last"}}}
    assert seg_network_name({**meta, "config": {**cfg, "stem": "conv"}}) == "Mamba-MIS cpu-tiny"
    wider = {**meta, "config": {**cfg, "stem": "conv", "channels": 18}}  # the preset's width is 16
    assert seg_network_name(wider) == "Mamba-MIS cpu-tiny, C 18"
    older = {**meta, "config": {**cfg, "bfss_directions": 1}}  # written before the stem option: no "stem" key
    assert seg_network_name(older, recipe=False) == "Mamba-MIS cpu-tiny, patch stem, single raster scan"
    older["training"] = {"options": {"config": "cpu-tiny", "bfss_directions": 1}, "data_path_name": "ph2"}
    assert "--stem patch" in command(reproducible(older), "old.safetensors", "seg train", SegTrainOptions)


@pytest.mark.parametrize("keep", ["last", "best"])
def test_the_checkpoint_holds_the_epoch_keep_names_and_older_runs_say_best(tmp_path, capsys, keep):
    """The last epoch by default (fixed before training, so validation is not a pick), the best on request;
    runs from before the option kept the best, and their command says so."""
    from safetensors.torch import load_file

    from spmamba.card import command, reproducible, seg_network_name
    from spmamba.seg.checkpoint import load_seg_checkpoint
    from spmamba.seg.data import stored_kept_epoch
    from spmamba.seg.train import SegTrainOptions

    _write_pairs(tmp_path / "data", 10, np.random.default_rng(3))
    out = tmp_path / "seg.safetensors"
    args = ["seg", "train", str(tmp_path / "data"), "--out", str(out), "--image-size", "32", "--channels", "4"]
    assert main([*args, "--epochs", "3", "--batch-size", "4", "--keep", keep]) == 0
    model, meta = load_seg_checkpoint(out)
    t = meta["training"]
    assert t["kept_epoch"] == stored_kept_epoch(t) == (3 if keep == "last" else t["best_epoch"])
    last = load_file(str(out.with_name("seg.train-state.safetensors")))  # the weights after the last epoch
    weights = model.state_dict()
    same = all(torch.equal(last[f"model.{k}"], v) for k, v in weights.items())
    assert same == (keep == "last" or t["best_epoch"] == 3)
    assert out.with_name("seg.best-epoch.safetensors").exists() == (keep == "best")
    spelt = command(reproducible(meta), out.name, "seg train", SegTrainOptions)
    assert ("--keep best" in spelt) == (keep == "best") and "--epochs 3" in spelt
    at_default = {**meta, "training": {**t, "options": {**t["options"], "epochs": SegTrainOptions.epochs}}}
    assert f"--epochs {SegTrainOptions.epochs}" in command(
        reproducible(at_default), out.name, "seg train", SegTrainOptions
    )
    assert seg_network_name(meta).endswith(", best epoch kept") == (keep == "best")
    older = {**meta, "training": {**t, "options": {k: v for k, v in t["options"].items() if k != "keep"}}}
    assert "--keep best" in command(reproducible(older), out.name, "seg train", SegTrainOptions)
    del older["training"]["kept_epoch"]
    assert stored_kept_epoch(older["training"]) == t["best_epoch"]
    if keep == "last":  # its best epoch was never saved: resuming it to keep the best is refused, not faked
        assert main([*args, "--epochs", "3", "--batch-size", "4", "--keep", "best", "--resume"]) == 2
        assert "--keep last" in capsys.readouterr().err


def test_seg_train_refuses_a_detail_branch_on_the_conv_stem_with_a_message(tmp_path, capsys):
    _write_pairs(tmp_path / "data", 4, np.random.default_rng(2))
    args = ["seg", "train", str(tmp_path / "data"), "--out", str(tmp_path / "x.safetensors"), "--image-size", "32"]
    assert main([*args, "--epochs", "1", "--detail-branch"]) == 2
    assert "--stem patch" in capsys.readouterr().err
    assert not (tmp_path / "x.safetensors").exists()


def test_percentile_intensity_makes_a_segmenter_blind_to_the_images_overall_gain():
    """MR slices stored darker (one LGG patient) must look the same to a percentile-scaled network;
    a raw one sees them differently. Old configs, without the field, load as raw."""
    from spmamba.intensity import scale_intensity
    from spmamba.seg.checkpoint import build_model
    from spmamba.seg.inference import Segmenter

    rng = np.random.default_rng(3)
    pixels = rng.random((40, 48)).astype(np.float32) * 0.6
    dark = pixels * 0.25
    np.testing.assert_allclose(scale_intensity(dark, "percentile"), scale_intensity(pixels, "percentile"), atol=1e-6)
    assert scale_intensity(pixels, "percentile").max() == 1.0
    assert np.array_equal(scale_intensity(pixels, "raw"), pixels)
    assert not scale_intensity(np.zeros((4, 4)), "percentile").any()  # a blank image stays blank, no NaN
    with pytest.raises(ValueError, match="unknown intensity rule"):
        scale_intensity(pixels, "zscore")
    torch.manual_seed(0)
    for kind, cfg in (("unet", {"channels": 4}), ("mamba-mis", {"channels": 8, "stem": "conv"})):
        assert build_model(kind, {"image_size": 32, **cfg}).config.intensity == "raw"
        seg = Segmenter(build_model(kind, {"image_size": 32, "intensity": "percentile", **cfg}))
        np.testing.assert_allclose(seg.probabilities(dark), seg.probabilities(pixels), atol=1e-6)
        raw = Segmenter(build_model(kind, {"image_size": 32, **cfg}))
        assert np.abs(raw.probabilities(dark) - raw.probabilities(pixels)).max() > 1e-5  # untrained: small but real


def _train_tiny_unet(tmp_path, seed: int, *flags: str):
    """One epoch of a 4-channel U-Net at 32 px on six synthetic pairs, with ``flags``: (path, model, meta)."""
    from spmamba.seg.checkpoint import load_seg_checkpoint

    _write_pairs(tmp_path / "data", 6, np.random.default_rng(seed))
    out = tmp_path / "tiny.safetensors"
    args = ["seg", "train", str(tmp_path / "data"), "--out", str(out), "--model", "unet", "--image-size", "32"]
    assert main([*args, "--epochs", "1", "--channels", "4", *flags]) == 0
    return (out, *load_seg_checkpoint(out))


def test_seg_train_records_the_intensity_rule_in_the_checkpoint(tmp_path):
    out, model, meta = _train_tiny_unet(tmp_path, 4, "--intensity", "percentile")
    assert model.config.intensity == meta["config"]["intensity"] == "percentile"
    from spmamba.card import command, reproducible, seg_network_name
    from spmamba.seg.train import SegTrainOptions

    assert seg_network_name(meta) == "U-Net (C 4), percentile-scaled input"
    assert "--intensity percentile" in command(reproducible(meta), out.name, "seg train", SegTrainOptions)


@pytest.mark.parametrize("orientations", ["dihedral", "horizontal"])
def test_augment_keeps_image_and_mask_together_and_horizontal_never_turns_the_depth_axis(orientations):
    """Each augmented mask is one of the rule's orientations of its mask, and its image the same orientation
    of the image (up to the brightness/contrast jitter). ``horizontal`` only ever mirrors left-right, so an
    ultrasound image keeps skin at the top; ``dihedral`` reaches the other six orientations too."""
    from spmamba.seg.data import augment

    torch.manual_seed(0)
    masks = (torch.rand(48, 1, 12, 12) > 0.5).float()
    images = (0.2 + 0.6 * masks).expand(-1, 3, -1, -1)
    out_x, out_m = augment(images, masks, torch.Generator().manual_seed(1), orientations)
    seen = set()
    for m, ox, om in zip(masks, out_x, out_m, strict=True):
        turns = [(flip, k) for flip in (False, True) for k in range(4)]
        matches = [(f, k) for f, k in turns if torch.equal(om, (m.flip(-1) if f else m).rot90(k, (-2, -1)))]
        assert matches, "the mask is not an orientation of its input"
        seen.update(matches)
        r = np.corrcoef(ox[0].flatten().numpy(), om[0].flatten().numpy())[0, 1]
        assert r > 0.999  # the image went the same way as its mask
    if orientations == "horizontal":
        assert all(torch.equal(om, m) or torch.equal(om, m.flip(-1)) for m, om in zip(masks, out_m, strict=True))
    else:
        assert any(k % 2 for _, k in seen)  # quarter turns happen
    with pytest.raises(ValueError, match="unknown augmentation"):
        augment(images, masks, torch.Generator(), "rotate")


def test_augment_dihedral_draws_what_it_drew_before_the_option():
    """Runs from before ``--augment`` must reproduce: the default draws the same numbers in the same way as
    the code it replaced (written out here)."""
    from spmamba.seg.data import augment

    x, m = torch.rand(6, 3, 8, 8), (torch.rand(6, 1, 8, 8) > 0.5).float()
    gen = torch.Generator().manual_seed(5)
    expected_x, expected_m = [], []
    for xi, mi in zip(x, m, strict=True):
        r = torch.rand(5, generator=gen)
        if r[0] < 0.5:
            xi, mi = xi.flip(-1), mi.flip(-1)
        if r[1] < 0.5:
            xi, mi = xi.flip(-2), mi.flip(-2)
        xi, mi = xi.rot90(int(r[2] * 4), (-2, -1)), mi.rot90(int(r[2] * 4), (-2, -1))
        expected_x.append(((xi - 0.5) * (0.9 + 0.2 * r[3]) + 0.5 + 0.1 * (r[4] - 0.5)).clamp(0, 1))
        expected_m.append(mi)
    got_x, got_m = augment(x, m, torch.Generator().manual_seed(5))
    assert torch.equal(got_x, torch.stack(expected_x)) and torch.equal(got_m, torch.stack(expected_m))


def test_seg_train_records_the_orientation_rule_and_the_card_names_it(tmp_path):
    from spmamba.card import command, reproducible, seg_network_name
    from spmamba.seg.train import SegTrainOptions

    out, _, meta = _train_tiny_unet(tmp_path, 6, "--augment", "horizontal")
    assert meta["training"]["options"]["augment"] == "horizontal"
    assert seg_network_name(meta) == "U-Net (C 4), left-right flips only"
    assert "--augment horizontal" in command(reproducible(meta), out.name, "seg train", SegTrainOptions)
    older = {**meta, "training": {**meta["training"], "options": {"keep": "last"}}}  # before --augment: dihedral
    assert seg_network_name(older) == "U-Net (C 4)"
    slower = {**meta, "training": {**meta["training"], "options": {"lr": 1e-3, "keep": "last"}}}
    assert seg_network_name(slower) == "U-Net (C 4), lr 0.001"


def test_parse_config_gives_fields_a_stored_config_lacks_their_defaults():
    """Configs written before an option compare equal to today's spelling of the same network."""
    from spmamba.seg.checkpoint import CheckpointError, parse_config

    today = parse_config("mamba-mis", {"image_size": 64, "stem": "patch", "mlp_ratio": 0, "intensity": "raw"})
    assert parse_config("mamba-mis", {"image_size": 64}) == today
    assert parse_config("mamba-mis", {"image_size": 64, "mlp_ratio": 2}) != today
    with pytest.raises(CheckpointError, match="unknown segmentation model"):
        parse_config("segformer", {})
