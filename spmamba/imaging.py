"""One entry point from a medical or ordinary image file to a float image in [0, 1].

``load_image`` reads PNG/JPEG/TIFF/BMP (8/16-bit, L/RGB/RGBA/I;16/float),
DICOM (modality LUT, then VOI LUT or window centre/width; MONOCHROME1 inverted;
multi-frame) and NIfTI (reoriented to the closest canonical orientation; a
slice along an axis, 3-D and 4-D). Every failure raises ``ImageLoadError``
with a sentence a clinician can act on. Metadata never holds patient identifiers.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

MAX_PIXELS = 80_000_000  # refuse decompression bombs before decoding
# A raster image longer than this on a side is box-reduced by an integer factor as it is decoded: the models
# read at most 256² and the page shows about 1,000 px, while an 80-Mpx colour image as float32 would hold ~1 GB.
MAX_SIDE = 2048
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
NIFTI_SUFFIXES = (".nii", ".nii.gz")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".dcm", *NIFTI_SUFFIXES)


def is_nifti(name: str | os.PathLike) -> bool:
    return str(name).lower().endswith(NIFTI_SUFFIXES)


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
    """Min-max to [0, 1]; a constant image becomes all zeros, NaN/Inf are rejected.

    Computed in float64: with float32 values near ±3e38, ``hi - lo`` overflows to inf and every pixel
    would become NaN (and every score with it)."""
    a = np.asarray(a, dtype=np.float64)
    if not np.isfinite(a).all():
        raise ImageLoadError("the image contains NaN or infinite values")
    lo, hi = float(a.min()), float(a.max())
    return np.zeros(a.shape, np.float32) if hi <= lo else ((a - lo) / (hi - lo)).astype(np.float32)


MAX_ASPECT = 20  # longer side / shorter side: beyond it the square model input is a smear


def _check_size(h: int, w: int) -> None:
    if h <= 0 or w <= 0:
        raise ImageLoadError("the file declares no image size (rows and columns are missing or zero)")
    if h * w > MAX_PIXELS:
        raise ImageLoadError(f"the image is {w}×{h} pixels, more than the {MAX_PIXELS:,} pixels allowed")
    if min(h, w) < 8:
        raise ImageLoadError(f"the image is {w}×{h} pixels, too small to analyse (at least 8×8)")
    if max(h, w) > MAX_ASPECT * min(h, w):
        raise ImageLoadError(
            f"the image is {w}×{h} pixels, too elongated to analyse (the longer side may be at most "
            f"{MAX_ASPECT} times the shorter)"
        )


NEAR_BLANK = 0.01  # below this share of pixels holding signal, an image is nearly blank


def signal_fraction(pixels: np.ndarray) -> float:
    """The share of pixels that differ by more than 5% of the range from the background (the median of the
    image's border): ~0.7 or more on a chest X-ray, under 1% on the empty end slices of a brain MRI."""
    grey = pixels if pixels.ndim == 2 else pixels.mean(axis=-1)
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    return float((np.abs(grey - np.median(border)) > 0.05).mean())


def near_blank_note(pixels: np.ndarray) -> str | None:
    """The caution a nearly blank image or slice carries: scored, but on very little."""
    share = signal_fraction(pixels)
    if share >= NEAR_BLANK:
        return None
    return f"Nearly blank: only {100 * share:.1f}% of the pixels hold signal, so the score rests on very little."


def is_zip(head: bytes) -> bool:
    """Whether a file is a ZIP archive by its first bytes: the one test Analyse, Batch and the API share, so a
    PNG with an archive appended is a PNG everywhere."""
    return head[:4] == b"PK\x03\x04"


_PLAIN_REASONS = (  # fragments of decoders' messages, and what they mean to the person who sent the file
    (("MAX_TEXT_CHUNK", "text chunk"), "its text metadata is larger than allowed"),
    (("truncated", "not enough data", "EOF", "end of file", "broken data stream", "ended"), "the file ends early"),
    (("checksum", "CRC", "crc"), "a checksum does not match"),
)


def _plain_reason(err: BaseException) -> str:
    """What a decoder's exception means in plain words, as ``" (…)"``, or nothing: its own text (library
    wording, class names, server paths) never reaches the person who sent the file."""
    text = str(err)
    reason = next((plain for fragments, plain in _PLAIN_REASONS if any(f in text for f in fragments)), None)
    return f" ({reason})" if reason else ""


def is_dicom(path: str | os.PathLike) -> bool:
    """Whether the loaders read ``path`` as DICOM: by its ``.dcm`` name or its preamble (extension-less exports)."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            return _sniff(path, fh.read(132)) == "dicom"
    except OSError:
        return False


def _sniff(path: Path, head: bytes) -> str:
    name = path.name.lower()
    if name.endswith(NIFTI_SUFFIXES):
        return "nifti"
    if name.endswith(".dcm") or (len(head) >= 132 and head[128:132] == b"DICM"):
        return "dicom"
    return "raster"


@contextlib.contextmanager
def quiet_headers():
    """pydicom's warnings quote header values (an invalid number can be a record number planted in a numeric
    tag): inside this block none is shown or logged, so no header value reaches the server's log."""
    log = logging.getLogger("pydicom")
    level = log.level
    log.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        log.setLevel(level)


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
    if kind == "raster" and is_zip(head):
        raise ImageLoadError(f"{path.name} is a ZIP archive, not one image; score archives in the Batch tab")
    try:
        if kind == "dicom":
            with quiet_headers():
                return _load_dicom(path, head, frame, window)
        if kind == "nifti":
            return _load_nifti(path, slice_index, axis)
        return _load_raster(path, head, frame)
    except ImageLoadError:
        raise
    except MemoryError as err:
        raise ImageLoadError(f"{path.name} is too large to decode in the memory available") from err
    except Exception as err:  # a decoder failing in a way we did not foresee: still the user's file, not a crash
        what = {"dicom": "a DICOM file", "nifti": "a NIfTI file"}.get(kind, "an image")
        raise ImageLoadError(
            f"{path.name} could not be decoded as {what}: it is damaged, or not what its name says{_plain_reason(err)}"
        ) from err


