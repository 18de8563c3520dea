"""Datasets: the ZhangLab/Kermany folder layout, the MVTec/BMAD layout, and CSV lists.

A sample is (path, label, mask path or None) with label 0 = normal, 1 = abnormal.
Images are loaded through :func:`spmamba.imaging.load_image` as grey, resized to
the model's input, and given to the encoder as [0, 1] tensors (the encoder
applies its own normalisation and expands grey to 3 channels).
"""

from __future__ import annotations

import csv
import os
import random
import re
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from .imaging import image_suffix, load_image
from .intensity import scale_intensity

NORMAL_NAMES = ("NORMAL", "good")  # the normal class folder; every other class folder is abnormal


class Sample(NamedTuple):
    path: Path
    label: int
    mask: Path | None = None


def data_root(path: str | os.PathLike | None = None) -> Path | None:
    """``path``, else ``$SPMAMBA_DATA``, else ``../shared/data`` when it exists."""
    for cand in (path, os.environ.get("SPMAMBA_DATA"), Path(__file__).resolve().parents[2] / "shared" / "data"):
        if cand and Path(cand).is_dir():
            return Path(cand)
    return None


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if image_suffix(p.name)) if folder.is_dir() else []


def _find(folder: Path, names) -> Path | None:
    return next((folder / n for n in names if (folder / n).is_dir()), None)


def _class_samples(sub: Path, label: int, gt_roots: list[Path]) -> list[Sample]:
    """Images of one class folder with their masks: BMAD's ``img/`` + ``label/`` or MVTec's ``ground_truth/``."""
    if (sub / "img").is_dir():
        mask_dirs, images = [sub / "label"], _images(sub / "img")
    else:
        mask_dirs, images = [g / sub.name for g in gt_roots], _images(sub)
    return [Sample(p, label, _find_mask(p, mask_dirs) if label else None) for p in images]


def _find_mask(image: Path, mask_dirs: list[Path]) -> Path | None:
    """The mask of ``image``: the same name, ``<stem>_mask.png`` or ``<stem>.png`` in one of ``mask_dirs``."""
    cands = [d / n for d in mask_dirs for n in (image.name, image.stem + "_mask.png", image.stem + ".png")]
    return next((m for m in cands if m.is_file()), None)


def labelled_folder(folder: str | os.PathLike) -> list[Sample]:
    """A folder holding a normal sub-folder (NORMAL/ or good/) and/or abnormal ones (PNEUMONIA/, Ungood/...).

    Masks of abnormal images come from BMAD's ``<class>/label/`` or MVTec's ``ground_truth/<class>/``
    (beside the folder or inside it).
    """
    folder = Path(folder)
    gt_roots = [folder / "ground_truth", folder.parent / "ground_truth"]
    normal = _find(folder, NORMAL_NAMES)
    samples = _class_samples(normal, 0, gt_roots) if normal else []
    for sub in sorted(d for d in folder.iterdir() if d.is_dir() and d != normal and d.name != "ground_truth"):
        samples += _class_samples(sub, 1, gt_roots)
    if not samples:
        raise FileNotFoundError(f"{folder} holds no images in NORMAL/, good/ or abnormal class sub-folders")
    return samples


def csv_list(path: str | os.PathLike) -> list[Sample]:
    """CSV with columns ``path,label`` (and optionally ``mask``); relative paths are from the CSV's folder."""
    path = Path(path)
    out = []
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            p = (path.parent / row["path"]).resolve()
            m = row.get("mask")
            out.append(Sample(p, int(row["label"]), (path.parent / m).resolve() if m else None))
    return out


def segmentation_pairs(folder: str | os.PathLike) -> list[tuple[Path, Path | None]]:
    """(image, mask or None) for a segmentation folder: ``images/`` and ``masks/`` with the same file names
    (a mask may also be named ``<stem>_mask.png`` or ``<stem>.png``)."""
    folder = Path(folder)
    if not (folder / "images").is_dir():
        raise FileNotFoundError(f"{folder} has no images/ folder (expected images/ and masks/ with the same names)")
    return [(p, _find_mask(p, [folder / "masks"])) for p in _images(folder / "images")]


