"""One entry point from a medical or ordinary image file to a float image in [0, 1].

``load_image`` reads PNG/JPEG/TIFF/BMP (8/16-bit, L/RGB/RGBA/I;16/float),
DICOM (modality LUT, then VOI LUT or window centre/width; MONOCHROME1 inverted;
multi-frame) and NIfTI (reoriented to the closest canonical orientation; a
slice along an axis, 3-D and 4-D). Every failure raises ``ImageLoadError``
with a sentence a clinician can act on. Metadata never holds patient identifiers.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

MAX_PIXELS = 80_000_000  # refuse decompression bombs before decoding
# CT windows in Hounsfield units (centre, width). "auto" is the checkpoint's training window for DICOM CT
# when its card names one, else the file's own VOI window; "custom" is the user's centre and width.
WINDOW_PRESETS: dict[str, tuple[float, float] | None] = {
    "auto": None,
    "lung": (-600.0, 1500.0),
    "soft tissue": (40.0, 400.0),
    "bone": (400.0, 1800.0),
    "brain": (40.0, 80.0),
    "custom": None,
}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".dcm", ".nii", ".nii.gz")


def image_suffix(name: str) -> str:
    """The file name's image suffix, lower case (``.nii.gz`` counts as one), or "" when it has none we read
    by name (extension-less DICOM files are still recognised by their content)."""
    low = name.lower()
    return next((s for s in sorted(IMAGE_SUFFIXES, key=len, reverse=True) if low.endswith(s)), "")


class ImageLoadError(ValueError):
    """The file could not be turned into an image; the message says why."""


@dataclass
class LoadedImage:
    pixels: np.ndarray  # (H, W) float32 in [0, 1] (grey) or (H, W, 3) for colour photographs
    meta: dict[str, Any] = field(default_factory=dict)  # display metadata, never identifiers

    @property
    def grey(self) -> np.ndarray:
        """(H, W) float32: colour images averaged to luminance."""
        p = self.pixels
        return p if p.ndim == 2 else (p @ np.array([0.299, 0.587, 0.114], np.float32)).astype(np.float32)


def _normalise(a: np.ndarray) -> np.ndarray:
    """Min-max to [0, 1]; a constant image becomes all zeros, NaN/Inf are rejected."""
    a = a.astype(np.float32)
    if not np.isfinite(a).all():
        raise ImageLoadError("the image contains NaN or infinite values")
    lo, hi = float(a.min()), float(a.max())
    return np.zeros_like(a) if hi <= lo else (a - lo) / (hi - lo)


def _check_size(h: int, w: int) -> None:
    if h * w > MAX_PIXELS:
        raise ImageLoadError(f"the image is {w}×{h} pixels, more than the {MAX_PIXELS:,} allowed")
    if min(h, w) < 8:
        raise ImageLoadError(f"the image is {w}×{h} pixels, too small to analyse (at least 8×8)")


def _sniff(path: Path, head: bytes) -> str:
    name = path.name.lower()
    if name.endswith((".nii", ".nii.gz")):
        return "nifti"
    if name.endswith(".dcm") or (len(head) >= 132 and head[128:132] == b"DICM"):
        return "dicom"
    return "raster"


def load_image(
    path: str | os.PathLike,
    *,
    frame: int = 0,
    slice_index: int | None = None,
    axis: int = 2,
    window: tuple[float, float] | None = None,
) -> LoadedImage:
    """Read ``path`` into a :class:`LoadedImage`; see the module docstring for formats."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError as err:
        raise ImageLoadError(f"cannot open {path.name}: {err.strerror}") from err
    if not head:
        raise ImageLoadError(f"{path.name} is empty (0 bytes)")
    kind = _sniff(path, head)
    if kind == "raster" and head[:4] == b"PK\x03\x04":
        raise ImageLoadError(f"{path.name} is a ZIP archive, not one image; score archives in the Batch tab")
    try:
        if kind == "dicom":
            return _load_dicom(path, head, frame, window)
        if kind == "nifti":
            return _load_nifti(path, slice_index, axis)
        return _load_raster(path, head)
    except ImageLoadError:
        raise
    except MemoryError as err:
        raise ImageLoadError(f"{path.name} is too large to decode in the memory available") from err
    except Exception as err:  # a decoder failing in a way we did not foresee: still the user's file, not a crash
        raise ImageLoadError(
            f"{path.name} could not be decoded as {kind.upper() if kind != 'raster' else 'an image'} "
            f"({type(err).__name__})"
        ) from err


