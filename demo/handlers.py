"""Event handlers as plain functions: testable without a server.

``analyze`` runs the network once and returns an :class:`Analysis` kept in the
session's ``gr.State``; ``render`` re-weights and redraws from that cache only.
``score_files`` is the batch tab: many files or ZIPs in, one row per image out.
"""
from __future__ import annotations

import csv
import dataclasses
import shutil
import tempfile
import time
import uuid
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
import torch
from skimage.transform import resize

from spmamba.data import model_input
from spmamba.imaging import ImageLoadError, LoadedImage, load_image
from spmamba.inference import predict_maps
from spmamba.scoring import ComponentMaps, ScoreWeights, rescore

from .models import get_model
from .render import colour_bar, components_table, overlay, score_figure

DISPLAY_MAX = 512  # longest side of the displayed image
BATCH_SIZE = 8  # images per network call in the batch tab
MAX_ZIP_MEMBERS = 2000
MAX_ZIP_BYTES = 2 * 1024 ** 3  # uncompressed, all members together
SCRATCH = Path(tempfile.gettempdir()) / "spmamba-studio"  # batch CSVs; purged after SCRATCH_TTL seconds
SCRATCH_TTL = 3600

# CT windows in Hounsfield units (centre, width); "auto" keeps the file's own VOI window.
WINDOW_PRESETS: dict[str, tuple[float, float] | None] = {
    "auto": None, "lung": (-600.0, 1500.0), "soft tissue": (40.0, 400.0), "bone": (400.0, 1800.0),
    "brain": (40.0, 80.0), "custom": None,
}


@dataclass
class ImageOptions:
    """How to turn a file into one 2-D image: DICOM window, NIfTI axis, slice or frame index."""

    window: tuple[float, float] | None = None
    index: int | None = None  # NIfTI slice (default: middle) or DICOM frame (default: first)
    axis: int = 2


@dataclass
class Analysis:
    """Per-session cache: everything a slider needs, nothing identifying the patient."""

    maps: ComponentMaps  # one image, at the model's input size
    display: np.ndarray  # (H, W) grey image as shown
    checkpoint: str
    weights: ScoreWeights  # the checkpoint's own weights, restored by "reset"
    calibration: dict | None
    image_meta: dict
    notes: list[str] = field(default_factory=list)


@dataclass
class Rendered:
    overlay: np.ndarray
    figure: object
    verdict: str
    scores: dict
    colour_bar: str
    table: str


def window_for(preset: str, centre: float, width: float) -> tuple[float, float] | None:
    """The DICOM window for a preset name; "custom" takes the sliders' centre and width."""
    if preset == "custom":
        return float(centre), max(float(width), 1.0)
    if preset not in WINDOW_PRESETS:
        raise ImageLoadError(f"unknown window preset {preset!r}; choose one of {', '.join(WINDOW_PRESETS)}")
    return WINDOW_PRESETS[preset]


def load(path: str | None, options: ImageOptions = ImageOptions()) -> LoadedImage:
    """The loader plus the app's own refusal of blank images, which carry nothing to analyse."""
    if not path:
        raise ImageLoadError("no file was given")
    img = load_image(path, frame=options.index or 0, slice_index=options.index, axis=options.axis,
                     window=options.window)
    if np.ptp(img.pixels) == 0:
        under = " under this window" if options.window else ""
        raise ImageLoadError(f"{Path(path).name} is blank{under}: every pixel has the same value, so there is "
                             "nothing to analyse")
    return img


def analyze(path: str | None, checkpoint: str, options: ImageOptions = ImageOptions(),
            notes: list[str] | None = None) -> Analysis:
    """Load the file, run the model once, cache the component maps."""
    return analyze_image(load(path, options), checkpoint, notes)


def analyze_image(img: LoadedImage, checkpoint: str, notes: list[str] | None = None) -> Analysis:
    """Run the model once on a loaded image and cache its component maps."""
    model, meta = get_model(checkpoint)
    grey = img.grey
    x = model_input(grey, model.config.image_size)[None]
    maps = predict_maps(model, x.to(next(model.parameters()).device))
    maps = ComponentMaps(maps.per_scale.cpu(), maps.prototype.cpu())
    scale = DISPLAY_MAX / max(grey.shape)  # small images are enlarged, so every map is readable
    display = resize(grey, (round(grey.shape[0] * scale), round(grey.shape[1] * scale)), anti_aliasing=True)
    return Analysis(maps, display.astype(np.float32), checkpoint, ScoreWeights.from_dict(meta["score_weights"]),
                    meta.get("calibration"), img.meta, list(notes or []))


