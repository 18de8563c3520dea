"""The examples gallery: files the project generates or that pydicom bundles, real validation images of
each dataset a checkpoint was trained on when the data is present (with their ground-truth masks where
the dataset has them), and any folder given with ``--examples DIR``. Nothing here needs a test-only package.

Sample files inside installed packages are copied to a cache folder, because the app serves only
files under paths it is told about; the dataset and ``--examples`` folders are served in place.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from spmamba.checkpoint import CheckpointError, read_raw_metadata
from spmamba.data import data_root
from spmamba.imaging import ImageLoadError, image_suffix, load_image

CACHE = Path(os.environ.get("SPMAMBA_CACHE", Path.home() / ".cache" / "spmamba-studio")) / "examples"
MAX_FROM_FOLDER = 24
THUMB = 160


@dataclass(frozen=True)
class Example:
    path: Path  # the file the analysis reads
    thumb: Path  # small PNG for the gallery
    caption: str
    truth: Path | None = None  # the dataset's ground-truth mask of this image, if any
    modality: str | None = None  # DICOM Modality code of a dataset image: picks its checkpoint like a DICOM would


def _phantom(path: Path) -> Path:
    """A synthetic chest-like radiograph with one bright round opacity: no patient, no licence question."""
    if not path.is_file():
        yy, xx = np.mgrid[:384, :384] / 384.0
        body = np.exp(-((((xx - 0.5) / 0.42) ** 2 + ((yy - 0.55) / 0.48) ** 2) ** 3))
        lungs = sum(np.exp(-((((xx - cx) / 0.15) ** 2 + ((yy - 0.5) / 0.3) ** 2) ** 2)) for cx in (0.32, 0.68))
        ribs = 0.06 * (np.sin(yy * 60) > 0.6) * (lungs > 0.2)
        lesion = 0.5 * np.exp(-(((xx - 0.7) ** 2 + (yy - 0.45) ** 2) / 0.002))
        img = 0.75 * body - 0.45 * lungs + ribs + lesion
        img = (img - img.min()) / (img.max() - img.min())
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray((img * 65535).astype(np.uint16)).save(path)
    return path


def _volume(path: Path) -> Path:
    """A synthetic 4-D head-like MR volume (64 x 64 x 24 x 3) with one bright focus, written with nibabel."""
    if not path.is_file():
        import nibabel as nib

        zz, yy, xx = np.mgrid[:24, :64, :64]
        head = ((xx - 32) / 26.0) ** 2 + ((yy - 32) / 30.0) ** 2 + ((zz - 12) / 13.0) ** 2
        vol = np.where(head < 1, 600 + 200 * np.cos(xx / 3.0) * np.sin(yy / 5.0), 0.0)
        vol += 500 * np.exp(-(((xx - 40) ** 2 + (yy - 24) ** 2) / 20.0 + (zz - 12) ** 2 / 8.0))
        vol4 = np.stack([vol * (1 + 0.05 * t) for t in range(3)], -1).transpose(2, 1, 0, 3).astype(np.float32)
        path.parent.mkdir(parents=True, exist_ok=True)
        nib.save(nib.Nifti1Image(vol4, np.diag([3.0, 3.0, 5.0, 1.0])), path)
    return path


def _package_samples(cache: Path) -> list[tuple[Path, str]]:
    """pydicom's bundled CT and MR samples (no download), copied into the cache so the app may serve them."""
    from pydicom.data import get_testdata_file

    copied = []
    for name, caption in (
        ("CT_small.dcm", "CT slice (pydicom sample, DICOM)"),
        ("MR_small.dcm", "MR slice (pydicom sample, DICOM)"),
    ):
        src = get_testdata_file(name)
        if not src:
            continue
        dst = cache / "samples" / name
        if not dst.is_file():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
        copied.append((dst, caption))
    return copied


def _first(folder: Path) -> Path | None:
    files = sorted(p for p in folder.iterdir() if image_suffix(p.name)) if folder.is_dir() else []
    return files[0] if files else None


def _largest_lesion(images: Path, masks: Path) -> tuple[Path, Path] | None:
    """The validation image whose mask is largest: the clearest example of what the masks mean."""
    pairs = [(p, masks / p.name) for p in sorted(images.glob("*.png")) if (masks / p.name).is_file()]
    if not pairs:
        return None
    return max(pairs, key=lambda pm: int((np.asarray(Image.open(pm[1])) > 0).sum()))


def _nearest_normal(tumour: Path, normals: Path) -> Path | None:
    """A tumour-free slice of the same patient, as near as possible to the tumour slice (TCGA file stems end
    in the slice number), so the two examples differ by the tumour rather than by anatomy."""
    stem, _, number = tumour.stem.rpartition("_")
    same = [(abs(int(p.stem.rpartition("_")[2]) - int(number)), p) for p in normals.glob(f"{stem}_*.png")]
    return min(same)[1] if same else _first(normals)


