"""A corpus of malformed and awkward inputs, generated on the fly (no committed binaries).

Each :class:`Case` names a file and what the app must answer: ``expect`` is a fragment of the
specific error message, or ``None`` when the file is valid and must be analysed. Used by
tests/test_hardening.py and bench/bench_hardening.py.
"""

from __future__ import annotations

import gzip
import io
import math
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

PATIENT = {"PatientName": "Doe^Jane^Quintessa", "PatientID": "PID-7731-XQ", "PatientBirthDate": "19470312"}


@dataclass(frozen=True)
class Case:
    name: str
    path: Path
    expect: str | None  # a fragment of the error message; None: valid, must be analysed
    family: str = "single files"


def write_dicom(path: Path, pixels: np.ndarray, photometric: str = "MONOCHROME2", **extra) -> Path:
    """A minimal uncompressed DICOM (DX) with ``pixels`` as 16-bit data; ``extra`` sets more attributes."""
    ds = pydicom.Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
    ds.Modality = "DX"
    ds.PhotometricInterpretation = photometric
    ds.Rows, ds.Columns = pixels.shape[-2:]
    ds.SamplesPerPixel, ds.BitsAllocated, ds.BitsStored, ds.HighBit = 1, 16, 12, 11
    ds.PixelRepresentation = 0
    for k, v in extra.items():
        setattr(ds, k, v)
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def _png_bytes(a: np.ndarray, mode: str | None = None) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a, mode).save(buf, "PNG") if mode else Image.fromarray(a).save(buf, "PNG")
    return buf.getvalue()


def _texture(h: int = 96, w: int = 96) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    return (127 + 100 * np.sin(xx / 7) * np.cos(yy / 5)).astype(np.uint8)


def _nifti(path: Path, data: np.ndarray) -> Path:
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(path))
    return path


