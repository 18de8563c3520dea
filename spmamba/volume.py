"""Whole volumes: a NIfTI volume, a multi-frame DICOM or a DICOM series, as an ordered stack of slices, each
prepared exactly as the single-slice loader prepares it, so a slice scores the same alone or in its volume.

DICOM series are grouped by SeriesInstanceUID and ordered along the slice normal (ImageOrientationPatient
x ImagePositionPatient), InstanceNumber where positions are missing; mixed series, gaps in position and
inconsistent sizes are refused with the reason.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch.nn.functional as F

from .imaging import (
    NEAR_BLANK,
    ImageLoadError,
    _check_size,
    _normalise,
    dicom_header,
    is_dicom,
    is_nifti,
    load_dicom_frames,
    load_image,
    open_nifti,
    quiet_headers,
    signal_fraction,
)
from .inference import Predictor, score_components
from .scoring import ComponentMaps, Scores, ScoreWeights, cat_scores

MAX_SLICES = 1024
MAX_VOXELS = 64 * 2**20  # e.g. 512 x 512 x 256: 256 MB as float32


@dataclass
class Volume:
    slices: list[np.ndarray]  # (H, W) float32 in [0, 1] each, in order
    meta: dict[str, Any] = field(default_factory=dict)  # source, axis, Modality, spacing: never identifiers
    affine: np.ndarray | None = None  # maps written back aligned: a NIfTI's canonical affine, series_affine
    labels: list[str] = field(default_factory=list)  # what each slice is called (instance and position, frame)

    def __len__(self) -> int:
        return len(self.slices)


def load_volume(
    paths: list[str | os.PathLike], axis: int = 2, volume_index: int = 0, window: tuple[float, float] | None = None
) -> Volume:
    """One NIfTI file, one multi-frame DICOM, or the files of one DICOM series, as a :class:`Volume`; DICOM
    slices in ``window`` (centre, width) when given, as the single-image loader applies it."""
    paths = [Path(p) for p in paths]
    if not paths:
        raise ImageLoadError("no file was given")
    if len(paths) == 1 and is_nifti(paths[0].name):
        return _nifti_volume(paths[0], axis, volume_index)
    if len(paths) == 1:
        return _multiframe(paths[0], window)
    return dicom_series(paths, window)


def _nifti_volume(path: Path, axis: int, volume_index: int) -> Volume:
    import nibabel as nib

    img = open_nifti(path, volumes=False)  # the single-slice loader's own checks
    if len(img.shape) not in (3, 4):
        raise ImageLoadError(f"{path.name} is a 2-D NIfTI image, not a volume: analyse it on the Analyse tab")
    if len(img.shape) == 4 and not 0 <= volume_index < img.shape[3]:
        raise ImageLoadError(f"{path.name} holds {img.shape[3]} volumes; volume {volume_index} does not exist")
    if axis not in (0, 1, 2):
        raise ImageLoadError(f"slice axis must be 0, 1 or 2, got {axis}")
    if int(np.prod(img.shape[:3], dtype=np.int64)) > MAX_VOXELS:
        raise ImageLoadError(f"{path.name} has more than {MAX_VOXELS:,} voxels per volume; it is too large to score")
    data = img.dataobj[..., volume_index] if len(img.shape) == 4 else img.dataobj
    # float64 files are read as such: values beyond float32's range would turn infinite in a cast
    dtype = np.float64 if img.header.get_data_dtype().itemsize > 4 else np.float32
    try:
        canonical = nib.as_closest_canonical(nib.Nifti1Image(np.asarray(data, dtype=dtype), img.affine))
        vol = np.asarray(canonical.dataobj)
    except Exception as err:  # a singular or broken affine, or data shorter than the header says
        raise ImageLoadError(
            f"{path.name}: the volume cannot be read in a known orientation (its affine may be singular) or its "
            "data is shorter than its header says"
        ) from err
    if vol.shape[axis] > MAX_SLICES:
        raise ImageLoadError(f"{path.name} has {vol.shape[axis]} slices along axis {axis}; at most {MAX_SLICES}")
    slices = []
    for i in range(vol.shape[axis]):
        sl = np.rot90(np.take(vol, i, axis=axis))  # the single-slice loader's orientation and scaling
        _check_size(*sl.shape)
        slices.append(np.ascontiguousarray(_normalise(sl), dtype=np.float32))
    zooms = canonical.header.get_zooms()[:3]
    meta = {
        "format": "NIfTI",
        "source": "NIfTI volume",
        "axis": axis,
        "slices": len(slices),
        "shape": [int(d) for d in vol.shape],
        "volume": volume_index,
        "slice_spacing_mm": float(zooms[axis]),
    }
    return Volume(slices, meta, canonical.affine, [f"slice {i}" for i in range(len(slices))])


def _declared_frames(path: Path) -> int | None:
    """How many frames or pages a file says it holds, read from its header without decoding any pixels;
    None when the header cannot say (the loader then reports why)."""
    try:
        if is_dicom(path):
            return int(dicom_header(path).get("NumberOfFrames") or 1)
        from PIL import Image

        with Image.open(path) as im:
            return int(getattr(im, "n_frames", 1))
    except ImageLoadError:
        raise  # a deflated file that inflates past its limit: refused here, before a header read inflates it
    except Exception:
        return None


def _one_image(path: Path) -> ImageLoadError:
    return ImageLoadError(
        f"{path.name} holds one image, not a volume: give a NIfTI volume, a multi-frame DICOM or several "
        "DICOM files of one series"
    )


def _multiframe(path: Path, window: tuple[float, float] | None = None) -> Volume:
    frames = _declared_frames(path)  # said from the header, before an image of many megapixels is decoded
    if frames == 1:
        raise _one_image(path)
    if frames is not None and frames > MAX_SLICES:
        raise ImageLoadError(f"{path.name} has {frames} frames; at most {MAX_SLICES}")
    dicom = is_dicom(path)
    if dicom:
        images = load_dicom_frames(path, window)  # read once, not once a frame
    else:  # a multi-page TIFF: Pillow seeks to each page
        first = load_image(path)
        pages = min(int(first.meta.get("frames", 1)), MAX_SLICES + 1)
        images = [first] + [load_image(path, frame=i) for i in range(1, pages)]
    if len(images) < 2:
        raise _one_image(path)
    if len(images) > MAX_SLICES:
        raise ImageLoadError(f"{path.name} has {len(images)} frames; at most {MAX_SLICES}")
    kind = "multi-frame DICOM" if dicom else "multi-page TIFF"
    meta = {"format": images[0].meta.get("format"), "source": kind, "slices": len(images)}
    meta["Modality"] = images[0].meta.get("Modality")
    return Volume([im.grey for im in images], meta, None, [f"frame {i}" for i in range(len(images))])


@dataclass
class _SeriesFile:
    path: Path
    series: str
    position: float | None
    instance: int | None
    size: tuple[int, int]
    geometry: tuple[np.ndarray, np.ndarray, tuple[float, float]] | None = None  # IPP, IOP, PixelSpacing (row, col)

    @property
    def label(self) -> str:
        """What a radiologist calls the slice: its InstanceNumber and position, not the file's name (an upload or
        a ZIP member is stored under a neutral numbered one); the name only when the file gives neither."""
        parts = [f"instance {self.instance}" if self.instance is not None else None]
        parts.append(f"{self.position:.1f} mm" if self.position is not None else None)
        return ", ".join(p for p in parts if p) or self.path.name


def _series_file(path: Path) -> _SeriesFile:
    with quiet_headers():  # the header is read, and its values converted, with pydicom's warnings silenced
        return _read_series_file(path)


def _read_series_file(path: Path) -> _SeriesFile:
    try:
        ds = dicom_header(path)
    except ImageLoadError:
        raise
    except Exception as err:
        raise ImageLoadError(f"{path.name} is not a readable DICOM file (its header is damaged)") from err
    if "Rows" not in ds or "Columns" not in ds:
        raise ImageLoadError(f"{path.name} is not a DICOM image (no Rows/Columns)")
    position, geometry = None, None
    try:
        iop = np.asarray([float(v) for v in ds.ImageOrientationPatient])
        ipp = np.asarray([float(v) for v in ds.ImagePositionPatient])
        normal = np.cross(iop[:3], iop[3:])
        if np.linalg.norm(normal) > 0.5:
            position = float(ipp @ normal)
    except (AttributeError, TypeError, ValueError):
        position = None
    try:  # where the slices lie, for a map volume written back aligned; without it the map is not written
        spacing = tuple(float(v) for v in ds.PixelSpacing)
        if position is not None and len(spacing) == 2 and min(spacing) > 0:
            geometry = (ipp, iop, spacing)
    except (AttributeError, TypeError, ValueError):
        geometry = None
    try:
        instance = int(ds.get("InstanceNumber"))
    except (TypeError, ValueError):  # absent, empty or not a number: the file gives no instance number
        instance = None
    size = (int(ds.Rows), int(ds.Columns))
    return _SeriesFile(path, str(ds.get("SeriesInstanceUID", "")), position, instance, size, geometry)


def series_affine(files: list[_SeriesFile]) -> np.ndarray | None:
    """The NIfTI (RAS) affine of a series ordered along its normal, for the voxel order ``map_volume`` writes
    (each slice as ``np.rot90(slice, -1)``, stacked in order); None when a file lacks its geometry.

    Pixel (row r, column c) of slice k lies at IPP_0 + c·Δc·X + r·Δr·Y + k·S in patient (LPS) coordinates
    (DICOM PS3.3 C.7.6.2.1.1), and rot90(·, -1) puts it at voxel (c, R-1-r, k)."""
    if any(f.geometry is None for f in files):
        return None
    (ipp, iop, (dr, dc)), last = files[0].geometry, files[-1].geometry[0]
    x, y = iop[:3], iop[3:]
    step = (last - ipp) / (len(files) - 1) if len(files) > 1 else np.cross(x, y)
    lps = np.eye(4)
    lps[:3, 0], lps[:3, 1], lps[:3, 2] = dc * x, -dr * y, step
    lps[:3, 3] = ipp + (files[0].size[0] - 1) * dr * y
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps


def dicom_series(paths: list[Path], window: tuple[float, float] | None = None) -> Volume:
    """The files of one DICOM series as a volume in anatomical order; refuses what would mislead."""
    if len(paths) > MAX_SLICES:
        raise ImageLoadError(f"{len(paths)} files; a series may have at most {MAX_SLICES} slices")
    files = [_series_file(p) for p in paths]
    series = sorted({f.series for f in files})
    if len(series) > 1:
        counts = ", ".join(f"{sum(f.series == s for f in files)} files" for s in series)
        raise ImageLoadError(
            f"the files belong to {len(series)} different series ({counts}); upload the files of one series"
        )
    sizes = sorted({f.size for f in files})
    if len(sizes) > 1:
        shown = ", ".join(f"{c}×{r}" for r, c in sizes)
        raise ImageLoadError(f"the slices of this series have different sizes ({shown}); they cannot form a volume")
    notes = []
    if all(f.position is not None for f in files):
        files.sort(key=lambda f: f.position)
        pos = np.array([f.position for f in files])
        steps = np.diff(pos)
        if (steps < 1e-3).any():
            k = int(np.argmax(steps < 1e-3))
            raise ImageLoadError(
                f"{files[k].label} and {files[k + 1].label} are at the same position; the series holds duplicate slices"
            )
        spacing = float(np.median(steps))
        gaps = np.flatnonzero(steps > 1.5 * spacing)
        if len(gaps):
            k = int(gaps[0])
            raise ImageLoadError(
                f"slices are missing: {steps[k]:.1f} mm between {files[k].label} and "
                f"{files[k + 1].label}, where the slices are {spacing:.1f} mm apart"
            )
        order = "ImagePositionPatient along the slice normal"
        affine = series_affine(files)
    elif all(f.instance is not None for f in files):
        files.sort(key=lambda f: f.instance)
        spacing, affine = None, None
        order = "InstanceNumber (the files give no positions)"
        notes.append("ordered by InstanceNumber: gaps cannot be checked without positions")
    else:
        raise ImageLoadError("the files give neither slice positions nor instance numbers; their order is unknown")
    images = [load_image(f.path, window=window) for f in files]
    meta = {
        "format": "DICOM",
        "source": "DICOM series",
        "slices": len(images),
        "order": order,
        "Modality": images[0].meta.get("Modality"),
        "slice_spacing_mm": spacing,
        "axis": 2,  # map_volume stacks the slices' maps along the third voxel axis
    }
    if notes:
        meta["notes"] = notes
    return Volume([im.grey for im in images], meta, affine, [f.label for f in files])


def volume_maps(predictor: Predictor, volume: Volume, batch_size: int = 8, progress=None) -> ComponentMaps:
    """Component maps of every slice, ``batch_size`` slices per network call; ``progress(fraction)`` after each.
    Written into tensors allocated once (a concatenation at the end would hold every map twice)."""
    out = None
    for i in range(0, len(volume), batch_size):
        m = predictor.maps(volume.slices[i : i + batch_size])
        if out is None:
            n = len(volume)
            out = ComponentMaps(
                m.per_scale.new_empty((n, *m.per_scale.shape[1:])), m.prototype.new_empty((n, *m.prototype.shape[1:]))
            )
        out.per_scale[i : i + len(m.per_scale)] = m.per_scale
        out.prototype[i : i + len(m.prototype)] = m.prototype
        if progress is not None:
            progress(min(1.0, (i + batch_size) / len(volume)))
    return out


def volume_scores(
    predictor: Predictor, volume: Volume, weights: ScoreWeights | None = None, batch_size: int = 8, progress=None
) -> Scores:
    """Scores of every slice with the maps dropped as each batch is scored: what the API and the CLI need.
    Keeping them (``volume_maps``) costs 1 MB a slice at 256², ~1 GB for a 1,024-slice volume; the score of a
    slice does not depend on its neighbours, so the result equals scoring ``volume_maps`` (tested).
    ``anomaly_map`` is left empty."""
    parts = []
    for i in range(0, len(volume), batch_size):
        s = predictor.score(predictor.maps(volume.slices[i : i + batch_size]), weights)
        parts.append(s._replace(anomaly_map=s.anomaly_map.new_empty((len(s.total), 0, 0))))
        if progress is not None:
            progress(min(1.0, (i + batch_size) / len(volume)))
    return cat_scores(parts)


def volume_report(predictor: Predictor, volume: Volume, scores: Scores, in_domain: bool | None = None) -> dict:
    """Per-slice scores and components, the checkpoint's threshold, and the most anomalous slice with the
    page's verdict for it: what ``/analyze_volume`` and ``spmamba predict VOLUME`` return. ``scores`` come from
    ``volume_scores`` or ``predictor.score(volume_maps(...), weights)``; their maps are not read."""
    blank = np.array([float(np.ptp(s)) == 0 for s in volume.slices])  # nothing to score, as a blank image alone
    if blank.all():
        raise ImageLoadError("every slice of this volume is blank: there is nothing to analyse")
    totals = np.where(blank, np.nan, scores.total.numpy())
    finite = np.where(np.isfinite(totals), totals, -np.inf)
    top = int(np.argmax(finite))
    meta = {**volume.meta}
    judgement = predictor.judge(float(totals[top]), meta, in_domain)
    placed = judgement.modality_match is not False and in_domain is not False
    threshold = (predictor.calibration or {}).get("threshold") if placed else None
    rows = []
    for i in range(len(volume)):
        label = volume.labels[i] if i < len(volume.labels) else str(i)
        if blank[i]:
            row = {
                "index": i,
                "label": label,
                "blank": True,
                "nearly_blank": True,
                "total": None,
                "above_threshold": None,
            }
            rows.append(row)
            continue
        rows.append(
            {
                "index": i,
                "label": label,
                "blank": False,
                "nearly_blank": signal_fraction(volume.slices[i]) < NEAR_BLANK,
                **score_components(scores, i),
                "above_threshold": None if threshold is None else bool(totals[i] >= threshold),
            }
        )
    return {
        "checkpoint": predictor.name,
        "slices": len(volume),
        "highest_slice": top,
        "highest_score": float(totals[top]),
        "threshold": threshold,
        "slices_above_threshold": None if threshold is None else int((finite >= threshold).sum()),
        "blank_slices": int(blank.sum()),
        "verdict_for_highest": judgement.to_dict(),
        "per_slice": rows,
        "volume": meta,
    }


def map_volume(volume: Volume, maps: ComponentMaps, weights: ScoreWeights) -> np.ndarray:
    """The anomaly maps as a (X, Y, Z) array aligned with the canonical NIfTI the slices came from: each
    map resized to its slice, the display rotation undone, stacked along the slicing axis."""
    from .scoring import rescore

    amap = rescore(maps, weights).anomaly_map
    h, w = volume.slices[0].shape
    resized = F.interpolate(amap[:, None], size=(h, w), mode="bilinear", align_corners=False)[:, 0].numpy()
    planes = [np.rot90(m, -1) for m in resized]  # the loader showed np.rot90(slice)
    return np.stack(planes, axis=volume.meta["axis"]).astype(np.float32)


def save_map_nifti(volume: Volume, maps: ComponentMaps, weights: ScoreWeights, path: str | os.PathLike) -> Path:
    """The anomaly-map volume as NIfTI with the input's (canonical) affine, to open beside the scan."""
    import nibabel as nib

    if volume.affine is None:
        raise ImageLoadError("only a NIfTI volume has an affine to align a map volume with")
    nib.save(nib.Nifti1Image(map_volume(volume, maps, weights), volume.affine), str(path))
    return Path(path)
