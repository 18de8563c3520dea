"""Results to take away: a lesion mask as PNG, as NIfTI aligned with a NIfTI input, as DICOM SEG referencing a
DICOM input.

Written files carry no patient identifier in their names (``lesion-mask.png`` and so on, never the upload's
name) nor in their headers beyond what a reference to the source needs: a DICOM SEG keeps the source's study,
series and instance UIDs, so a viewer can lay it over the image, and has the patient's name, ID and birth date
emptied (the standard lets them be empty; they are Type 2).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
from PIL import Image

from .imaging import ImageLoadError, dicom_header

STEM = "lesion-mask"
EMPTIED = ("PatientName", "PatientID", "PatientBirthDate", "AccessionNumber", "ReferringPhysicianName", "StudyID")


def mask_folder(out: str | os.PathLike, source: str | os.PathLike) -> Path:
    """Where one input's mask files go under ``out``: a folder named by a digest of the input's path, never by its
    name (which may carry a patient's), and the same on every run and worker (``--resume`` rewrites, never
    duplicates)."""
    return Path(out) / hashlib.sha256(str(source).encode()).hexdigest()[:16]


def _at_file_size(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``mask`` at the file's own pixel grid: an image box-reduced at decode (imaging.MAX_SIDE) is scaled back."""
    if mask.shape == tuple(shape):
        return mask
    from skimage.transform import resize

    return resize(mask.astype(np.uint8), shape, order=0, preserve_range=True, anti_aliasing=False) > 0


def mask_png(mask: np.ndarray, meta: dict, path: str | os.PathLike) -> Path:
    """0/255 greyscale PNG at the file's size."""
    size = meta.get("size")  # rasters: [width, height] of the file, which decoding may have reduced
    if size and meta.get("reduced"):
        mask = _at_file_size(mask, (size[1], size[0]))
    Image.fromarray(mask.astype(np.uint8) * 255).save(path)
    return Path(path)


def mask_nifti(mask: np.ndarray, source: str | os.PathLike, meta: dict, path: str | os.PathLike) -> Path:
    """A 3-D uint8 mask volume on the source's grid with the source's own affine: the segmented slice holds
    the mask (the loader's canonical reorientation and display rotation undone), every other slice zero."""
    import nibabel as nib
    from nibabel.orientations import apply_orientation, io_orientation, ornt_transform

    img = nib.load(str(source))
    spatial = tuple(int(d) for d in meta["shape"])
    ornt = io_orientation(img.affine)
    canonical_shape = tuple(spatial[int(np.flatnonzero(ornt[:, 0] == a)[0])] for a in range(3))
    volume = np.zeros(canonical_shape, dtype=np.uint8)
    index = [slice(None)] * 3
    index[meta["axis"]] = meta["slice"]
    volume[tuple(index)] = np.rot90(mask, -1)  # the loader showed np.rot90(slice)
    on_file_grid = apply_orientation(volume, ornt_transform(np.array([[0, 1], [1, 1], [2, 1]]), ornt))
    header = img.header.copy()
    header.set_data_dtype(np.uint8)
    out = nib.Nifti1Image(np.ascontiguousarray(on_file_grid), img.affine, header)
    out.header["descrip"] = b"SP-Mamba Studio lesion mask"  # the source's free text is not copied
    out.header["db_name"] = b""
    out.header["aux_file"] = b""
    nib.save(out, str(path))
    return Path(path)


def mask_dicom_seg(
    mask: np.ndarray, source: str | os.PathLike, path: str | os.PathLike, model: str, version: str
) -> Path:
    """A binary DICOM Segmentation of one single-frame source image, written with highdicom, referencing the
    source by its UIDs; ``model`` and ``version`` name the network that drew it."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    ds = dicom_header(source)
    if int(getattr(ds, "NumberOfFrames", 1) or 1) != 1:
        raise ImageLoadError("a DICOM SEG is written for single-frame DICOM images only")
    description = hd.seg.SegmentDescription(
        segment_number=1,
        segment_label="lesion",
        segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=codes.SCT.Lesion,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=hd.AlgorithmIdentificationSequence(
            name=model, version=version, family=codes.cid7162.ArtificialIntelligence
        ),
    )
    seg = hd.seg.Segmentation(
        source_images=[ds],
        pixel_array=_at_file_size(mask, (int(ds.Rows), int(ds.Columns)))[None].astype(np.uint8),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[description],
        series_instance_uid=hd.UID(),
        series_number=9001,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="SP-Mamba Studio",
        manufacturer_model_name=model,
        software_versions=version,
        device_serial_number="none",
        series_description="Mamba-MIS lesion mask (research use only)",
    )
    for keyword in EMPTIED:
        if keyword in seg:
            setattr(seg, keyword, "")
    seg.save_as(str(path))
    return Path(path)


def export_mask(
    mask: np.ndarray, source: str | os.PathLike, meta: dict, folder: str | os.PathLike, model: str, version: str
) -> tuple[list[Path], list[str]]:
    """Every form this input allows: the PNG always, NIfTI for a NIfTI input, DICOM SEG for a single-frame DICOM.
    Returns the files and a note for each form that could not be written."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files, notes = [mask_png(mask, meta, folder / f"{STEM}.png")], []
    if meta.get("format") == "NIfTI":
        files.append(mask_nifti(mask, source, meta, folder / f"{STEM}.nii.gz"))
    elif meta.get("format") == "DICOM":
        try:
            files.append(mask_dicom_seg(mask, source, folder / f"{STEM}-seg.dcm", model, version))
        except (ImageLoadError, ValueError, AttributeError) as err:  # highdicom's checks of the source's attributes
            reason = str(err) if isinstance(err, ImageLoadError) else "the source lacks attributes a SEG must copy"
            notes.append(f"No DICOM SEG: {reason}.")
    return files, notes
