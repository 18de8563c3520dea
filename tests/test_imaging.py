"""Loading real files: the DICOM and NIfTI samples shipped inside pydicom and nibabel, and files the tests write."""

import os

import nibabel
import nibabel.testing
import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file

from spmamba import imaging
from spmamba.imaging import ImageLoadError, load_image
from tests.malformed import write_dicom

NIFTI_DIR = nibabel.testing.data_path


def _in_unit_range(img):
    assert img.pixels.dtype == np.float32
    assert img.pixels.min() >= 0 and img.pixels.max() <= 1
    assert img.pixels.max() > img.pixels.min()


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm"])
def test_pydicom_samples(name):
    img = load_image(get_testdata_file(name))
    _in_unit_range(img)
    assert img.pixels.shape == (128, 128) or img.pixels.shape == (64, 64)
    assert img.meta["format"] == "DICOM" and img.meta["Modality"] in ("CT", "MR")
    text = repr(img.meta)
    ds = pydicom.dcmread(get_testdata_file(name))
    for tag in ("PatientName", "PatientID", "PatientBirthDate"):
        value = str(ds.get(tag, "")).strip()
        if value:
            assert value not in text


def test_ct_window_centre_width():
    path = get_testdata_file("CT_small.dcm")
    narrow = load_image(path, window=(40, 80)).pixels
    wide = load_image(path, window=(40, 2000)).pixels
    assert (narrow == 0).mean() + (narrow == 1).mean() > (wide == 0).mean() + (wide == 1).mean()


def test_monochrome1_is_inverted(tmp_path):
    ramp = np.tile(np.arange(64, dtype=np.uint16) * 60, (64, 1))
    write_dicom(tmp_path / "m1.dcm", ramp, "MONOCHROME1")
    write_dicom(tmp_path / "m2.dcm", ramp, "MONOCHROME2")
    m1, m2 = load_image(tmp_path / "m1.dcm").pixels, load_image(tmp_path / "m2.dcm").pixels
    np.testing.assert_allclose(m1, 1 - m2, atol=1e-6)
    assert m2[0, -1] > m2[0, 0]


def test_extensionless_dicom_and_multiframe(tmp_path):
    frames = np.stack([np.full((32, 32), v, np.uint16) for v in (0, 100, 200)])
    frames[:, :16] += 50
    write_dicom(tmp_path / "series", frames, NumberOfFrames=3)
    img = load_image(tmp_path / "series", frame=2)
    assert img.meta["frames"] == 3 and img.pixels.shape == (32, 32)
    with pytest.raises(ImageLoadError, match="frame 5 does not exist"):
        load_image(tmp_path / "series", frame=5)


def test_patient_identifiers_never_reach_metadata(tmp_path):
    write_dicom(
        tmp_path / "p.dcm",
        np.arange(64 * 64).reshape(64, 64) % 4000,
        PatientName="Doe^Jane",
        PatientID="ID-998877",
        PatientBirthDate="19700101",
    )
    img = load_image(tmp_path / "p.dcm")
    text = repr(img.meta)
    assert "Doe" not in text and "998877" not in text and "19700101" not in text


def test_dicom_without_pixels_and_compressed_transfer_syntaxes():
    with pytest.raises(ImageLoadError, match="without image data"):
        load_image(get_testdata_file("rtplan.dcm"))
    _in_unit_range(load_image(get_testdata_file("JPEG2000.dcm")))


@pytest.mark.parametrize(
    "name, reference, tolerance",
    [
        ("MR_small_jpeg_ls_lossless.dcm", "MR_small.dcm", 0),  # JPEG-LS lossless: the same pixels
        ("MR_small_jp2klossless.dcm", "MR_small.dcm", 0),  # JPEG 2000 lossless
        ("JPEGLSNearLossless_16.dcm", None, None),  # JPEG-LS near-lossless
        ("SC_rgb_jpeg_dcmtk.dcm", "SC_rgb_rle.dcm", 0.05),  # JPEG baseline (lossy): near the RLE (lossless) copy
        ("JPGExtended.dcm", None, None),  # JPEG extended, 12-bit
        ("693_J2KI.dcm", None, None),  # JPEG 2000 (irreversible)
    ],
)
def test_compressed_dicom_decodes_with_the_required_pylibjpeg_decoders(name, reference, tolerance):
    """PACS exports are often JPEG, JPEG-LS or JPEG 2000: the decoders in requirements.txt read each kind, and
    a lossless one gives exactly the uncompressed file's pixels."""
    img = load_image(get_testdata_file(name))
    _in_unit_range(img)
    assert float(np.ptp(img.pixels)) > 0
    if reference is not None:
        ref = load_image(get_testdata_file(reference)).pixels
        assert img.pixels.shape == ref.shape
        assert float(np.abs(img.pixels - ref).max()) <= tolerance + 1e-6