_SIGNATURES = (
    (b"\x89PNG", "PNG"),
    (b"\xff\xd8", "JPEG"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"GIF8", "GIF"),
    (b"BM", "BMP"),
)


def _load_raster(path: Path, head: bytes) -> LoadedImage:
    pil_limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, MAX_PIXELS  # PIL's own guard, for this call only
    try:
        with warnings.catch_warnings():  # sizes between the limit and PIL's 2x error are refused just below
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path)
        with im:
            _check_size(im.height, im.width)
            fmt, mode = im.format, im.mode
            if getattr(im, "n_frames", 1) > 1:
                im.seek(0)
            im.load()
            if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
                arr = np.asarray(im, dtype=np.float32)
                pixels = arr / 65535.0 if mode.startswith("I;16") else _normalise(arr)
            elif mode in ("L", "1", "LA"):
                pixels = np.asarray(im.convert("L"), dtype=np.float32) / 255.0
            else:  # RGB, RGBA, CMYK, P, YCbCr ...: flatten alpha onto black, keep colour
                rgb = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
                grey = np.ptp(rgb, axis=2).max() < 1e-6
                pixels = rgb[..., 0] if grey else rgb
    except ImageLoadError:
        raise
    except Image.DecompressionBombError as err:
        raise ImageLoadError(
            f"{path.name} declares an image of more than the {MAX_PIXELS:,} pixels allowed; it was not decoded"
        ) from err
    except UnidentifiedImageError as err:
        kind = next((k for sig, k in _SIGNATURES if head.startswith(sig)), None)
        if kind:
            raise ImageLoadError(
                f"{path.name} starts like a {kind} file but is damaged or truncated and cannot be decoded"
            ) from err
        raise ImageLoadError(
            f"{path.name} is not an image file this app can read (PNG, JPEG, TIFF, BMP, DICOM or NIfTI)"
        ) from err
    except (OSError, SyntaxError, ValueError) as err:
        raise ImageLoadError(f"{path.name} is damaged or truncated and cannot be decoded ({err})") from err
    finally:
        Image.MAX_IMAGE_PIXELS = pil_limit
    if not np.isfinite(pixels).all():
        raise ImageLoadError(f"{path.name} contains NaN or infinite values")
    return LoadedImage(
        np.ascontiguousarray(pixels, dtype=np.float32),
        {"format": fmt, "mode": mode, "size": [int(pixels.shape[1]), int(pixels.shape[0])]},
    )


# DICOM attributes safe to show: acquisition facts, nothing that identifies a person.
_DICOM_SAFE = (
    "Modality",
    "BodyPartExamined",
    "PhotometricInterpretation",
    "Rows",
    "Columns",
    "BitsStored",
    "ViewPosition",
    "Manufacturer",
)


