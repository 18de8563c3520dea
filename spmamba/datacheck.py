"""``spmamba data check``: what a dataset folder holds and what is wrong with it, before hours of training.

Leakage is the failure that costs most and shows least: the same image, or the same patient, on both
sides of a split inflates validation figures without any error. This reads every file once. Images that
are nearly the same (a lesion captured twice, re-exported at another size) are found by correlating
32x32 thumbnails: at r >= 0.98 no two of the 5,216 chest X-rays match, while BUSI's re-captured
frames do (their masks agree at a median Dice of 0.91). Neighbouring slices of one patient
are alike too; the patient-disjoint split already keeps them together, so they are not listed.
"""

from __future__ import annotations

import hashlib
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .data import NORMAL_NAMES, Sample, labelled_folder, patient_id, resize_grey, segmentation_pairs
from .imaging import ImageLoadError, image_suffix, load_image

SPLITS = ("train", "val", "test", "extra")
MASK_FOLDERS = ("ground_truth", "masks", "label")
NEAR_DUPLICATE_R = 0.98  # thumbnail correlation above which two images count as nearly the same


@dataclass
class DataReport:
    root: Path
    layout: str  # "anomaly" (split/class folders) or "segmentation" (images/ + masks/)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # split -> class -> images
    masks: dict[str, dict[str, int]] = field(default_factory=dict)  # split -> class -> images with a mask
    missing_masks: list[Path] = field(default_factory=list)  # images of a class that has masks, without one
    orphan_masks: list[Path] = field(default_factory=list)  # mask files no image uses
    unreadable: list[tuple[Path, str]] = field(default_factory=list)
    duplicates: list[list[tuple[str, Path]]] = field(default_factory=list)  # identical pixels, split by split
    shared_patients: dict[str, list[str]] = field(default_factory=dict)  # patient -> the splits holding them
    near_duplicates: list[tuple[tuple[str, Path], tuple[str, Path], float]] = field(default_factory=list)

    @property
    def cross_split_duplicates(self) -> list[list[tuple[str, Path]]]:
        return [g for g in self.duplicates if len({split for split, _ in g}) > 1]

    @property
    def problems(self) -> int:
        """Findings that make figures wrong or training fail (within-split duplicates only inform)."""
        return (
            len(self.missing_masks)
            + len(self.orphan_masks)
            + len(self.unreadable)
            + len(self.cross_split_duplicates)
            + len(self.shared_patients)
        )


def _samples_by_split(root: Path) -> tuple[str, dict[str, list[Sample]]]:
    if (root / "images").is_dir():
        return "segmentation", {".": [Sample(p, 1, m) for p, m in segmentation_pairs(root)]}
    splits = [s for s in SPLITS if (root / s).is_dir()]
    if not splits:  # one labelled folder (class sub-folders directly under the root)
        return "anomaly", {".": labelled_folder(root)}
    return "anomaly", {s: labelled_folder(root / s) for s in splits}


def _class_name(sample: Sample) -> str:
    """The class folder: BMAD keeps a class's images in ``<class>/img/``."""
    parent = sample.path.parent
    return parent.parent.name if parent.name == "img" else parent.name


def _mask_files(root: Path) -> set[Path]:
    found = set()
    for dirpath, _, filenames in os.walk(root):
        if set(Path(dirpath).relative_to(root).parts) & set(MASK_FOLDERS):
            found.update(Path(dirpath, f).resolve() for f in filenames if image_suffix(f))
    return found


def thumbnail_signature(grey: np.ndarray) -> np.ndarray:
    """A 32x32 thumbnail with zero mean and unit norm: the dot product of two is their correlation,
    blind to brightness, contrast and size."""
    v = resize_grey(grey, (32, 32)).numpy().ravel().astype(np.float64)
    v -= v.mean()
    return (v / (np.linalg.norm(v) or 1.0)).astype(np.float32)


def near_duplicate_pairs(a: np.ndarray, b: np.ndarray | None = None, r: float = NEAR_DUPLICATE_R):
    """(i, j, correlation) for every signature ``a[i]`` within ``r`` of ``b[j]`` (of ``a[j]``, j > i, when
    ``b`` is None), in blocks so that a folder of thousands needs no N x N matrix at once."""
    same = b is None
    b = a if same else b
    out = []
    for start in range(0, len(a), 512):
        sims = a[start : start + 512] @ b.T
        for i, j in zip(*np.nonzero(sims >= r), strict=True):
            if not same or start + i < j:
                out.append((start + int(i), int(j), float(sims[i, j])))
    return out