@pytest.mark.parametrize("name", ["example_nifti2.nii.gz", "example4d.nii.gz", "anatomical.nii"])
def test_nibabel_samples(name):
    img = load_image(os.path.join(NIFTI_DIR, name))
    _in_unit_range(img)
    assert img.meta["format"] == "NIfTI" and img.meta["slice"] == img.meta["slices"] // 2


def test_nifti_axis_and_slice_bounds(tmp_path):
    vol = np.random.default_rng(0).random((20, 30, 40)).astype(np.float32)
    nibabel.save(nibabel.Nifti1Image(vol, np.eye(4)), tmp_path / "v.nii.gz")
    for axis, shape in ((0, (40, 30)), (1, (40, 20)), (2, (30, 20))):
        assert load_image(tmp_path / "v.nii.gz", axis=axis, slice_index=3).pixels.shape == shape
    with pytest.raises(ImageLoadError, match="slice 40 does not exist"):
        load_image(tmp_path / "v.nii.gz", slice_index=40)
    vol[0, 0, 0] = np.nan
    nibabel.save(nibabel.Nifti1Image(vol, np.eye(4)), tmp_path / "nan.nii.gz")
    with pytest.raises(ImageLoadError, match="NaN"):
        load_image(tmp_path / "nan.nii.gz", axis=0, slice_index=0)


def test_16bit_png_keeps_its_depth(tmp_path):
    ramp = (np.arange(256 * 64) % 65536).reshape(64, 256).astype(np.uint16) * 4
    Image.fromarray(ramp).save(tmp_path / "deep.png")
    img = load_image(tmp_path / "deep.png")
    assert img.meta["mode"].startswith("I")
    assert len(np.unique(img.pixels)) > 1000  # 8-bit would have at most 256 levels
    np.testing.assert_allclose(img.pixels, ramp / 65535.0, atol=1e-6)


def test_rgba_and_palette(tmp_path):
    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 255
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    img = load_image(tmp_path / "a.png")
    assert img.pixels.shape == (40, 40, 3) and abs(img.pixels[..., 0].mean() - 200 / 255) < 1e-6
    Image.fromarray(np.full((40, 40), 128, np.uint8), "L").convert("P").save(tmp_path / "p.png")
    assert load_image(tmp_path / "p.png").pixels.shape == (40, 40)  # grey palette -> one channel


def test_bad_files_get_one_error_type(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "notes.dcm").write_text("this is a text file")
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(tmp_path / "ok.png")
    (tmp_path / "cut.png").write_bytes((tmp_path / "ok.png").read_bytes()[:60])
    Image.fromarray(np.zeros((3, 100), np.uint8)).save(tmp_path / "thin.png")
    cases = {
        "empty.png": "empty",
        "notes.dcm": "DICOM",
        "cut.png": "damaged or truncated",
        "thin.png": "too small",
        "missing.png": "cannot open",
    }
    for name, words in cases.items():
        with pytest.raises(ImageLoadError, match=words):
            load_image(tmp_path / name)


@pytest.mark.parametrize("mode", ["L", "RGB", "I;16"])
def test_large_rasters_are_box_reduced_as_they_load(tmp_path, mode):
    """An image longer than MAX_SIDE is averaged down by an integer factor while decoding (an 80-Mpx colour PNG
    would otherwise hold ~1 GB as float32); the result is the block mean of the file's pixels, the size stays the
    file's own, and the 16-bit scaling is read before the averaging."""
    rng = np.random.default_rng(0)
    h, w = 600, 3 * imaging.MAX_SIDE - 5  # factor 3, with a partial last column block
    top = 4095 if mode == "I;16" else 255
    grey = rng.integers(0, top + 1, (h, w))
    if mode == "RGB":
        a = np.stack([grey, grey[::-1], grey[:, ::-1]], -1).astype(np.uint8)
    else:
        a = grey.astype(np.uint16 if mode == "I;16" else np.uint8)
    Image.fromarray(a).save(tmp_path / "big.png")
    img = load_image(tmp_path / "big.png")
    assert img.meta["size"] == [w, h] and img.meta["reduced"] == 3
    assert img.pixels.shape[:2] == (h // 3, -(-w // 3))
    blocks = a[:, : w // 3 * 3].astype(np.float64).reshape(h // 3, 3, w // 3, 3, *a.shape[2:]).mean(axis=(1, 3))
    assert np.abs(img.pixels[:, : w // 3] * top - blocks).max() < 1  # PIL rounds each mean to an integer
    small = load_image(_saved(tmp_path / "small.png", a[:, : imaging.MAX_SIDE]))
    assert "reduced" not in small.meta and small.pixels.shape[:2] == (h, imaging.MAX_SIDE)


def _saved(path, a):
    Image.fromarray(a).save(path)
    return path