def placement(total: float, calibration: dict | None) -> tuple[bool | None, float | None]:
    """(above the threshold, percentile among the normal validation scores); None without calibration."""
    if not calibration:
        return None, None
    normal = np.asarray(calibration["normal_scores"])
    return bool(total >= calibration["threshold"]), float(100 * (normal < total).mean())


def verdict(total: float, calibration: dict | None) -> str:
    """Plain-language placement of the score; never a diagnosis."""
    above, pct = placement(total, calibration)
    if above is None:
        return f"Score {total:.3g}. This checkpoint has no calibration, so the score cannot be placed."
    head = "**Above the normal range for this model.**" if above else "**Within the normal range for this model.**"
    return (f"{head} Score {total:.3g} (threshold {calibration['threshold']:.3g}); higher than {pct:.0f}% of the "
            f"{len(calibration['normal_scores'])} normal validation images. This measures how unusual the image is "
            "for the model, not whether disease is present.")


def render(analysis: Analysis, weights: ScoreWeights, opacity: float = 0.45, contour: float = 0.9) -> Rendered:
    """Re-score the cached maps with ``weights`` and draw them; ``contour`` is the fraction of the map's range
    above which the region is outlined."""
    s = rescore(analysis.maps, weights)
    amap = s.anomaly_map[0].numpy()
    lo, hi = float(amap.min()), float(amap.max())
    line = lo + contour * (hi - lo)
    picture = overlay(analysis.display, amap, lo, hi, opacity, line)
    total = float(s.total[0])
    parts = {"peak": float(s.peak[0]), "β·concentration": weights.beta * float(s.concentration[0]),
             "γ·contrast": weights.gamma * float(s.contrast[0])}
    cal = analysis.calibration
    fig = score_figure(parts, total, cal and cal["threshold"], cal and cal.get("normal_scores"))
    scores = {"total": total, "reconstruction": float(s.reconstruction[0]), "prototype": float(s.prototype[0]),
              "peak": float(s.peak[0]), "concentration": float(s.concentration[0]),
              "contrast": float(s.contrast[0]), "map_min": lo, "map_max": hi}
    text = "\n\n".join([verdict(total, cal)] + [f"⚠️ {n}" for n in analysis.notes])
    return Rendered(picture, fig, text, scores, colour_bar(lo, hi, line if contour <= 1 else None),
                    components_table(scores, weights))


def weights_from_sliders(base: ScoreWeights, alpha, beta, gamma, sigma, k_sigma) -> ScoreWeights:
    return dataclasses.replace(base, alpha=float(alpha), beta=float(beta), gamma=float(gamma),
                               dog_sigma=float(sigma), dog_k_sigma=float(k_sigma))


# ---------------------------------------------------------------- batch tab

@dataclass
class BatchItem:
    name: str  # as the user knows it: the file name, or the path inside the ZIP
    path: Path | None
    error: str | None = None


def _suffix(name: str) -> str:
    low = name.lower()
    if low.endswith(".nii.gz"):
        return ".nii.gz"
    suffix = PurePosixPath(low).suffix
    return suffix if suffix[1:].isalnum() and len(suffix) <= 6 else ""


