"""Whole volumes: slice order and grouping, and per-slice scores equal to single-slice scores."""

import random
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest

from spmamba.data import data_root
from spmamba.demo import handlers
from spmamba.imaging import ImageLoadError, load_image
from spmamba.pipeline import Pipeline, get_predictor
from spmamba.volume import load_volume, map_volume, save_map_nifti, volume_maps, volume_report, volume_scores
from tests.conftest import SHIPPED, needs_checkpoint
from tests.malformed import write_dicom


def _head(shape=(48, 56, 12), seed=0):
    rng = np.random.default_rng(seed)
    zz, yy, xx = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape[::-1]], indexing="ij")
    vol = (zz**2 / 1.2 + yy**2 + xx**2 < 0.8) * (500 + 100 * rng.standard_normal(shape[::-1]))
    vol[shape[2] // 2, 10:16, 12:18] += 800  # one bright focus on the middle slice
    return vol.transpose(2, 1, 0).astype(np.float32)  # (X, Y, Z)


def test_nifti_volume_slices_are_the_single_slice_loaders_slices(tmp_path):
    affine = np.array([[-1.0, 0, 0, 0], [0, 0, 1.2, 0], [0, -1.5, 0, 0], [0, 0, 0, 1]])  # flipped and permuted
    nib.save(nib.Nifti1Image(_head(), affine), tmp_path / "v.nii.gz")
    for axis in (0, 1, 2):
        vol = load_volume([tmp_path / "v.nii.gz"], axis=axis)
        assert len(vol) == vol.meta["slices"] == vol.meta["shape"][axis]
        for i in (0, len(vol) // 2, len(vol) - 1):
            single = load_image(tmp_path / "v.nii.gz", slice_index=i, axis=axis)
            np.testing.assert_allclose(vol.slices[i], single.pixels, atol=1e-6)


def _series(folder, n=8, gap_after=None, shuffle=True, series_uid=None, size=(64, 64)):
    folder.mkdir(parents=True, exist_ok=True)
    uid = series_uid or pydicom.uid.generate_uid()
    order = list(range(n))
    if shuffle:
        random.Random(0).shuffle(order)
    paths = []
    for k, i in enumerate(order):
        z = 2.5 * i + (5.0 if gap_after is not None and i > gap_after else 0.0)
        pixels = (np.arange(size[0] * size[1]).reshape(size) * (i + 1)) % 4000
        paths.append(
            write_dicom(
                folder / f"file{k:02d}.dcm",
                pixels,
                Modality="CT",
                SeriesInstanceUID=uid,
                ImageOrientationPatient=[1, 0, 0, 0, 1, 0],
                ImagePositionPatient=[0, 0, z],
                InstanceNumber=n - i,  # deliberately the reverse of the positions
            )
        )
    return paths


def test_dicom_series_is_ordered_along_the_slice_normal_not_by_file_name(tmp_path):
    """Ordered by position; each slice labelled by its InstanceNumber and position, never by the file's name
    (uploads and ZIP members are stored under neutral ones)."""
    paths = _series(tmp_path / "s")
    vol = load_volume(paths)
    headers = sorted((pydicom.dcmread(p) for p in paths), key=lambda ds: float(ds.ImagePositionPatient[2]))
    assert vol.labels == [f"instance {ds.InstanceNumber}, {float(ds.ImagePositionPatient[2]):.1f} mm" for ds in headers]
    assert vol.meta["slice_spacing_mm"] == pytest.approx(2.5)
    assert vol.meta["order"].startswith("ImagePositionPatient")


def test_a_series_anomaly_map_lies_where_its_slices_are(tmp_path):
    """An oblique series with unequal pixel spacing and rows != columns: each voxel of the map volume, put in
    space by the NIfTI's affine, is where DICOM puts the pixel it came from (PS3.3 C.7.6.2.1.1)."""
    import torch

    from spmamba.scoring import ComponentMaps, ScoreWeights

    x, y = np.array([0.8, 0.6, 0.0]), np.array([0.0, 0.0, -1.0])
    normal, spacing, base = np.cross(x, y), (0.7, 0.9), np.array([-20.0, 35.0, 12.0])
    rng = np.random.default_rng(0)
    paths = [
        write_dicom(
            tmp_path / f"f{k}.dcm",
            rng.integers(0, 4000, (40, 56)),
            Modality="CT",
            SeriesInstanceUID="1.2.3.4",
            ImageOrientationPatient=[*x, *y],
            ImagePositionPatient=list(base + 2.0 * k * normal),
            PixelSpacing=list(spacing),
            InstanceNumber=k + 1,
        )
        for k in range(5)
    ]
    vol = load_volume(paths)
    slices = torch.tensor(np.stack(vol.slices))
    maps = ComponentMaps(torch.zeros(len(vol), 3, *slices.shape[1:]), slices)  # the map of a slice: the slice
    amap = map_volume(vol, maps, ScoreWeights(alpha=1.0, beta=0.0, gamma=0.0))
    inverse = np.linalg.inv(vol.affine)
    for k, r, c in [(0, 0, 0), (4, 39, 55), (2, 17, 3), (3, 5, 50)]:
        lps = base + 2.0 * k * normal + c * spacing[1] * x + r * spacing[0] * y
        i, j, kk = np.rint(inverse @ np.array([-lps[0], -lps[1], lps[2], 1.0]))[:3].astype(int)
        assert np.allclose(inverse @ np.array([-lps[0], -lps[1], lps[2], 1.0]), [i, j, kk, 1], atol=1e-6)
        assert amap[i, j, kk] == pytest.approx(vol.slices[k][r, c], abs=1e-6)
    saved = nib.load(save_map_nifti(vol, maps, ScoreWeights(), tmp_path / "map.nii.gz"))
    assert saved.shape == (56, 40, 5) and np.allclose(saved.affine, vol.affine)


def test_series_problems_are_refused_with_the_reason(tmp_path):
    with pytest.raises(
        ImageLoadError,
        match=r"slices are missing: 7\.5 mm between instance 5, 7\.5 mm and instance 4, 15\.0 mm, .* 2\.5 mm apart",
    ):
        load_volume(_series(tmp_path / "gap", gap_after=3))
    mixed = _series(tmp_path / "a", n=3) + _series(tmp_path / "b", n=2)
    with pytest.raises(ImageLoadError, match="2 different series"):
        load_volume(mixed)
    uid = pydicom.uid.generate_uid()
    sizes = _series(tmp_path / "c", n=3, series_uid=uid) + _series(tmp_path / "d", n=1, series_uid=uid, size=(32, 64))
    with pytest.raises(ImageLoadError, match="different sizes"):
        load_volume(sizes)
    one = _series(tmp_path / "e", n=1)
    with pytest.raises(ImageLoadError, match="holds one image, not a volume"):
        load_volume(one)


def test_multiframe_dicom_is_a_volume(tmp_path):
    frames = np.stack([(np.arange(64 * 64).reshape(64, 64) * (k + 1)) % 4000 for k in range(5)])
    path = write_dicom(tmp_path / "m.dcm", frames, NumberOfFrames=5)
    vol = load_volume([path])
    assert len(vol) == 5 and vol.meta["source"] == "multi-frame DICOM"


@needs_checkpoint
def test_per_slice_scores_equal_single_slice_scores(tmp_path):
    nib.save(nib.Nifti1Image(_head(), np.diag([1.0, 1.0, 3.0, 1.0])), tmp_path / "v.nii.gz")
    predictor = get_predictor(str(SHIPPED))
    vol = load_volume([tmp_path / "v.nii.gz"])
    seen = []
    maps = volume_maps(predictor, vol, batch_size=5, progress=seen.append)
    assert seen[-1] == 1.0 and len(seen) == 3  # 12 slices in batches of 5
    report = volume_report(predictor, vol, predictor.score(maps))
    # the API's path drops each batch's maps once scored: the same per-slice scores
    streamed = volume_report(predictor, vol, volume_scores(predictor, vol, batch_size=3))
    assert [r["total"] for r in streamed["per_slice"]] == pytest.approx([r["total"] for r in report["per_slice"]])
    assert streamed["per_slice"][4] == pytest.approx(report["per_slice"][4])
    for i in (2, 5, 6, 9):  # the first and last slices are blank, which the page refuses alone
        single = handlers.analyse(str(tmp_path / "v.nii.gz"), str(SHIPPED), handlers.ImageOptions(index=i, axis=2))
        alone = handlers.render(single, single.weights).scores["total"]
        assert report["per_slice"][i]["total"] == pytest.approx(alone, rel=1e-4, abs=1e-5)
    totals = [np.nan if r["total"] is None else r["total"] for r in report["per_slice"]]
    assert report["highest_slice"] == int(np.nanargmax(totals)) and report["slices"] == 12
    # the end slices hold nothing: blank, unscored, never the highest (a blank image alone is refused too)
    assert [r["blank"] for r in report["per_slice"]] == [True] + [False] * 10 + [True]
    assert report["blank_slices"] == 2
    out = save_map_nifti(vol, maps, predictor.weights, tmp_path / "map.nii.gz")
    saved = nib.load(out)
    assert saved.shape == tuple(vol.meta["shape"]) and np.allclose(saved.affine, vol.affine)
    # the map of slice k sits where slice k came from: shown the loader's way, it is slice k's map
    import torch.nn.functional as F

    from spmamba.scoring import rescore

    k = report["highest_slice"]
    shown = np.rot90(np.take(np.asarray(saved.dataobj), k, axis=2))
    amap = rescore(maps, predictor.weights).anomaly_map[k : k + 1, None]
    expected = F.interpolate(amap, size=vol.slices[k].shape, mode="bilinear", align_corners=False)[0, 0].numpy()
    np.testing.assert_allclose(shown, expected, atol=1e-5)
    assert np.array_equal(map_volume(vol, maps, predictor.weights), np.asarray(saved.dataobj))


@needs_checkpoint
def test_predict_scores_a_nifti_volume_and_a_dicom_series(tmp_path, capsys):
    import json

    from spmamba.cli import main

    nib.save(nib.Nifti1Image(_head(), np.eye(4)), tmp_path / "v.nii.gz")
    assert main(["predict", str(tmp_path / "v.nii.gz"), "--json", "--overlay", str(tmp_path / "maps")]) == 0
    report = json.loads(capsys.readouterr().out)[0]
    assert report["slices"] == 12 and 0 <= report["highest_slice"] < 12 and len(report["per_slice"]) == 12
    assert nib.load(report["map"]).shape == (48, 56, 12)
    paths = _series(tmp_path / "s", n=4)
    assert main(["predict", *map(str, paths), "--series"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("series of 4 files: 4 slices; highest: instance") and out.count("\n  instance") == 4


@needs_checkpoint
def test_volume_tab_handlers_read_a_zipped_series_and_rescore_without_the_network(tmp_path, monkeypatch):
    import csv
    import zipfile

    from spmamba import volume as lib
    from spmamba.demo import volume as tab

    paths = _series(tmp_path / "s", n=6)
    with zipfile.ZipFile(tmp_path / "series.zip", "w") as z:
        for p in paths:
            z.write(p, f"series/{p.name}")
    checkpoints = {"chest": str(SHIPPED)}
    va, label = tab.analyse_volume([str(tmp_path / "series.zip")], Pipeline(checkpoints, {}), None)
    assert label == "chest" and len(va.volume) == 6 and va.volume.meta["source"] == "DICOM series"
    # a CT series on the chest model says so
    assert tab.report(va)["verdict_for_highest"]["verdict"] == "cannot judge: model trained on CR/DX, image is CT"
    rep = tab.report(va)
    assert rep["threshold"] is None  # no normal range for a modality the model was not trained on

    def no_network(*_):
        raise AssertionError("the network ran again")

    monkeypatch.setattr(lib.Predictor, "maps", no_network)
    other = tab.report(va, va.weights.__class__.max_only())
    assert [r["total"] for r in other["per_slice"]] != [r["total"] for r in rep["per_slice"]]
    picture, text = tab.slice_view(va, rep["highest_slice"], va.weights)
    assert picture.shape[2] == 3 and "cannot judge" in text
    rows = list(csv.DictReader(open(tab.write_csv(rep, tmp_path))))
    assert [int(r["index"]) for r in rows] == list(range(6))
    fig = tab.profile_figure(rep, 2, None)
    assert list(fig.data[0].x) == list(range(6)) and fig.data[1].x == (2,)


@needs_checkpoint
def test_analyze_volume_api_through_the_client(app_url, tmp_path):
    from gradio_client import Client, handle_file

    nib.save(nib.Nifti1Image(_head(), np.eye(4)), tmp_path / "v.nii.gz")
    result = Client(app_url, verbose=False).predict(
        [handle_file(str(tmp_path / "v.nii.gz"))], api_name="/analyze_volume"
    )
    assert result["slices"] == 12 and len(result["per_slice"]) == 12
    totals = [np.nan if r["total"] is None else r["total"] for r in result["per_slice"]]
    assert result["highest_slice"] == int(np.nanargmax(totals))
    assert result["volume"]["source"] == "NIfTI volume"


LGG = (data_root() or Path("/nonexistent")) / "lgg-flair" / "val"


@needs_checkpoint
@pytest.mark.skipif(
    not LGG.is_dir(), reason="brain MRI data not found: set SPMAMBA_DATA or provide ../shared/data/lgg-flair"
)
def test_an_lgg_patient_rebuilt_as_a_nifti_volume_scores_as_its_slices(tmp_path):
    from spmamba.data import labelled_folder, patient_id

    samples = labelled_folder(LGG)
    pid = sorted({patient_id(s.path) for s in samples})[0]
    mine = sorted((s for s in samples if patient_id(s.path) == pid), key=lambda s: int(s.path.stem.rsplit("_", 1)[1]))
    # (X, Y, Z) with the loader's display rotation undone, so slice k shows as the k-th PNG
    stack = np.stack([np.rot90(load_image(s.path).grey, -1) for s in mine], axis=2)
    nib.save(nib.Nifti1Image(stack, np.eye(4)), tmp_path / f"{pid}.nii.gz")
    vol = load_volume([tmp_path / f"{pid}.nii.gz"])
    assert len(vol) == len(mine)
    predictor = get_predictor(str(SHIPPED))
    report = volume_report(predictor, vol, volume_scores(predictor, vol))
    for k in (0, len(mine) // 2):
        png = load_image(mine[k].path).grey  # the same picture, stretched to [0, 1] as every NIfTI slice is
        assert np.corrcoef(vol.slices[k].ravel(), png.ravel())[0, 1] > 0.9999
        options = handlers.ImageOptions(index=k, axis=2)
        alone = handlers.analyse(str(tmp_path / f"{pid}.nii.gz"), str(SHIPPED), options)
        assert report["per_slice"][k]["total"] == pytest.approx(
            handlers.render(alone, alone.weights).scores["total"], rel=1e-4, abs=1e-5
        )


def test_a_volume_gets_the_single_image_loaders_checks(tmp_path):
    """/analyze_volume refuses what /analyze refuses, in the same words; a float64 volume with values beyond
    float32's range is scored, not called infinite; a one-image file is refused from its header."""
    from PIL import Image

    def nifti(name, data, sform=None):
        path = tmp_path / name
        img = nib.Nifti1Image(data, np.eye(4))
        if sform is not None:  # a singular one: nibabel will write it as the sform, with no qform
            img.set_sform(sform, code=1)
            img.set_qform(None, code=0)
        nib.save(img, path)
        return path

    rng = np.random.default_rng(0)
    complex_vol = nifti("c.nii.gz", (rng.random((16, 16, 4)) + 1j * rng.random((16, 16, 4))).astype(np.complex64))
    rgb = np.zeros((16, 16, 4), dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])
    rgb_vol = nifti("rgb.nii.gz", rgb)
    for path in (complex_vol, rgb_vol):
        with pytest.raises(ImageLoadError) as single:
            load_image(path)
        with pytest.raises(ImageLoadError) as volume:
            load_volume([path])
        assert str(volume.value) == str(single.value) and "only greyscale volumes" in str(single.value)
    singular = nifti("s.nii.gz", rng.random((16, 16, 4)).astype(np.float32), np.diag([1.0, 1.0, 0.0, 1.0]))
    with pytest.raises(ImageLoadError, match="known orientation") as err:
        load_volume([singular])
    assert "Error" not in str(err.value)  # plain words, no exception class
    huge = nifti("h.nii.gz", rng.random((16, 16, 4)) * 1e300)
    vol = load_volume([huge])
    assert all(np.isfinite(s).all() and s.dtype == np.float32 for s in vol.slices) and len(vol) == 4
    png = tmp_path / "one.png"
    Image.fromarray((rng.random((32, 32)) * 255).astype(np.uint8)).save(png)
    with pytest.raises(ImageLoadError, match="holds one image, not a volume"):
        load_volume([png])


def test_nearly_blank_slices_and_images_say_so():
    """An empty end slice with a few bright voxels is scored but carries the caution; a slice with content does
    not; the signal share is measured against the border's background."""
    from spmamba.imaging import NEAR_BLANK, near_blank_note, signal_fraction

    empty = np.zeros((64, 64), np.float32)
    empty[30:33, 30:33] = 0.8  # 9 of 4096 pixels
    assert signal_fraction(empty) == pytest.approx(9 / 4096)
    assert "Nearly blank: only 0.2% of the pixels hold signal" in near_blank_note(empty)
    head = _head()[:, :, 6].astype(np.float32)
    assert signal_fraction(head / head.max()) > NEAR_BLANK and near_blank_note(head / head.max()) is None
    inverted = 1 - empty  # a bright background (MONOCHROME1-like) is a background too
    assert signal_fraction(inverted) == pytest.approx(9 / 4096)


@needs_checkpoint
def test_a_nearly_blank_image_is_scored_with_the_caution_and_ranked_in_words(tmp_path):
    from PIL import Image

    from spmamba.pipeline import Pipeline

    a = np.zeros((128, 128), np.uint8)
    a[60:63, 60:63] = 200
    Image.fromarray(a).save(tmp_path / "end-slice.png")
    rep = Pipeline().analyse(tmp_path / "end-slice.png")
    assert any(n.startswith("Nearly blank: only 0.1% of the pixels") for n in rep["notes"])
    predictor = get_predictor(str(SHIPPED))
    n = len(predictor.calibration["normal_scores"])
    assert f"lower than all {n} normal validation images" in predictor.judge(-1e9, in_domain=True).text
    assert f"higher than all {n} normal validation images" in predictor.judge(1e9, in_domain=True).text