def check(root: str | os.PathLike) -> DataReport:
    """Read every image and mask under ``root`` and report counts and problems (see :class:`DataReport`)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder")
    layout, by_split = _samples_by_split(root)
    report = DataReport(root, layout)
    by_hash: dict[str, list[tuple[str, Path]]] = defaultdict(list)
    patients: dict[str, set[str]] = defaultdict(set)
    used_masks = set()
    seen: list[tuple[str, Path]] = []
    keys: list[tuple[str, str | None]] = []  # (pixel digest, patient) of each entry of ``seen``
    signatures = []
    for split, samples in by_split.items():
        counts, masked = defaultdict(int), defaultdict(int)
        classes_with_masks = {_class_name(s) for s in samples if s.mask is not None}
        for s in samples:
            cls = _class_name(s)
            counts[cls] += 1
            if s.mask is not None:
                masked[cls] += 1
                used_masks.add(s.mask.resolve())
            elif cls in classes_with_masks or (layout == "segmentation"):
                report.missing_masks.append(s.path)
            try:
                image = load_image(s.path)
            except ImageLoadError as err:
                report.unreadable.append((s.path, str(err)))
                continue
            pixels = image.pixels
            digest = hashlib.sha256(str(pixels.shape).encode() + pixels.tobytes()).hexdigest()
            by_hash[digest].append((split, s.path))
            pid = patient_id(s.path)
            seen.append((split, s.path))
            keys.append((digest, pid))
            signatures.append(thumbnail_signature(image.grey))
            if pid is not None:
                patients[pid].add(split)
        report.counts[split], report.masks[split] = dict(counts), dict(masked)
    for mask in sorted(_mask_files(root) - used_masks):
        report.orphan_masks.append(mask)
    report.duplicates = [g for g in by_hash.values() if len(g) > 1]
    if signatures:  # identical pairs are listed above; one patient's slices are kept together by the split
        report.near_duplicates = [
            (seen[i], seen[j], r)
            for i, j, r in near_duplicate_pairs(np.stack(signatures))
            if keys[i][0] != keys[j][0] and (keys[i][1] is None or keys[i][1] != keys[j][1])
        ]
    report.shared_patients = {p: sorted(s) for p, s in sorted(patients.items()) if len(s) > 1}
    return report


def format_report(r: DataReport, limit: int = 10) -> str:
    """Plain text for the terminal: counts first, then each kind of problem with up to ``limit`` examples."""

    def rel(p: Path) -> str:
        try:
            return str(Path(p).resolve().relative_to(r.root.resolve()))
        except ValueError:
            return str(p)

    lines = [f"{r.root} ({r.layout} layout)"]
    for split, counts in r.counts.items():
        parts = []
        for cls, n in counts.items():
            kind = "normal" if cls in NORMAL_NAMES else "abnormal" if r.layout == "anomaly" else "images"
            with_masks = r.masks[split].get(cls, 0)
            parts.append(f"{cls} {n} ({kind}{f', {with_masks} with masks' if with_masks else ''})")
        lines.append(f"  {split:<6} " + ", ".join(parts))

    def section(title: str, items: list[str]) -> None:
        lines.append(f"{title}: {len(items)}")
        lines.extend(f"  {x}" for x in items[:limit])
        if len(items) > limit:
            lines.append(f"  ... and {len(items) - limit} more")

    section("images without a mask", [rel(p) for p in r.missing_masks])
    section("masks without an image", [rel(p) for p in r.orphan_masks])
    section("unreadable files", [f"{rel(p)}: {why}" for p, why in r.unreadable])
    section(
        "identical images in more than one split",
        [" = ".join(f"{s}:{rel(p)}" for s, p in g) for g in r.cross_split_duplicates],
    )
    within = [g for g in r.duplicates if g not in r.cross_split_duplicates]
    section(
        "identical images within one split (not counted as a problem)",
        [" = ".join(rel(p) for _, p in g) for g in within],
    )
    section(
        "patients in more than one split (spmamba train moves their training images to validation)",
        [f"{p}: {', '.join(s)}" for p, s in r.shared_patients.items()],
    )
    section(
        f"near-identical images (thumbnails correlate at r >= {NEAR_DUPLICATE_R}; not counted as a problem, "
        "but a split that puts them on both sides flatters validation)",
        [f"{a}:{rel(pa)} ~ {b}:{rel(pb)} (r={c:.3f})" for (a, pa), (b, pb), c in r.near_duplicates],
    )
    lines.append(f"PROBLEMS={r.problems}")
    return "\n".join(lines)