_SIGNATURES = (
    (b"\x89PNG", "PNG"),
    (b"\xff\xd8", "JPEG"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"GIF8", "GIF"),
    (b"BM", "BMP"),
)


def _png_significant_bits(path: Path) -> int | None:
    """The sBIT chunk of a greyscale PNG (how many of its 16 bits hold data), which Pillow does not expose."""
    with open(path, "rb") as fh:
        if fh.read(8) != b"\x89PNG\r\n\x1a\n":
            return None
        for _ in range(64):  # sBIT must come before the first IDAT
            head = fh.read(8)
            if len(head) < 8:
                return None
            length, kind = int.from_bytes(head[:4], "big"), head[4:]
            if kind == b"sBIT":
                data = fh.read(length)
                return data[0] if length >= 1 and 1 <= data[0] <= 16 else None
            if kind == b"IDAT":
                return None
            fh.seek(length + 4, 1)
    return None


def _sixteen_bit(arr: np.ndarray, peak: float, path: Path, fmt: str | None) -> tuple[np.ndarray, str]:
    """A 16-bit greyscale image in [0, 1], scaled by the bits that hold data: the PNG's sBIT when it says,
    else the bit depth the values need (``peak``: the file's largest value, read before any reduction; 12-bit
    data stored in 16 bits is scaled by 4095, not 65535, so it reads as the same image its 8-bit or DICOM copy
    does)."""
    sbit = _png_significant_bits(path) if fmt == "PNG" else None
    bits = sbit or max(8, int(np.ceil(np.log2(peak + 1))) if peak > 0 else 8)
    how = f"{bits}-bit values in a 16-bit file ({'from the PNG sBIT chunk' if sbit else 'from the data range'})"
    arr /= float(2**bits - 1)
    return np.clip(arr, 0, 1, out=arr), how