def _dataset_samples(root: Path | None) -> list[tuple[Path, str, Path | None, str]]:
    """Validation images of each dataset a shipped checkpoint covers, when the data is present: chest X-ray
    normal and pneumonia, brain MRI tumour (with its mask) and a tumour-free slice, head CT normal and
    haemorrhage."""
    if root is None:
        return []
    out = []
    for folder, caption in (
        (root / "zhanglab" / "val" / "NORMAL", "Chest X-ray, normal (ZhangLab val)"),
        (root / "zhanglab" / "val" / "PNEUMONIA", "Chest X-ray, pneumonia (ZhangLab val)"),
    ):
        if (found := _first(folder)) is not None:
            out.append((found, caption, None, "DX"))
    lgg = root / "lgg-flair"
    if (pair := _largest_lesion(lgg / "val" / "TUMOR", lgg / "ground_truth" / "TUMOR")) is not None:
        out.append((pair[0], "Brain MRI FLAIR, tumour, with its mask (LGG val)", pair[1], "MR"))
        if (normal := _nearest_normal(pair[0], lgg / "val" / "NORMAL")) is not None:
            out.append((normal, "Brain MRI FLAIR, no tumour, same patient (LGG val)", None, "MR"))
    for folder, caption in (
        (root / "head-ct" / "val" / "NORMAL", "Head CT, normal (head-ct val)"),
        (root / "head-ct" / "val" / "HEMORRHAGE", "Head CT, haemorrhage (head-ct val)"),
    ):
        if (found := _first(folder)) is not None:
            out.append((found, caption, None, "CT"))
    return out


def _folder_samples(folder: Path) -> list[tuple[Path, str]]:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and image_suffix(p.name))
    return [(p, p.name) for p in files[:MAX_FROM_FOLDER]]


def _thumbnail(path: Path, cache: Path) -> Path:
    key = hashlib.sha1(f"colour:{path.resolve()}:{path.stat().st_mtime_ns}".encode()).hexdigest()[:16]
    thumb = cache / "thumbs" / f"{key}.png"
    if not thumb.is_file():
        im = Image.fromarray((load_image(path).pixels * 255).astype(np.uint8))  # colour kept: dermoscopy
        im.thumbnail((THUMB, THUMB))
        thumb.parent.mkdir(parents=True, exist_ok=True)
        im.save(thumb)
    return thumb


def build_examples(
    extra: list[str | os.PathLike] = (), cache: Path = CACHE, with_dataset: bool = True
) -> list[Example]:
    """Every example that loads; files that do not are left out of the gallery rather than failing the app.

    ``with_dataset`` adds two chest X-rays from ``SPMAMBA_DATA`` (or ../shared/data) when present.
    """
    sources = _dataset_samples(data_root()) if with_dataset else []
    sources += [
        (
            _phantom(cache / "synthetic" / "phantom-chest-16bit.png"),
            "Synthetic chest phantom with a round opacity (16-bit PNG)",
            None,
            None,
        )
    ]
    sources += [(path, caption, None, None) for path, caption in _package_samples(cache)]
    sources += [
        (
            _volume(cache / "synthetic" / "phantom-head-4d.nii.gz"),
            "Synthetic MR volume with a bright focus (4-D NIfTI)",
            None,
            None,
        )
    ]
    for folder in extra:
        sources += [(path, caption, None, None) for path, caption in _folder_samples(Path(folder))]
    examples = []
    for path, caption, truth, modality in sources:
        try:
            examples.append(Example(path, _thumbnail(path, cache), caption, truth, modality))
        except (ImageLoadError, OSError):
            continue
    return examples


def build_seg_examples(seg_checkpoints: dict[str, str], cache: Path = CACHE) -> list[Example]:
    """For each dataset a segmentation checkpoint was trained on, when the data is present: its validation image
    of median Dice (typical, not the best), with the dataset's mask, so the Segment tab's Dice can be checked."""
    root = data_root()
    if root is None:
        return []
    examples, seen = [], set()
    for path in seg_checkpoints.values():
        try:
            meta = read_raw_metadata(path)
        except CheckpointError:
            continue
        training, rows = meta.get("training", {}), (meta.get("metrics") or {}).get("per_image") or []
        folder = root / str(training.get("data_path_name", ""))
        if folder in seen or not rows or not (folder / "images").is_dir():
            continue
        seen.add(folder)
        rows = sorted(rows, key=lambda r: r["dice"])
        median = rows[len(rows) // 2]
        image, mask = folder / "images" / median["image"], folder / "masks" / median["image"]
        if not (image.is_file() and mask.is_file()):
            continue
        name = str(training.get("dataset") or folder.name).split(" (")[0]
        caption = f"{name}: median validation image of {Path(path).stem} (Dice {median['dice']:.2f}), with its mask"
        try:
            examples.append(Example(image, _thumbnail(image, cache), caption, mask))
        except (ImageLoadError, OSError):
            continue
    return examples


def file_digest(path: str | os.PathLike) -> str:
    """SHA-1 of a file's bytes: how the page recognises an example after Gradio has copied it to its cache."""
    h = hashlib.sha1()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