def build(folder: Path) -> list[Case]:
    """Write every case under ``folder`` and return them."""
    folder.mkdir(parents=True, exist_ok=True)
    cases: list[Case] = []

    def add(name: str, filename: str, data: bytes | None, expect: str | None, writer=None):
        path = folder / filename
        if writer is not None:
            writer(path)
        else:
            path.write_bytes(data)
        cases.append(Case(name, path, expect))

    png = _png_bytes(_texture())
    jpg = io.BytesIO()
    Image.fromarray(_texture()).convert("RGB").save(jpg, "JPEG", quality=90)
    jpg = jpg.getvalue()
    ct = Path(get_testdata_file("CT_small.dcm")).read_bytes()

    # --- empty, truncated, corrupt, wrong type
    add("zero-byte PNG", "empty.png", b"", "is empty (0 bytes)")
    add("zero-byte DICOM", "empty.dcm", b"", "is empty (0 bytes)")
    add("PNG signature only", "sig.png", png[:8], "damaged or truncated")
    add("PNG truncated in the header", "trunc100.png", png[:100], "damaged or truncated")
    add("PNG truncated in the data", "trunchalf.png", png[: len(png) // 2], "damaged or truncated")
    bad = bytearray(png)
    bad[len(png) // 2 : len(png) // 2 + 64] = bytes(64)
    add("PNG with a corrupted data chunk", "corrupt.png", bytes(bad), "damaged or truncated")
    add("JPEG truncated in the data", "trunc.jpg", jpg[: len(jpg) // 2], "damaged or truncated")
    add("JPEG header only", "head.jpg", jpg[:20], "damaged or truncated")
    add("JPEG start marker then garbage", "garbage.jpg", b"\xff\xd8" + bytes(range(256)) * 8, "damaged or truncated")
    add("text renamed .dcm", "notes.dcm", b"Patient doing well.\n" * 20, "not a readable DICOM")
    add("text renamed .png", "notes.png", b"hello world\n" * 20, "not an image file")
    add("text renamed .nii", "notes.nii", b"hello world\n" * 40, "not a readable NIfTI")
    add("random bytes .jpg", "random.jpg", np.random.default_rng(0).bytes(4096), "not an image file")
    add("HTML page renamed .jpg", "page.jpg", b"<html><body>404</body></html>", "not an image file")
    add("PDF document", "report.pdf", b"%PDF-1.4\n1 0 obj << >> endobj\ntrailer\n%%EOF", "not an image file")
    add("extension-less text file", "README", b"just text, no image\n" * 10, "not an image file")
    add(
        "ZIP given as one image",
        "study.zip",
        None,
        "ZIP archive",
        writer=lambda p: zipfile.ZipFile(p, "w").writestr("a.png", png),
    )
    add("BMP truncated", "trunc.bmp", _bmp_bytes()[:200], "damaged or truncated")
    add("TIFF truncated", "trunc.tif", _tiff_bytes(np.zeros((64, 64), np.uint16) + 7)[:300], "damaged or truncated")

    # --- DICOM variants
    add(
        "DICOM without pixel data (RT plan)",
        "rtplan.dcm",
        Path(get_testdata_file("rtplan.dcm")).read_bytes(),
        "without image data",
    )
    add(
        "DICOM with an unsupported transfer syntax",
        "privatets.dcm",
        None,
        "no decoder is installed",
        writer=lambda p: _retagged(ct, p, "1.2.840.10008.1.2.4.100"),
    )
    add("DICOM with truncated pixel data", "cut.dcm", ct[: len(ct) - 4000], "pixel data is damaged or truncated")
    add(
        "DICOM declaring 0 rows",
        "zero-rows.dcm",
        None,
        "does not give the image size",
        writer=lambda p: write_dicom(p, np.zeros((64, 64)), Rows=0),
    )
    add(
        "DICOM declaring 65535×65535 pixels",
        "huge.dcm",
        None,
        "more than the",
        writer=lambda p: write_dicom(p, np.zeros((64, 64)), Rows=65535, Columns=65535),
    )
    add("constant DICOM", "flat.dcm", None, "blank", writer=lambda p: write_dicom(p, np.full((64, 64), 500)))
    frames = np.stack([_texture(64, 64).astype(np.uint16) * (i + 1) for i in range(3)])
    add("multi-frame DICOM", "multiframe.dcm", None, None, writer=lambda p: write_dicom(p, frames, NumberOfFrames=3))
    add(
        "extension-less multi-frame DICOM",
        "IM000001",
        None,
        None,
        writer=lambda p: write_dicom(p, frames, NumberOfFrames=3),
    )
    add(
        "MONOCHROME1 DICOM",
        "mono1.dcm",
        None,
        None,
        writer=lambda p: write_dicom(p, _texture(64, 64).astype(np.uint16) * 10, "MONOCHROME1"),
    )
    add(
        "DICOM with patient identifiers",
        "identified.dcm",
        None,
        None,
        writer=lambda p: write_dicom(p, _texture(64, 64).astype(np.uint16) * 10, **PATIENT),
    )
    add("CT DICOM (pydicom sample)", "ct.dcm", ct, None)

    # --- raster variants
    add("16-bit TIFF", "sixteen.tif", _tiff_bytes((_texture().astype(np.uint16) * 257)), None)
    add("float32 TIFF", "float.tif", _tiff_bytes(_texture().astype(np.float32) / 7.0), None)
    nan = _texture().astype(np.float32)
    nan[10:20, 10:20] = np.nan
    add("float TIFF with NaN", "nan.tif", _tiff_bytes(nan), "NaN or infinite")
    add("16-bit PNG", "sixteen.png", _png_bytes(_texture().astype(np.uint16) * 257), None)
    add("RGBA PNG", "rgba.png", _png_bytes(np.dstack([_texture()] * 3 + [np.full((96, 96), 128, np.uint8)])), None)
    add(
        "CMYK JPEG",
        "cmyk.jpg",
        None,
        None,
        writer=lambda p: Image.fromarray(_texture()).convert("CMYK").save(p, "JPEG"),
    )
    add(
        "palette PNG",
        "palette.png",
        None,
        None,
        writer=lambda p: Image.fromarray(_texture()).convert("RGB").convert("P", palette=Image.ADAPTIVE).save(p),
    )
    add("1-bit PNG", "onebit.png", None, None, writer=lambda p: Image.fromarray(_texture() > 127).save(p))
    add(
        "animated GIF",
        "anim.gif",
        None,
        None,
        writer=lambda p: Image.fromarray(_texture()).save(
            p, save_all=True, append_images=[Image.fromarray(255 - _texture())]
        ),
    )
    add("1×1 PNG", "one.png", _png_bytes(np.zeros((1, 1), np.uint8)), "too small")
    add("3×100000 PNG", "strip.png", _png_bytes(np.zeros((100000, 3), np.uint8)), "too small")
    add("decompression bomb (PNG declaring 100000×100000)", "bomb.png", _png_bomb(100000, 100000), "pixels allowed")
    add("constant PNG", "flat.png", _png_bytes(np.full((64, 64), 77, np.uint8)), "blank")

    # --- NIfTI variants
    vol = np.random.default_rng(1).random((32, 32, 12)).astype(np.float32)
    add("4-D NIfTI", "fmri.nii.gz", None, None, writer=lambda p: _nifti(p, np.stack([vol, vol * 2], -1)))
    add(
        "NIfTI with NaN",
        "nan.nii",
        None,
        "NaN or infinite",
        writer=lambda p: _nifti(p, np.where(vol > 0.5, np.nan, vol)),
    )
    add(
        "NIfTI with Inf",
        "inf.nii",
        None,
        "NaN or infinite",
        writer=lambda p: _nifti(p, np.where(vol > 0.9, np.inf, vol)),
    )
    add("NIfTI slice 4×4", "tiny.nii", None, "too small", writer=lambda p: _nifti(p, np.ones((4, 4, 3), np.float32)))
    add("5-D NIfTI", "five.nii", None, "5 dimensions", writer=lambda p: _nifti(p, np.ones((8, 8, 8, 2, 2), np.float32)))
    add(
        "NIfTI gzip truncated",
        "cut.nii.gz",
        None,
        "not a readable NIfTI",
        writer=lambda p: p.write_bytes(gzip.compress(_nifti_bytes(vol))[:500]),
    )
    add("constant NIfTI", "flat.nii", None, "blank", writer=lambda p: _nifti(p, np.zeros((16, 16, 4), np.float32)))
    # --- decoders whose own messages once reached the user ("Whoops, not enough data in file", "Decompressed data
    # too large for PngImagePlugin.MAX_TEXT_CHUNK")
    add("NIfTI cut short in its voxels", "short.nii", _nifti_bytes(vol)[:600], "cannot be read (the file is damaged")
    add("PNG with a 2 MB compressed text chunk", "bigtext.png", _with_big_text(png), "text metadata is larger")
    return cases


def _with_big_text(png: bytes) -> bytes:
    """A PNG with a zTXt chunk that inflates past Pillow's text limit, placed before the image data."""
    body = b"comment\0\0" + zlib.compress(b" " * (2 << 20))
    chunk = len(body).to_bytes(4, "big") + b"zTXt" + body + zlib.crc32(b"zTXt" + body).to_bytes(4, "big")
    return png[:33] + chunk + png[33:]


def colour_dicom(path: Path, rgb: np.ndarray, photometric: str) -> Path:
    """An uncompressed colour DICOM (US) holding ``rgb`` stored in ``photometric``'s colour space."""
    from pydicom.pixels import convert_color_space

    ds = pydicom.Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
    ds.Modality, ds.PhotometricInterpretation = "US", photometric
    ds.Rows, ds.Columns = rgb.shape[:2]
    ds.SamplesPerPixel, ds.PlanarConfiguration = 3, 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    stored = rgb if photometric == "RGB" else convert_color_space(rgb, "RGB", photometric)
    ds.PixelData = np.ascontiguousarray(stored, np.uint8).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def with_sbit(png: bytes, bits: int) -> bytes:
    """Insert an sBIT chunk after IHDR (Pillow reads it but cannot write it)."""
    import struct
    import zlib

    chunk = b"sBIT" + bytes([bits])
    sbit = struct.pack(">I", 1) + chunk + struct.pack(">I", zlib.crc32(chunk) & 0xFFFFFFFF)
    end_of_ihdr = 8 + 8 + 13 + 4
    return png[:end_of_ihdr] + sbit + png[end_of_ihdr:]


# every PhotometricInterpretation pydicom ships a sample of: (file, channels read)
PHOTOMETRIC_SAMPLES = {
    "MONOCHROME2": ("MR_small.dcm", 1),
    "RGB": ("examples_rgb_color.dcm", 3),
    "YBR_FULL": ("SC_rgb_dcmtk_+eb+cy+n1.dcm", 3),
    "YBR_FULL_422": ("SC_ybr_full_422_uncompressed.dcm", 3),
    "YBR_RCT": ("examples_jpeg2k.dcm", 3),
    "PALETTE COLOR": ("examples_palette.dcm", 3),
}

REFUSED_BYTES = "of image data, more than"
REFUSED_PIXELS = "pixels allowed"
REFUSED_INFLATED = "allowed for deflated files"


def families(folder: Path, byte_limit: int | None = None, pixel_limit: int | None = None) -> list[Case]:
    """Families of inputs, each varying one property over its range: float extremes, every colour space,
    declared sizes just under and over the decoded-bytes and pixel limits (real data under, headers alone
    over), bit depths, and the oddities that once got technical messages. The limits default to the
    loader's; tests pass small ones so the same families run in seconds."""
    from spmamba import imaging

    byte_limit = byte_limit or imaging.MAX_DECODED_BYTES
    pixel_limit = pixel_limit or imaging.MAX_PIXELS
    folder.mkdir(parents=True, exist_ok=True)
    cases: list[Case] = []

    def add(family: str, name: str, filename: str, expect: str | None, write) -> None:
        path = folder / filename
        write(path)
        cases.append(Case(name, path, expect, family))

    family = "float extremes (finite, overflowing float32 arithmetic)"
    for magnitude, dtype in ((1e30, np.float32), (3e38, np.float32), (1e300, np.float64)):
        vol = np.linspace(-magnitude, magnitude, 32 * 32 * 4).reshape(32, 32, 4).astype(dtype)
        name = f"NIfTI {np.dtype(dtype).name} ±{magnitude:g}"
        add(family, name, f"extreme-{magnitude:g}.nii.gz", None, lambda p, v=vol: _nifti(p, v))
    extreme = np.linspace(-3e38, 3e38, 64 * 64, dtype=np.float32).reshape(64, 64)
    add(family, "TIFF float32 ±3e+38", "extreme.tif", None, lambda p: p.write_bytes(_tiff_bytes(extreme)))

    family = "DICOM colour spaces (every PhotometricInterpretation pydicom ships, and generated ones)"
    for photometric, (sample, _) in PHOTOMETRIC_SAMPLES.items():
        src = Path(get_testdata_file(sample))
        add(family, f"{photometric} ({sample})", f"pi-{sample}", None, lambda p, s=src: p.write_bytes(s.read_bytes()))
    red = np.zeros((32, 48, 3), np.uint8)
    red[..., 0], red[..., 1:] = 200, np.random.default_rng(0).integers(0, 60, (32, 48, 2))
    for photometric in ("RGB", "YBR_FULL"):
        add(
            family,
            f"generated {photometric}",
            f"gen-{photometric}.dcm",
            None,
            lambda p, m=photometric: colour_dicom(p, red, m),
        )

    family = "decoded bytes declared by a NIfTI volume"
    for fraction in (0.5, 0.98, 1.02, 4.0):
        depth = _units(fraction, byte_limit, 512 * 512)  # NIfTI-1 sizes are 16-bit: wide slices, fewer of them
        name = f"NIfTI uint8 512×512×{depth} ({fraction:g}× the limit)"
        if fraction <= 1:
            add(family, name, f"bytes-{fraction}.nii.gz", None, lambda p, d=depth: _tiled_nifti(p, d))
        else:
            add(family, name, f"bytes-{fraction}.nii.gz", REFUSED_BYTES, lambda p, d=depth: _nifti_header_only(p, d))

    family = "bytes inflated by a deflated multi-frame DICOM (limit: a quarter, as it is inflated whole)"
    for fraction in (0.5, 0.98, 1.02, 4.0):
        frames = _units(fraction, byte_limit // 4, 256 * 256 * 2)
        expect = None if fraction <= 1 else REFUSED_INFLATED
        name = f"deflated DICOM, {frames} frames of 256×256 ({fraction:g}× its limit)"
        add(family, name, f"deflated-{fraction}.dcm", expect, lambda p, n=frames: _deflated_frames(p, n))

    family = "pixels declared by a PNG"
    for fraction, mode in ((0.5, "L"), (0.98, "L"), (0.98, "RGB"), (1.02, "L"), (2.5, "L")):
        side = _units(fraction**0.5, pixel_limit**0.5, 1)
        name = f"{mode} PNG {side}×{side} ({fraction:g}× the pixel limit)"
        filename = f"pixels-{mode}-{fraction}.png"
        if fraction <= 1:
            add(family, name, filename, None, lambda p, n=side, m=mode: _tiled_png(p, n, n, m))
        else:
            add(family, name, filename, REFUSED_PIXELS, lambda p, n=side: p.write_bytes(_png_bomb(n, n)))

    family = "16-bit PNG bit depths"
    eight = _texture(64, 64)
    for bits, sbit in ((10, True), (12, True), (12, False), (16, False)):
        data = (eight.astype(np.int64) * (2**bits - 1) // 255).astype(np.uint16)
        raw = _png_bytes(data)
        name = f"{bits}-bit data, {'sBIT ' + str(bits) if sbit else 'no sBIT'}"
        add(
            family,
            name,
            f"depth-{bits}-{sbit}.png",
            None,
            lambda p, r=raw, b=bits, s=sbit: p.write_bytes(with_sbit(r, b) if s else r),
        )

    family = "files that once got technical messages"
    rgb_vol = np.zeros((8, 8, 8), dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])
    add(
        family,
        "RGB NIfTI",
        "rgb.nii",
        "only greyscale volumes",
        lambda p: nib.save(nib.Nifti1Image(rgb_vol, np.eye(4)), p),
    )
    add(family, "CIFTI dense scalar", "x.dscalar.nii", "not an image volume", _cifti)
    add(
        family,
        "DICOM with window width 0",
        "w0.dcm",
        None,
        lambda p: write_dicom(p, np.arange(64 * 64).reshape(64, 64) % 4000, WindowCenter=100, WindowWidth=0),
    )
    add(family, "DICOM without a transfer syntax", "nots.dcm", None, _dicom_without_transfer_syntax)
    add(family, "multi-page TIFF, first page blank", "pages.tif", "choose another page", _blank_first_page_tiff)
    add(
        family,
        "8×60000 PNG",
        "elongated.png",
        "too elongated",
        lambda p: p.write_bytes(_png_bytes(np.zeros((8, 60000), np.uint8))),
    )
    add(family, "PNG with a ZIP appended", "png-zip.png", None, _png_with_zip)
    return cases


def _units(fraction: float, limit: float, unit: float) -> int:
    """How many ``unit``s make ``fraction`` of ``limit``, rounded away from the limit (down under it, up over
    it), so a case named for its side of the limit is on that side."""
    n = fraction * limit / unit
    return math.floor(n) if fraction <= 1 else math.ceil(n)


def _tiled_nifti(path: Path, depth: int) -> None:
    tile = np.tile(_texture(64, 64), (8, 8))  # repeats within gzip's window: a GiB compresses to a few MB
    vol = np.broadcast_to(tile[:, :, None], (512, 512, depth))
    nib.save(nib.Nifti1Image(np.ascontiguousarray(vol), np.eye(4)), str(path))


def _nifti_header_only(path: Path, depth: int) -> None:
    """A NIfTI header declaring 512×512×depth uint8 voxels that the file does not hold."""
    hdr = nib.Nifti1Header()
    hdr.set_data_shape((512, 512, depth))
    hdr.set_data_dtype(np.uint8)
    path.write_bytes(gzip.compress(hdr.binaryblock + b"\0" * 4))


def _deflated_frames(path: Path, frames: int) -> None:
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    tile = _texture(256, 256).astype(np.uint16) * 16
    write_dicom(path, np.broadcast_to(tile, (frames, 256, 256)), NumberOfFrames=frames)
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    ds.save_as(path)


def _tiled_png(path: Path, height: int, width: int, mode: str) -> None:
    tile = _texture(64, 64)
    grey = np.tile(tile, (height // 64 + 1, width // 64))[:height]
    Image.fromarray(grey).convert(mode).save(path, compress_level=1)


def _cifti(path: Path) -> None:
    from nibabel import cifti2

    brain = cifti2.BrainModelAxis.from_mask(np.ones((2, 2, 2), bool), affine=np.eye(4))
    img = cifti2.Cifti2Image(np.zeros((1, len(brain)), np.float32), header=(cifti2.ScalarAxis(["a"]), brain))
    img.to_filename(path)


def _dicom_without_transfer_syntax(path: Path) -> None:
    write_dicom(path, np.arange(64 * 64).reshape(64, 64) % 4000)
    ds = pydicom.dcmread(path)
    del ds.file_meta.TransferSyntaxUID
    ds.save_as(path, enforce_file_format=False)


def _blank_first_page_tiff(path: Path) -> None:
    pages = [Image.fromarray(np.zeros((40, 40), np.uint8)), Image.fromarray(np.full((40, 40), 9, np.uint8))]
    pages[1].putpixel((3, 3), 200)
    pages[0].save(path, save_all=True, append_images=pages[1:])


def _png_with_zip(path: Path) -> None:
    png = _png_bytes(_texture())
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("hidden.png", png)
    path.write_bytes(png + buf.getvalue())


def _retagged(data: bytes, path: Path, uid: str) -> Path:
    from pydicom.encaps import encapsulate

    ds = pydicom.dcmread(io.BytesIO(data))
    ds.file_meta.TransferSyntaxUID = uid
    ds.PixelData = encapsulate([ds.PixelData])
    ds["PixelData"].VR = "OB"
    ds.save_as(path)
    return path


def _tiff_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "TIFF")
    return buf.getvalue()


def _bmp_bytes() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(_texture()).save(buf, "BMP")
    return buf.getvalue()


def _nifti_bytes(vol: np.ndarray) -> bytes:
    img = nib.Nifti1Image(vol, np.eye(4))
    return img.header.binaryblock + b"\0" * 4 + vol.tobytes()


def _png_bomb(w: int, h: int) -> bytes:
    """A valid PNG header declaring a w x h image, then a few bytes: opening it must not allocate it."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + chunk(b"IEND", b"")
    )


def zip_cases(folder: Path, image: Path) -> dict[str, tuple[Path, list[tuple[str, str | None]]]]:
    """ZIP archives for the batch tab: {name: (zip, [(row name fragment, expected message or None)])}."""
    folder.mkdir(parents=True, exist_ok=True)
    data = image.read_bytes()
    out = {}

    def make(name: str, members: dict[str, bytes], rows: list[tuple[str, str | None]]):
        path = folder / f"{name}.zip"
        with zipfile.ZipFile(path, "w") as zf:
            for m, b in members.items():
                zf.writestr(m, b)
        out[name] = (path, rows)

    make(
        "nested",
        {"study/series1/a.png": data, "study/series2/deep/b.png": data},
        [("study/series1/a.png", None), ("study/series2/deep/b.png", None)],
    )
    make(
        "traversal",
        {"../../outside.png": data, "/abs/path.png": data, "ok.png": data},
        [("../../outside.png", "unsafe path"), ("/abs/path.png", "unsafe path"), ("ok.png", None)],
    )
    make(
        "mixed",
        {"scan.png": data, "report.docx": b"PK\x03\x04 not really", "notes.txt": b"hello"},
        [("scan.png", None), ("report.docx", "ZIP archive"), ("notes.txt", "not an image file")],
    )
    corrupt = folder / "corrupt.zip"
    good = (folder / "nested.zip").read_bytes()
    corrupt.write_bytes(good[:30] + bytes(200) + good[230:])
    out["corrupt"] = (corrupt, [("corrupt.zip", "damaged")])
    return out


# ---------------------------------------------------------------- driving a running app


def ui_inputs(path: Path, label: str) -> tuple:
    """The Analyse tab's inputs for a fresh file: the file's own window, axial axis, first slice/frame."""
    return (handle(path), label, "auto", 40, 400, 2, 0)


def handle(path: Path):
    from gradio_client import handle_file

    return handle_file(str(path))


def answer(call) -> tuple[bool, str]:
    """(succeeded, the result or the error message the user sees)."""
    try:
        return True, call()
    except Exception as err:  # gradio_client raises AppError carrying the gr.Error message
        return False, str(err)


ENDPOINTS = ("/analyze", "/segment", "/analyze_volume")  # the documented file endpoints


def call_endpoint(client, endpoint: str, path: Path):
    """One file through a documented endpoint, its checkpoint chosen by the route, as a new user's would be."""
    if endpoint == "/analyze_volume":
        return client.predict([handle(path)], "", api_name=endpoint)
    return client.predict(handle(path), "", None, api_name=endpoint)


def answered_clearly(case: Case, endpoint: str, answer: str | None) -> bool:
    """Whether ``endpoint``'s answer to ``case`` (None: analysed; else the message shown) is the one expected:
    the case's reason on every endpoint, except that /analyze_volume may refuse any 2-D image from its header
    as not a volume, may refuse a volume beyond its own limits (slices, voxels per volume), and may score a
    multi-page file page by page."""
    if endpoint == "/analyze_volume":
        volume_reasons = ("holds one image, not a volume", "2-D NIfTI", "too large to score", "; at most ")
        if answer is not None and any(reason in answer for reason in volume_reasons):
            return True
        if answer is None and _pages(case.path) > 1:
            return True
    return answer is None if case.expect is None else answer is not None and case.expect in answer


def _pages(path: Path) -> int:
    try:
        with Image.open(path) as im:
            return getattr(im, "n_frames", 1)
    except Exception:  # not a raster image at all
        return 1


def drive_corpus(client, cases: list[Case], label: str, valid: Path) -> list[dict]:
    """Each case through /analyze and through the Analyse tab's own handler, then a valid request."""
    rows = []
    for case in cases:
        row = {"case": case.name, "expect": case.expect}
        for kind, call in (
            ("api", lambda c=case: client.predict(handle(c.path), label, api_name="/analyze")),
            ("ui", lambda c=case: client.predict(*ui_inputs(c.path, label), api_name="/ui_analyse")),
        ):
            ok, out = answer(call)
            row[kind] = out if not ok else "analysed"
            if case.expect is None:
                row[f"{kind}_clear"] = ok
            else:
                row[f"{kind}_clear"] = (not ok) and case.expect in out
        ok, out = answer(lambda: client.predict(handle(valid), label, api_name="/analyze"))
        row["still_serving"] = ok and out[0]["scores"]["total"] > 0
        rows.append(row)
    return rows


def session_images(folder: Path, n: int) -> list[Path]:
    """n textured PNGs with a "lesion" in a different place each, so their scores tell them apart."""
    folder.mkdir(parents=True, exist_ok=True)
    images = []
    for i in range(n):
        yy, xx = np.mgrid[:160, :160]
        a = 127 + 90 * np.sin(xx / (4 + i)) * np.cos(yy / (9 - 0.5 * i))
        a[20 + 12 * i : 40 + 12 * i, 30:60] = 255 * (i % 2)
        images.append(folder / f"session{i}.png")
        Image.fromarray(a.clip(0, 255).astype(np.uint8)).save(images[-1])
    return images


def session_volumes(folder: Path, n: int) -> list[Path]:
    """n small NIfTI volumes (12 slices of a session image's texture, a bright block on a few slices)."""
    folder.mkdir(parents=True, exist_ok=True)
    volumes = []
    for i, image in enumerate(session_images(folder / "slices", n)):
        vol = np.repeat(np.asarray(Image.open(image), np.float32)[..., None], 12, axis=2)
        vol[60:90, 60:90, 4 + i : 7 + i] = 255
        volumes.append(_nifti(folder / f"volume{i}.nii.gz", vol))
    return volumes


def concurrent_sessions(url: str, images: list[Path], label: str, beta: float) -> list[dict]:
    """One gradio_client per image, all at once: analyse in the tab, then move β; return what each saw."""
    from concurrent.futures import ThreadPoolExecutor

    from gradio_client import Client

    from spmamba.demo.analyse import ANALYSE_CLIENT_OUTPUTS, REDRAW_CLIENT_OUTPUTS

    def session(path: Path) -> dict:
        client = Client(url, verbose=False)
        first = dict(
            zip(ANALYSE_CLIENT_OUTPUTS, client.predict(*ui_inputs(path, label), api_name="/ui_analyse"), strict=True)
        )
        # the checkpoint's weights, as the sliders now show them, with β moved
        weights = [first[k] for k in ("alpha", "beta", "gamma", "dog_low", "dog_high")]
        weights[1] = beta
        moved = dict(
            zip(
                REDRAW_CLIENT_OUTPUTS,
                client.predict(*weights, api_name="/ui_redraw"),
                strict=True,
            )
        )
        api, _ = client.predict(handle(path), label, api_name="/analyze")
        return {
            "image": path.name,
            "total": total_in(first["plot"]),
            "moved": total_in(moved["plot"]),
            "verdict": first["verdict"],
            "api_total": api["scores"]["total"],
        }

    with ThreadPoolExecutor(len(images)) as pool:
        return list(pool.map(session, images))


def total_in(plot: dict) -> float:
    """The total score, full precision, from the score figure a client receives (its last bar)."""
    import json

    return float(json.loads(plot["plot"])["data"][0]["y"][-1])