def _unit_float(a: np.ndarray) -> np.ndarray:
    """8-bit pixels as float32 in [0, 1], scaled in place: a large image is copied once, not three times."""
    out = a.astype(np.float32)
    out /= 255.0
    return out


def _load_raster(path: Path, head: bytes, frame: int = 0) -> LoadedImage:
    pil_limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, MAX_PIXELS  # PIL's own guard, for this call only
    extra: dict[str, Any] = {}
    try:
        with warnings.catch_warnings():  # sizes between the limit and PIL's 2x error are refused just below
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path)
        with im:
            _check_size(im.height, im.width)
            fmt, mode = im.format, im.mode
            pages = getattr(im, "n_frames", 1)
            if pages > 1:  # multi-page TIFF: pages are frames, chosen like a multi-frame DICOM's
                if not 0 <= frame < pages:
                    raise ImageLoadError(f"{path.name} has {pages} pages; page {frame + 1} does not exist")
                im.seek(frame)
                _check_size(im.height, im.width)
                mode = im.mode
                extra.update(frames=pages, frame=frame)
            size = [im.width, im.height]
            if fmt == "JPEG" and max(size) > MAX_SIDE:  # decode at 1/2, 1/4 or 1/8 scale to begin with
                im.draft(mode, (im.width * MAX_SIDE // max(size), im.height * MAX_SIDE // max(size)))
            im.load()
            peak = float(im.getextrema()[1]) if mode in ("I;16", "I;16B", "I;16L") else 0.0
            im = _reduced(im)
            if im.size != tuple(size):
                extra["reduced"] = round(max(size) / max(im.size), 2)
            if mode in ("I;16", "I;16B", "I;16L"):
                pixels, extra["scaling"] = _sixteen_bit(np.array(im, dtype=np.float32), peak, path, fmt)
            elif mode in ("I", "F"):
                pixels = _normalise(np.asarray(im, dtype=np.float64))
            elif mode in ("L", "1", "LA"):
                pixels = _unit_float(np.asarray(im.convert("L")))
            else:  # RGB, RGBA, CMYK, P, YCbCr ...: flatten alpha onto black, keep colour
                rgb = np.asarray(im if im.mode == "RGB" else im.convert("RGB"))
                grey = (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all()
                pixels = _unit_float(rgb[..., 0] if grey else rgb)
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
        raise ImageLoadError(f"{path.name} is damaged or truncated and cannot be decoded{_plain_reason(err)}") from err
    finally:
        Image.MAX_IMAGE_PIXELS = pil_limit
    if not np.isfinite(pixels).all():
        raise ImageLoadError(f"{path.name} contains NaN or infinite values")
    return LoadedImage(
        np.ascontiguousarray(pixels, dtype=np.float32),
        {"format": fmt, "mode": mode, "size": size, **extra},
    )


def _reduced(im: Image.Image) -> Image.Image:
    """``im`` box-reduced by the smallest integer factor that brings its longer side to ``MAX_SIDE`` or below,
    in a mode PIL can reduce; the averaging is the anti-aliasing any later resize would do."""
    factor = -(-max(im.size) // MAX_SIDE)
    if factor <= 1:
        return im
    if im.mode not in ("L", "RGB", "RGBA", "LA", "I", "F", "CMYK"):
        im = im.convert({"1": "L", "I;16": "I", "I;16B": "I", "I;16L": "I"}.get(im.mode, "RGB"))
    return im.reduce(factor)


# DICOM attributes safe to show: acquisition facts, nothing that identifies a person.
_DICOM_SAFE = (
    "Modality",
    "BodyPartExamined",
    "PhotometricInterpretation",
    "Rows",
    "Columns",
    "BitsStored",
    "ViewPosition",
)


MAX_DECODED_BYTES = 1 << 30  # a file may declare at most 1 GiB of pixel data (all frames or voxels together)


def _size(n: int) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def _dicom_pixel_bytes(ds) -> int:
    """Bytes the pixel data of a DICOM dataset takes uncompressed, all frames together, from its header."""
    rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    frames, samples = int(ds.get("NumberOfFrames", 1) or 1), int(ds.get("SamplesPerPixel", 1) or 1)
    return frames * rows * cols * samples * max(int(ds.get("BitsAllocated", 16) or 16), 8) // 8


def nifti_voxel_bytes(img, volumes: bool = True) -> int:
    """Bytes a NIfTI image's voxels take in memory: all volumes, or (``volumes=False``) the first three axes."""
    shape = img.shape if volumes else img.shape[:3]
    return int(np.prod(shape, dtype=np.int64)) * img.header.get_data_dtype().itemsize


def declared_bytes(path: str | os.PathLike) -> int | None:
    """What a file says its image data takes once decoded, from headers only (a deflated DICOM: the larger of
    that and what its dataset inflates to). For reports on how close a file comes to ``MAX_DECODED_BYTES``;
    None when the file is not one the loader reads."""
    path = Path(path)
    with open(path, "rb") as fh:
        head = fh.read(132)
    if not head:
        return None
    kind = _sniff(path, head)
    try:
        if kind == "dicom":
            inflated = _inflated_size(path) or 0
            if inflated > MAX_DECODED_BYTES // 4:  # a header read would inflate it whole (dicom_header)
                return inflated
            return max(_dicom_pixel_bytes(dicom_header(path)), inflated)
        if kind == "nifti":
            import nibabel as nib

            return nifti_voxel_bytes(nib.load(str(path)))
        with Image.open(path) as im:
            per_band = {"I;16": 2, "I;16B": 2, "I;16L": 2, "I": 4, "F": 4, "1": 1}.get(im.mode, 1)
            return im.width * im.height * len(im.getbands()) * per_band * getattr(im, "n_frames", 1)
    except Exception:
        return None


def _check_declared(path: Path, declared: int) -> None:
    if declared > MAX_DECODED_BYTES:
        raise ImageLoadError(
            f"{path.name} declares {_size(declared)} of image data, more than the {_size(MAX_DECODED_BYTES)} "
            "allowed; it was not decoded"
        )


def _inflated_size(path: Path, bound: int | None = None) -> int | None:
    """The size a deflated DICOM's dataset inflates to, counted by a decompressor that stops just past
    ``bound`` (default ``MAX_DECODED_BYTES``), so a bomb is never inflated further than the caller needs;
    None for any other DICOM."""
    bound = MAX_DECODED_BYTES if bound is None else bound
    import zlib

    from pydicom.filereader import read_file_meta_info
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    try:
        meta = read_file_meta_info(path)
    except Exception:
        return None  # no readable file meta: dcmread reports the problem
    group_length = meta.get("FileMetaInformationGroupLength")
    if meta.get("TransferSyntaxUID") != DeflatedExplicitVRLittleEndian or group_length is None:
        return None
    with open(path, "rb") as fh:
        fh.seek(128 + 4 + 12 + int(group_length))  # preamble, "DICM", the group-length element, the meta group
        body = fh.read()
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    produced = 0
    try:
        for i in range(0, len(body), 1 << 16):
            produced += len(inflater.decompress(body[i : i + (1 << 16)], bound + 1 - produced))
            if produced > bound:
                break
    except zlib.error as err:
        raise ImageLoadError(f"{path.name} is a deflated DICOM whose compressed data is damaged") from err
    return produced


def _check_deflated(path: Path) -> None:
    """A deflated DICOM is inflated whole when read, and its pixel data then copied out of the inflated
    buffer, so it needs about twice its inflated size at once: it may inflate to a quarter of the limit
    (256 MiB), counted by a bounded decompressor instead of trusting the header."""
    limit = MAX_DECODED_BYTES // 4
    size = _inflated_size(path, limit)
    if size is not None and size > limit:
        raise ImageLoadError(
            f"{path.name} is a deflated DICOM that inflates to more than the {_size(limit)} "
            "allowed for deflated files (they are inflated whole); it was not decoded"
        )


def dicom_header(path: str | os.PathLike):
    """A DICOM file's header without its pixel data, warnings silenced. pydicom inflates a deflated file whole
    even to read its header, so the inflated size is checked first, as before decoding."""
    import pydicom

    _check_deflated(Path(path))
    with quiet_headers():
        return pydicom.dcmread(path, stop_before_pixels=True, force=True)


_CODE_STRING = re.compile(r"^[A-Z0-9 _]{1,16}$")  # DICOM CS values: BodyPartExamined, ViewPosition, Modality


def _safe_tag(key: str, value: str) -> str | None:
    """A header value fit to show: code strings must be DICOM code strings; free text (Manufacturer) keeps
    letters, digits and plain punctuation only, shortened. Anything else is dropped, so text planted in a
    header cannot reach the page or the API as markup."""
    value = value.strip()
    if key in ("Modality", "BodyPartExamined", "ViewPosition", "PhotometricInterpretation"):
        return value if _CODE_STRING.match(value) else None
    if key in ("Rows", "Columns", "BitsStored"):
        return value if value.isdigit() else None
    cleaned = re.sub(r"[^A-Za-z0-9 .,_()/-]", "", value)[:40].strip()
    return cleaned or None


def _load_dicom(path: Path, head: bytes, frame: int, window: tuple[float, float] | None) -> LoadedImage:
    ds, ts, n_frames, notes = _read_dicom(path, head)
    if n_frames > 1 and not 0 <= frame < n_frames:
        raise ImageLoadError(f"{path.name} has {n_frames} frames; frame {frame} does not exist")
    return _dicom_frame(path, ds, ts, n_frames, frame, window, notes)


def load_dicom_frames(path: str | os.PathLike, window: tuple[float, float] | None = None) -> list[LoadedImage]:
    """Every frame of a multi-frame DICOM, the file read (and a deflated one inflated) once, not once a frame."""
    path = Path(path)
    with open(path, "rb") as fh:
        head = fh.read(132)
    try:
        with quiet_headers():
            ds, ts, n_frames, notes = _read_dicom(path, head)
            return [_dicom_frame(path, ds, ts, n_frames, i, window, list(notes)) for i in range(n_frames)]
    except ImageLoadError:
        raise
    except MemoryError as err:
        raise ImageLoadError(f"{path.name} is too large to decode in the memory available") from err
    except Exception as err:  # as load_image: the user's file, not a crash
        raise ImageLoadError(
            f"{path.name} could not be decoded as a DICOM file: it is damaged, or not what its name says"
            f"{_plain_reason(err)}"
        ) from err


def _read_dicom(path: Path, head: bytes):
    """The checked dataset of a DICOM file: (dataset, transfer syntax, frames, notes)."""
    import pydicom

    _check_deflated(path)
    try:
        ds = pydicom.dcmread(path, force=True)
    except Exception as err:
        raise ImageLoadError(f"{path.name} is not a readable DICOM file (its header is damaged)") from err
    if head[128:132] != b"DICM" and "SOPClassUID" not in ds and "PixelData" not in ds:
        raise ImageLoadError(f"{path.name} is not a readable DICOM file (it has no DICOM header)")
    if "PixelData" not in ds and "FloatPixelData" not in ds:
        raise ImageLoadError(
            f"{path.name} is a DICOM file without image data (for example a report or a structured document)"
        )
    rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    if not rows or not cols:
        raise ImageLoadError(f"{path.name} is a DICOM file whose header does not give the image size (Rows/Columns)")
    _check_size(rows, cols)
    n_frames = int(ds.get("NumberOfFrames", 1) or 1)
    _check_declared(path, _dicom_pixel_bytes(ds))
    notes = []
    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if ts is None and "PixelData" in ds:
        if len(ds.PixelData) != _dicom_pixel_bytes(ds):
            raise ImageLoadError(
                f"{path.name} does not say how its pixels are encoded (no Transfer Syntax UID) and they are "
                "not stored uncompressed"
            )
        ds.file_meta = getattr(ds, "file_meta", pydicom.dataset.FileMetaDataset())
        ds.file_meta.TransferSyntaxUID = (
            pydicom.uid.ImplicitVRLittleEndian if ds.is_implicit_VR else pydicom.uid.ExplicitVRLittleEndian
        )
        notes.append("no transfer syntax in the file: read as uncompressed little-endian")
        ts = ds.file_meta.TransferSyntaxUID
    return ds, ts, n_frames, notes


def _dicom_frame(path: Path, ds, ts, n_frames: int, frame: int, window, notes: list[str]) -> LoadedImage:
    """Frame ``frame`` of a read dataset as an image in [0, 1]: modality LUT, then the window asked for or the
    file's VOI; MONOCHROME1 inverted; colour kept."""
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    try:
        ds.pixel_array_options(index=frame if n_frames > 1 else None)  # decode the one frame shown, not all
        arr = ds.pixel_array
    except Exception as err:
        if ts is not None and ts.is_transfer_syntax and not ts.is_compressed:
            raise ImageLoadError(f"{path.name}: the pixel data is damaged or truncated{_plain_reason(err)}") from err
        name = getattr(ts, "name", str(ts))
        if _decoder_available(ts):  # a decoder is there and refused this file's data
            raise ImageLoadError(
                f"{path.name} is stored as {name}, and its compressed pixel data could not be decoded: "
                "the file may be damaged or written in a variant the decoders do not read"
            ) from err
        raise ImageLoadError(
            f"{path.name} is stored as {name}, for which no decoder is installed here "
            "(pip install pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg, or python-gdcm)"
        ) from err
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
    if photometric == "PALETTE COLOR":  # indices into the file's colour table, not intensities
        from pydicom.pixels import apply_color_lut

        arr = apply_color_lut(arr, ds)
    if photometric.startswith(("RGB", "YBR", "PALETTE")) or arr.ndim == 3:
        pixels = _normalise(arr)  # pydicom has already converted YBR (and JPEG 2000's RCT/ICT) to RGB
    else:
        values = apply_modality_lut(arr, ds).astype(np.float64)
        if window is not None:
            centre, width = window
            pixels = np.clip((values - (centre - width / 2)) / max(width, 1e-6), 0, 1)
        elif "WindowCenter" in ds or "VOILUTSequence" in ds:
            try:
                pixels = _normalise(apply_voi_lut(values, ds, index=0))
            except (ValueError, TypeError, ZeroDivisionError):
                pixels = _normalise(values)
                notes.append("the file's own window is unusable (for example width 0): shown over the data range")
        else:
            pixels = _normalise(values)
        if photometric == "MONOCHROME1":
            pixels = 1.0 - pixels
    meta: dict[str, Any] = {"format": "DICOM", "frames": n_frames, "frame": frame if n_frames > 1 else 0}
    if window is not None and not photometric.startswith(("RGB", "YBR", "PALETTE")):
        meta["window"] = f"centre {window[0]:g}, width {window[1]:g}"
    if notes:
        meta["notes"] = notes
    try:  # physical size of a pixel, for lesion areas in mm²; projection images give it as ImagerPixelSpacing
        spacing = [float(v) for v in (ds.get("PixelSpacing") or ds.get("ImagerPixelSpacing") or [])]
    except (TypeError, ValueError):
        spacing = []
    if len(spacing) == 2 and all(np.isfinite(spacing)) and min(spacing) > 0:
        meta["pixel_spacing_mm"] = spacing
    for key in _DICOM_SAFE:
        if key in ds and (value := _safe_tag(key, str(ds.get(key)))) is not None:
            meta[key] = value
    return LoadedImage(np.ascontiguousarray(pixels, dtype=np.float32), meta)


def _decoder_available(ts) -> bool:
    """Whether pydicom has a working decoder for transfer syntax ``ts``."""
    from pydicom.pixels import get_decoder

    try:
        return bool(get_decoder(ts).is_available)
    except Exception:  # an unknown or private transfer syntax: no decoder
        return False


def open_nifti(path: Path, volumes: bool = True):
    """A NIfTI-1/2 image volume whose header passed every check the loaders share (readable, a volume, grey
    voxels of a real type, 2 to 4 dimensions, a declared size within the limits), not yet decoded: the one
    gate of the single-slice loader and the volume loader alike."""
    import nibabel as nib

    try:
        img = nib.load(str(path))
    except Exception as err:
        raise ImageLoadError(
            f"{path.name} is not a readable NIfTI file (its header is damaged or the file is cut short)"
        ) from err
    if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
        raise ImageLoadError(
            f"{path.name} is a {type(img).__name__.replace('Image', '')} file (surface or grayordinate data), "
            "not an image volume; only NIfTI-1/2 volumes can be analysed"
        )
    header_dtype = img.header.get_data_dtype()
    if header_dtype.fields is not None or header_dtype.kind not in "biuf":
        kind = "colour (RGB)" if header_dtype.fields else {"c": "complex-valued"}.get(header_dtype.kind, "non-numeric")
        raise ImageLoadError(
            f"{path.name} stores {kind} voxels; only greyscale volumes can be analysed (convert it to a single "
            "channel of real numbers)"
        )
    if len(img.shape) not in (2, 3, 4):
        raise ImageLoadError(f"{path.name} has {len(img.shape)} dimensions; expected a 2-D, 3-D or 4-D volume")
    _check_declared(path, nifti_voxel_bytes(img, volumes))
    return img


def _load_nifti(path: Path, slice_index: int | None, axis: int) -> LoadedImage:
    """One slice in the closest canonical (RAS) orientation, read from the file without loading the volume:
    the declared size is checked first, then only the slab holding the slice is decoded."""
    from nibabel.orientations import apply_orientation, io_orientation

    img = open_nifti(path)
    shape = img.shape
    if axis not in (0, 1, 2):
        raise ImageLoadError(f"slice axis must be 0, 1 or 2, got {axis}")
    spatial = tuple(shape[:3]) + (1,) * (3 - len(shape[:3]))
    ornt = io_orientation(img.affine if len(shape) >= 3 else np.eye(4))
    source = int(np.flatnonzero(ornt[:, 0] == axis)[0])  # the file's axis that becomes canonical ``axis``
    depth = spatial[source]
    index = depth // 2 if slice_index is None else slice_index
    if not 0 <= index < depth:
        raise ImageLoadError(f"{path.name} has {depth} slices along axis {axis}; slice {index} does not exist")
    stored = depth - 1 - index if ornt[source, 1] < 0 else index
    slicer = [slice(None)] * 3
    slicer[source] = slice(stored, stored + 1)
    try:
        proxy = img.dataobj if len(shape) >= 3 else np.asanyarray(img.dataobj)[..., None]
        slab = np.asarray(proxy[tuple(slicer) + ((0,) if len(shape) == 4 else ())], dtype=np.float64)
    except Exception as err:
        raise ImageLoadError(f"{path.name}: the image data cannot be read (the file is damaged or cut short)") from err
    sl = np.take(apply_orientation(slab, ornt), 0, axis=axis)
    sl = np.rot90(sl)  # RAS canonical: show anterior/superior up
    _check_size(*sl.shape)
    return LoadedImage(
        np.ascontiguousarray(_normalise(sl)),
        {"format": "NIfTI", "shape": [int(d) for d in spatial], "axis": axis, "slice": index, "slices": depth},
    )