class Splits(NamedTuple):
    train: list[Sample]  # normal only
    val: list[Sample]  # in-pool validation: normal + abnormal patients drawn from the training pool
    test: list[Sample]  # may be empty: the official test split is kept elsewhere
    moved_to_val: int = 0  # training images moved to validation because their patient is there
    shift_val: list[Sample] = []  # another acquisition group (:func:`acquisition_group`); choices are made here
    shift_rule: str = ""  # which group that is, in words


# File-name patient ids: ZhangLab/Kermany (IM-0115-0001, NORMAL2-IM-1234-0001, person12_virus_34) and
# TCGA slices (TCGA_CS_4941_19960909_12).
_PATIENT_PATTERNS = (re.compile(r"^(NORMAL2-IM-\d+|IM-\d+|person\d+)[-_]"), re.compile(r"^(TCGA_[^_]+_[^_]+)_"))


def patient_id(path: str | os.PathLike) -> str | None:
    """The patient a file belongs to when its name carries one, else None."""
    name = Path(path).name
    for pattern in _PATIENT_PATTERNS:
        m = pattern.match(name)
        if m:
            return m.group(1)
    return None


def patient_disjoint(train: list[Sample], val: list[Sample]) -> tuple[list[Sample], list[Sample], int]:
    """Move every training image of a patient who also has validation images into validation, so that
    validation measures unseen patients (and gains normals for calibration)."""
    val_patients = {patient_id(s.path) for s in val} - {None}
    moved = [s for s in train if patient_id(s.path) in val_patients]
    kept = [s for s in train if patient_id(s.path) not in val_patients]
    return kept, moved + val, len(moved)


# The held-out acquisition group. ZhangLab's official test normals carry patient numbers below every number of
# its training pool (an earlier acquisition period), so the pool's lowest-numbered patients of each series
# stand in for them; TCGA slices are held out by contributing site.
SHIFT_QUANTILE = 0.15
TCGA_SHIFT_SITE = "HT"
_NUMBERED = re.compile(r"^(.*?)(\d+)$")


def acquisition_group(samples: list[Sample]) -> tuple[set[str], str]:
    """The patients of ``samples`` held out as another acquisition, and the rule in words. TCGA: every patient
    of site ``TCGA_SHIFT_SITE``. Numbered series (IM-, NORMAL2-IM-, person): in each series, the patients whose
    number is at or below the series' ``SHIFT_QUANTILE`` quantile of patient numbers. Empty where file names
    carry no patient ids."""
    patients = {patient_id(s.path) for s in samples} - {None}
    tcga = {p for p in patients if p.startswith("TCGA_")}
    if tcga:
        held = {p for p in tcga if p.split("_")[1] == TCGA_SHIFT_SITE}
        return held, f"every patient of TCGA site {TCGA_SHIFT_SITE} ({len(held)} patients)"
    series: dict[str, dict[str, int]] = {}
    for p in patients:
        m = _NUMBERED.match(p)
        if m:
            series.setdefault(m.group(1), {})[p] = int(m.group(2))
    held, parts = set(), []
    for prefix, numbers in sorted(series.items()):
        cut = float(np.quantile(sorted(numbers.values()), SHIFT_QUANTILE))
        held |= {p for p, n in numbers.items() if n <= cut}
        parts.append(f"{prefix}{int(cut)}")
    rule = f"lowest {100 * SHIFT_QUANTILE:g}% of patient numbers in each series (up to {', '.join(parts)})"
    return held, (rule if held else "")


