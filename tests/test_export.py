"""Mask exports read back: DICOM SEG with highdicom/pydicom, NIfTI on its input's grid, PNG at the file's size."""

from __future__ import annotations

import highdicom as hd
import nibabel as nib
import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file

from spmamba import imaging
from spmamba.export import EMPTIED, export_mask, mask_dicom_seg
from spmamba.imaging import ImageLoadError, load_image
from tests.malformed import write_dicom


def _blob(shape: tuple[int, int], seed: int = 0) -> np.ndarray:
    """An irregular mask: any transposition or flip of it is a different mask."""
    rng = np.random.default_rng(seed)
    return rng.random(shape) > 0.7


def test_dicom_seg_refers_to_its_source_and_carries_no_patient_identifiers(tmp_path):
    source = get_testdata_file("CT_small.dcm")
    ds = pydicom.dcmread(source)
    assert str(ds.PatientName)  # the sample names its patient: the SEG must not
    image = load_image(source)
    mask = _blob(image.grey.shape)
    files, notes = export_mask(mask, source, image.meta, tmp_path, "ph2-mambamis-tiny128", "0.1.0")
    assert [f.name for f in files] == ["lesion-mask.png", "lesion-mask-seg.dcm"] and notes == []
    seg = hd.seg.segread(str(files[1]))
    assert seg.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.4"  # Segmentation Storage
    assert seg.StudyInstanceUID == ds.StudyInstanceUID and seg.SeriesInstanceUID != ds.SeriesInstanceUID
    referenced = seg.ReferencedSeriesSequence[0]
    assert referenced.SeriesInstanceUID == ds.SeriesInstanceUID
    assert referenced.ReferencedInstanceSequence[0].ReferencedSOPInstanceUID == ds.SOPInstanceUID
    frames = seg.get_pixels_by_source_instance([ds.SOPInstanceUID])
    assert frames.shape == (1, *mask.shape, 1) and np.array_equal(frames[0, ..., 0].astype(bool), mask)
    assert seg.SegmentSequence[0].SegmentLabel == "lesion"
    raw = pydicom.dcmread(files[1])
    assert all(str(raw.get(k, "")) == "" for k in EMPTIED)
    assert str(ds.PatientID) not in files[1].read_bytes().decode("latin-1")


def test_a_multi_frame_dicom_gets_the_png_and_a_reason_for_no_seg(tmp_path):
    frames = np.stack([np.arange(48 * 40).reshape(48, 40) * (k + 1) % 4000 for k in range(3)])
    path = write_dicom(tmp_path / "multi.dcm", frames, NumberOfFrames=3)
    image = load_image(path, frame=1)
    files, notes = export_mask(_blob((48, 40)), path, image.meta, tmp_path / "out", "m", "0")
    assert [f.name for f in files] == ["lesion-mask.png"]
    assert notes == ["No DICOM SEG: a DICOM SEG is written for single-frame DICOM images only."]
    with pytest.raises(ImageLoadError, match="single-frame"):
        mask_dicom_seg(_blob((48, 40)), path, tmp_path / "x.dcm", "m", "0")


@pytest.mark.parametrize("shape4d", [False, True])
def test_a_nifti_mask_lies_on_its_inputs_grid(tmp_path, shape4d):
    """An oblique, flipped, permuted affine: the mask volume has the input's affine and shape, and reading it
    back the loader's way at the segmented slice gives the mask; every other slice is empty."""
    rng = np.random.default_rng(1)
    data = rng.random((24, 30, 16, 2) if shape4d else (24, 30, 16)).astype(np.float32)
    affine = np.array([[0.0, 0.0, -2.0, 40.0], [-0.9, 0.1, 0.0, 10.0], [0.1, 1.1, 0.0, -30.0], [0, 0, 0, 1]])
    nib.save(nib.Nifti1Image(data, affine), tmp_path / "scan.nii.gz")
    k = 2
    image = load_image(tmp_path / "scan.nii.gz", slice_index=k, axis=2)
    mask = _blob(image.grey.shape, seed=3)
    files, _ = export_mask(mask, tmp_path / "scan.nii.gz", image.meta, tmp_path / "out", "m", "0")
    assert [f.name for f in files] == ["lesion-mask.png", "lesion-mask.nii.gz"]
    saved = nib.load(files[1])
    assert np.array_equal(saved.affine, nib.load(tmp_path / "scan.nii.gz").affine) and saved.shape == (24, 30, 16)
    assert saved.get_data_dtype() == np.uint8 and int(np.asarray(saved.dataobj).sum()) == int(mask.sum())
    again = load_image(files[1], slice_index=k, axis=2)
    assert np.array_equal(again.grey > 0.5, mask)
    assert np.asarray(Image.open(files[0])).shape == mask.shape


def test_a_png_mask_has_the_files_size_when_decoding_reduced_it(tmp_path, monkeypatch):
    monkeypatch.setattr(imaging, "MAX_SIDE", 64)
    Image.fromarray((np.random.default_rng(0).random((160, 200)) * 255).astype(np.uint8)).save(tmp_path / "big.png")
    image = load_image(tmp_path / "big.png")
    assert image.grey.shape == (40, 50) and image.meta["reduced"] == 4
    mask = _blob(image.grey.shape)
    (png,), _ = export_mask(mask, tmp_path / "big.png", image.meta, tmp_path / "out", "m", "0")
    written = np.asarray(Image.open(png)) > 0
    assert written.shape == (160, 200)
    assert np.array_equal(written[2::4, 2::4], mask)  # each decoded pixel stands for a 4×4 block