def _load_dicom(path: Path, head: bytes, frame: int, window: tuple[float, float] | None) -> LoadedImage:
    import pydicom
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    try:
        ds = pydicom.dcmread(path, force=True)
    except Exception as err:
        raise ImageLoadError(f"{path.name} is not a readable DICOM file ({type(err).__name__})") from err
    if head[128:132] != b"DICM" and "SOPClassUID" not in ds and "PixelData" not in ds:
        raise ImageLoadError(f"{path.name} is not a readable DICOM file (it has no DICOM header)")
    if "PixelData" not in ds and "FloatPixelData" not in ds:
        raise ImageLoadError(
            f"{path.name} is a DICOM file without image data (for example a report or a structured document)"
        )
    rows, cols = int(ds.get("Rows", 0)), int(ds.get("Columns", 0))
    _check_size(rows, cols)
    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    try:
        arr = ds.pixel_array
    except Exception as err:
        if ts is not None and ts.is_transfer_syntax and not ts.is_compressed:
            raise ImageLoadError(f"{path.name}: the pixel data is damaged or truncated ({type(err).__name__})") from err
        name = getattr(ts, "name", str(ts))
        raise ImageLoadError(
            f"{path.name} is stored as {name}, for which no decoder is installed here "
            "(pip install pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg, or python-gdcm)"
        ) from err
    n_frames = int(ds.get("NumberOfFrames", 1) or 1)
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
    if n_frames > 1:
        if not 0 <= frame < n_frames:
            raise ImageLoadError(f"{path.name} has {n_frames} frames; frame {frame} does not exist")
        arr = arr[frame]
    if photometric in ("RGB", "YBR_FULL", "YBR_FULL_422") or arr.ndim == 3:
        if photometric.startswith("YBR"):
            from pydicom.pixels import convert_color_space

            arr = convert_color_space(arr, photometric, "RGB")
        pixels = _normalise(arr.astype(np.float32))
    else:
        values = apply_modality_lut(arr, ds).astype(np.float32)
        if window is not None:
            centre, width = window
            pixels = np.clip((values - (centre - width / 2)) / max(width, 1e-6), 0, 1)
        elif "WindowCenter" in ds or "VOILUTSequence" in ds:
            pixels = _normalise(apply_voi_lut(values, ds, index=0))
        else:
            pixels = _normalise(values)
        if photometric == "MONOCHROME1":
            pixels = 1.0 - pixels
    meta = {"format": "DICOM", "frames": n_frames, "frame": frame if n_frames > 1 else 0}
    if window is not None and not photometric.startswith(("RGB", "YBR")):
        meta["window"] = f"centre {window[0]:g}, width {window[1]:g}"
    try:  # physical size of a pixel, for lesion areas in mm²; projection images give it as ImagerPixelSpacing
        spacing = [float(v) for v in (ds.get("PixelSpacing") or ds.get("ImagerPixelSpacing") or [])]
    except (TypeError, ValueError):
        spacing = []
    if len(spacing) == 2 and all(np.isfinite(spacing)) and min(spacing) > 0:
        meta["pixel_spacing_mm"] = spacing
    for key in _DICOM_SAFE:
        if key in ds:
            meta[key] = str(ds.get(key))
    return LoadedImage(np.ascontiguousarray(pixels, dtype=np.float32), meta)


def _load_nifti(path: Path, slice_index: int | None, axis: int) -> LoadedImage:
    import nibabel as nib

    try:
        img = nib.as_closest_canonical(nib.load(str(path)))
        data = np.asanyarray(img.dataobj, dtype=np.float32)
    except Exception as err:
        raise ImageLoadError(f"{path.name} is not a readable NIfTI file ({type(err).__name__}: {err})") from err
    if data.ndim == 4:
        data = data[..., 0]  # first volume of a time series
    if data.ndim == 2:
        data = data[..., None]
    if data.ndim != 3:
        raise ImageLoadError(f"{path.name} has {data.ndim} dimensions; expected a 2-D, 3-D or 4-D volume")
    if axis not in (0, 1, 2):
        raise ImageLoadError(f"slice axis must be 0, 1 or 2, got {axis}")
    depth = data.shape[axis]
    index = depth // 2 if slice_index is None else slice_index
    if not 0 <= index < depth:
        raise ImageLoadError(f"{path.name} has {depth} slices along axis {axis}; slice {index} does not exist")
    sl = np.take(data, index, axis=axis)
    sl = np.rot90(sl)  # RAS canonical: show anterior/superior up
    _check_size(*sl.shape)
    return LoadedImage(
        np.ascontiguousarray(_normalise(sl)),
        {"format": "NIfTI", "shape": list(data.shape), "axis": axis, "slice": index, "slices": depth},
    )