def discover(root: str | os.PathLike, val_fraction: float = 0.1, seed: int = 0) -> Splits:
    """Splits of a dataset root in the ZhangLab (train/NORMAL, val/, test/) or MVTec/BMAD (train/good, test/)
    layout. Without a val/ folder, a seeded ``val_fraction`` of the training normals is held out and the
    abnormal validation images come from ``extra/``, if any. Where file names carry patient ids, training
    images of validation patients move to validation (:func:`patient_disjoint`), and another acquisition
    group (:func:`acquisition_group`: normals of the pool's training and validation folders, abnormal images
    of its validation and ``extra/`` folders) leaves both for ``shift_val``."""
    root = Path(root)
    train_dir = _find(root / "train", NORMAL_NAMES)
    if train_dir is None:
        raise FileNotFoundError(f"{root} has no train/NORMAL or train/good folder")
    train = [Sample(p, 0) for p in _images(train_dir / "img" if (train_dir / "img").is_dir() else train_dir)]
    val = labelled_folder(root / "val") if (root / "val").is_dir() else []
    if not any(s.label == 0 for s in val):
        rng = random.Random(seed)
        held = set(rng.sample(range(len(train)), max(1, int(len(train) * val_fraction))))
        val = [s for i, s in enumerate(train) if i in held] + val
        train = [s for i, s in enumerate(train) if i not in held]
    extra = [s for s in labelled_folder(root / "extra") if s.label == 1] if (root / "extra").is_dir() else []
    if not any(s.label == 1 for s in val):
        val, extra = val + extra, []
    held, rule = acquisition_group(train + val + extra)
    shift = [s for s in train + val + extra if patient_id(s.path) in held]
    train = [s for s in train if patient_id(s.path) not in held]
    val = [s for s in val if patient_id(s.path) not in held]
    train, val, moved = patient_disjoint(train, val)
    test = labelled_folder(root / "test") if (root / "test").is_dir() else []
    return Splits(train, val, test, moved, shift, rule)


def model_input(grey: np.ndarray, size: int, intensity: str = "raw") -> torch.Tensor:
    """(1, size, size) tensor of an (H, W) grey image in [0, 1], under the checkpoint's intensity rule and
    resized with antialiasing: the one preparation shared by training, evaluation and the demo, so they feed
    the model the same pixels."""
    return resize_grey(scale_intensity(grey, intensity), (size, size))[None]


def resize_grey(grey: np.ndarray, shape: tuple[int, int]) -> torch.Tensor:
    """An (H, W) float32 image resized to ``shape`` by antialiased bilinear interpolation, reading the
    array in place (no float64 copy: an 80-megapixel upload costs its own size, not five times it)."""
    img = torch.from_numpy(np.ascontiguousarray(grey, dtype=np.float32))[None, None]
    return F.interpolate(img, size=shape, mode="bilinear", antialias=True, align_corners=False)[0, 0]


def load_tensor(path: Path, size: int, intensity: str = "raw") -> torch.Tensor:
    """(1, size, size) grey image in [0, 1] read from ``path``."""
    return model_input(load_image(path).grey, size, intensity)


def load_mask(path: Path | None, size: int) -> torch.Tensor | None:
    if path is None:
        return None
    m = torch.from_numpy(load_image(path).grey)[None, None]
    return F.interpolate(m, size=(size, size), mode="nearest")[0, 0] > 0.5


def load_masks(samples: list[Sample], size: int) -> torch.Tensor | None:
    """(N, size, size) bool masks of ``samples`` (all-false for images without one: normal images have
    no anomalous pixels), or None when no sample has a mask."""
    if all(s.mask is None for s in samples):
        return None
    empty = torch.zeros(size, size, dtype=torch.bool)
    return torch.stack([empty if s.mask is None else load_mask(s.mask, size) for s in samples])


def load_batch(samples: list[Sample], size: int, intensity: str = "raw") -> torch.Tensor:
    return torch.stack([load_tensor(s.path, size, intensity) for s in samples])


def subsample(samples: list[Sample], n: int | None, seed: int = 0) -> list[Sample]:
    """A seeded subset of at most n samples, in their original order."""
    if n is None or n >= len(samples):
        return samples
    rng = np.random.default_rng(seed)
    keep = set(rng.choice(len(samples), n, replace=False).tolist())
    return [s for i, s in enumerate(samples) if i in keep]
