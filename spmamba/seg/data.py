"""Segmentation data: image/mask pairs, a group-aware validation split, model inputs and augmentation."""

from __future__ import annotations

import csv
import hashlib
import math
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..data import patient_id, segmentation_pairs
from ..imaging import ImageLoadError, load_image
from ..intensity import scale_intensity

Pair = tuple[Path, Path]


@dataclass
class SegSplit:
    train: list[Pair]
    val: list[Pair]
    rule: str


def _strata(pairs: list[Pair], root: Path) -> dict[Path, str]:
    """Class of each image for a stratified split: ``labels.csv`` (stem, diagnosis) when present (PH2), else
    the file-name prefix before ``_`` when it is a word (BUSI's benign_/malignant_), else one stratum."""
    labels = {}
    if (root / "labels.csv").is_file():
        with open(root / "labels.csv", newline="") as fh:
            labels = {row["stem"]: row.get("clinical_diagnosis", "") for row in csv.DictReader(fh)}
    out = {}
    for img, _ in pairs:
        prefix = img.stem.split("_")[0]
        out[img] = labels.get(img.stem) or (prefix if prefix.isalpha() and patient_id(img) is None else "all")
    return out


def _digest(path: Path) -> str:
    pixels = load_image(path).pixels
    return hashlib.sha1(str(pixels.shape).encode() + pixels.tobytes()).hexdigest()


def split_pairs(root: str | Path, val_fraction: float = 0.2, seed: int = 0) -> SegSplit:
    """A seeded validation split of whole groups: a patient's slices (TCGA file names) stay together, other
    files are their own group; stratified by class; an image whose pixels equal a training image's is moved
    to training (BUSI holds such a pair), so validation never scores a training image."""
    root = Path(root)
    pairs = [(img, mask) for img, mask in segmentation_pairs(root) if mask is not None]
    if not pairs:
        raise FileNotFoundError(f"{root}: no image in images/ has a mask in masks/")
    strata = _strata(pairs, root)
    rng = random.Random(seed)
    val_groups = set()
    for stratum in sorted(set(strata.values())):
        groups = sorted({patient_id(img) or img.stem for img, _ in pairs if strata[img] == stratum})
        rng.shuffle(groups)
        val_groups.update(groups[: max(1, math.ceil(val_fraction * len(groups)))])
    train = [p for p in pairs if (patient_id(p[0]) or p[0].stem) not in val_groups]
    val = [p for p in pairs if (patient_id(p[0]) or p[0].stem) in val_groups]
    seen = {_digest(img) for img, _ in train}
    moved = [p for p in val if _digest(p[0]) in seen]
    train += moved
    val = [p for p in val if p not in moved]
    grouped = "patients" if any(patient_id(img) for img, _ in pairs) else "images"
    rule = (
        f"seeded ({seed}) {100 * val_fraction:g}% of {grouped} per class to validation; "
        f"{len(moved)} validation image(s) identical to a training image moved to training"
    )
    return SegSplit(train, val, rule)


def model_image(pixels: np.ndarray, size: int, intensity: str = "raw") -> torch.Tensor:
    """(3, size, size) in [0, 1]: intensity-scaled (``scale_intensity``), grey replicated to three channels,
    resized with antialiasing (aspect not kept: the prediction is resized back to the image's own shape)."""
    t = torch.from_numpy(np.ascontiguousarray(scale_intensity(pixels, intensity)))
    t = t[None].expand(3, -1, -1) if t.ndim == 2 else t.permute(2, 0, 1)
    return F.interpolate(t[None], size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0]


MASK_LEVEL = 0.5  # a mask file's pixel is lesion above this (masks are stored 0/255, resized masks in between)
DEFAULT_THRESHOLD = 0.5  # the lesion-probability threshold of a checkpoint that stores none (and the trainers')


def load_truth(mask: Path) -> np.ndarray:
    """(H, W) bool ground truth at the image's own resolution."""
    return load_image(mask).grey > MASK_LEVEL


def load_truth_mask(path: str | Path | None, shape: tuple[int, int]) -> np.ndarray | None:
    """A ground-truth mask file as a bool array of an image's ``shape`` (nearest-neighbour resized when its
    aspect matches); None without a file; a mask of another field of view is refused."""
    from skimage.transform import resize

    if not path:
        return None
    grey = load_image(path).grey
    if grey.shape != shape:
        ratio = (grey.shape[0] / shape[0], grey.shape[1] / shape[1])
        if abs(ratio[0] - ratio[1]) > 0.02:
            raise ImageLoadError(
                f"the mask is {grey.shape[1]}×{grey.shape[0]} but the image is {shape[1]}×{shape[0]}: "
                "a mask must cover the same field of view"
            )
        grey = resize(grey, shape, order=0, anti_aliasing=False, preserve_range=True)
    return grey > MASK_LEVEL


def load_pairs(pairs: list[Pair], size: int, intensity: str = "raw") -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 3, S, S) images and (N, 1, S, S) float masks, decoded once."""
    images = torch.stack([model_image(load_image(img).pixels, size, intensity) for img, _ in pairs])
    masks = torch.stack(
        [
            F.interpolate(torch.from_numpy(load_truth(m)).float()[None, None], size=(size, size), mode="nearest")[0]
            for _, m in pairs
        ]
    )
    return images, masks


AUGMENT = ("dihedral", "horizontal")


KEEP = ("last", "best")


def stored_keep(options: dict) -> str:
    """A run's recorded rule for the epoch its checkpoint holds: runs from before the option kept the best."""
    return options.get("keep", "best")


def stored_kept_epoch(training: dict) -> int:
    """The epoch a checkpoint's weights come from: runs from before ``kept_epoch`` was recorded kept the best."""
    return training.get("kept_epoch", training["best_epoch"])


def stored_augment(options: dict) -> str:
    """A run's recorded orientation rule: runs from before the option have none, and were dihedral."""
    return options.get("augment", "dihedral")


def augment(
    x: torch.Tensor, m: torch.Tensor, gen: torch.Generator, orientations: str = "dihedral"
) -> tuple[torch.Tensor, torch.Tensor]:
    """A random orientation and a mild brightness/contrast change per image. ``dihedral`` draws from all
    eight flips and quarter turns: orientation carries no meaning in dermoscopy, and little in axial MRI.
    ``horizontal`` only mirrors left-right: an ultrasound image has a depth axis (skin at the top, acoustic
    shadowing and enhancement below a lesion), which a vertical flip or a turn would break. Both draw the
    same random numbers, so ``dihedral`` runs reproduce those from before the option."""
    if orientations not in AUGMENT:
        raise ValueError(f"unknown augmentation {orientations!r}; choose one of {', '.join(AUGMENT)}")
    every = orientations == "dihedral"
    out_x, out_m = [], []
    for xi, mi in zip(x, m, strict=True):
        r = torch.rand(5, generator=gen)
        k = int(r[2] * 4) if every else 0
        if r[0] < 0.5:
            xi, mi = xi.flip(-1), mi.flip(-1)
        if every and r[1] < 0.5:
            xi, mi = xi.flip(-2), mi.flip(-2)
        xi, mi = xi.rot90(k, (-2, -1)), mi.rot90(k, (-2, -1))
        xi = ((xi - 0.5) * (0.9 + 0.2 * r[3]) + 0.5 + 0.1 * (r[4] - 0.5)).clamp(0, 1)
        out_x.append(xi)
        out_m.append(mi)
    return torch.stack(out_x), torch.stack(out_m)