def expand_uploads(paths: list[str], workdir: Path) -> list[BatchItem]:
    """Uploaded files as items; each ZIP's images are written under ``workdir`` with neutral numbered names.

    Member names are never used as paths, so a name like ``../../etc/passwd`` cannot write outside
    ``workdir``; such names are reported and skipped.
    """
    items: list[BatchItem] = []
    for p in paths:
        p = Path(p)
        if not zipfile.is_zipfile(p):
            items.append(BatchItem(p.name, p))
            continue
        try:
            with zipfile.ZipFile(p) as zf:
                members = [m for m in zf.infolist() if not m.is_dir()]
                if len(members) > MAX_ZIP_MEMBERS:
                    items.append(BatchItem(p.name, None, f"the ZIP holds {len(members)} files, more than the "
                                                         f"{MAX_ZIP_MEMBERS} allowed"))
                    continue
                if sum(m.file_size for m in members) > MAX_ZIP_BYTES:
                    items.append(BatchItem(p.name, None, "the ZIP expands to more than "
                                                         f"{MAX_ZIP_BYTES / 1024 ** 3:.0f} GiB"))
                    continue
                for m in members:
                    name = m.filename
                    parts = PurePosixPath(name.replace("\\", "/")).parts
                    base = parts[-1] if parts else ""
                    if name.startswith(("/", "\\")) or ".." in parts or ":" in (parts[0] if parts else ""):
                        items.append(BatchItem(f"{p.name}: {name}", None,
                                               "unsafe path inside the ZIP (absolute or with '..'); skipped"))
                        continue
                    if base.startswith(".") or "__MACOSX" in parts:
                        continue  # Finder and editor debris, not images
                    target = workdir / f"{len(items):05d}{_suffix(base)}"
                    with zf.open(m) as src, open(target, "wb") as dst:
                        shutil.copyfileobj(src, dst)
                    items.append(BatchItem(f"{p.name}: {name}", target))
        except (zipfile.BadZipFile, OSError, EOFError) as err:
            items.append(BatchItem(p.name, None, f"the ZIP is damaged and cannot be read ({err})"))
    return items


def _purge_scratch(now: float) -> None:
    if SCRATCH.is_dir():
        for d in SCRATCH.iterdir():
            if now - d.stat().st_mtime > SCRATCH_TTL:
                shutil.rmtree(d, ignore_errors=True)


BATCH_COLUMNS = ["file", "score", "verdict", "normal percentile", "modality", "message"]


def score_files(paths: list[str] | None, checkpoint: str,
                progress: Callable[[float, str], object] | None = None) -> tuple[list[list], Path]:
    """Score every image in ``paths`` (ZIPs expanded) with the checkpoint's own weights.

    Returns the table rows (BATCH_COLUMNS) and a CSV of them; unreadable files become rows with a
    message rather than stopping the batch.
    """
    if not paths:
        raise ImageLoadError("no files were given")
    now = time.time()
    _purge_scratch(now)
    out_dir = SCRATCH / uuid.uuid4().hex
    out_dir.mkdir(parents=True)
    model, meta = get_model(checkpoint)
    weights = ScoreWeights.from_dict(meta["score_weights"])
    cal = meta.get("calibration")
    size = model.config.image_size
    device = next(model.parameters()).device
    with tempfile.TemporaryDirectory(prefix="spmamba-zip-") as work:
        items = expand_uploads(list(paths), Path(work))
        rows: list[list] = [[] for _ in items]  # filled in input order
        pending: list[tuple[int, BatchItem, LoadedImage]] = []

        def flush():
            x = torch.stack([model_input(img.grey, size) for _, _, img in pending]).to(device)
            totals = rescore(predict_maps(model, x), weights).total.cpu().numpy()
            for (i, item, img), total in zip(pending, totals):
                above, pct = placement(float(total), cal)
                word = "no calibration" if above is None else (
                    "above the normal range" if above else "within the normal range")
                rows[i] = [item.name, round(float(total), 4), word, None if pct is None else round(pct, 1),
                           img.meta.get("Modality", ""), ""]
            pending.clear()

        for i, item in enumerate(items):
            if progress is not None:
                progress(i / max(len(items), 1), f"{i}/{len(items)} images")
            if item.error is None:
                try:
                    pending.append((i, item, load(str(item.path))))
                except ImageLoadError as err:
                    item.error = str(err).replace(item.path.name, item.name)
            if item.error is not None:
                rows[i] = [item.name, None, "error", None, "", item.error]
            if len(pending) == BATCH_SIZE:
                flush()
        if pending:
            flush()
    csv_path = out_dir / "spmamba-batch-scores.csv"
    with open(csv_path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(BATCH_COLUMNS)
        writer.writerows(rows)
    return rows, csv_path
