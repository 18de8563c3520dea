"""The route from file to verdict (spmamba.pipeline, spmamba.domain): one answer on every path, routing by
content, the out-of-domain check, and no silent carry-over. Real images from ``$SPMAMBA_DATA`` where the test
needs to know what a radiograph looks like; skipped with a reason where the data are absent."""

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from spmamba.cli import main as cli
from spmamba.data import data_root
from spmamba.demo import batch, handlers
from spmamba.demo.analyse import analyse_api
from spmamba.demo.segment import segment_api
from spmamba.demo.site import Site
from spmamba.demo.volume import volume_api
from spmamba.domain import Domain, describe, write_domain
from spmamba.pipeline import ANOMALY, SEGMENT, Pipeline
from spmamba.zoo import MODALITY_DEFAULTS, WEIGHTS_DIR, list_checkpoints, list_seg_checkpoints
from tests.conftest import needs_checkpoint
from tests.malformed import write_dicom

DATA = data_root()
need_data = pytest.mark.skipif(DATA is None, reason="real images not present (set SPMAMBA_DATA)")
LGG = WEIGHTS_DIR / "lgg-flair-efficientnet_lite0.safetensors"
HEAD_CT = WEIGHTS_DIR / "head-ct-efficientnet_lite0.safetensors"


def first(folder: Path) -> Path:
    return sorted(folder.iterdir())[0]


@pytest.fixture(scope="module")
def pipe() -> Pipeline:
    return Pipeline()


@pytest.fixture(scope="module")
def site() -> Site:
    return Site(list_checkpoints(), [], list_seg_checkpoints())


def test_mahalanobis_distance_matches_a_plain_reference_and_survives_the_checkpoint(tmp_path):
    """The einsum distance against scipy's, the percentile against counting, and a domain written into a
    checkpoint file reads back equal while the model still loads (its tensors untouched)."""
    from scipy.spatial.distance import mahalanobis

    rng = np.random.default_rng(0)
    mean, prec = rng.standard_normal(5), np.eye(5) + 0.1 * np.ones((5, 5))
    dom = Domain(mean, prec, np.sort(rng.random(50) * 4), 10)
    pts = rng.standard_normal((7, 5))
    np.testing.assert_allclose(dom.distance(pts), [mahalanobis(p, mean, prec) for p in pts], rtol=1e-10)
    assert dom.percentile(2.0) == pytest.approx(100 * (dom.val_distances < 2.0).mean())
    assert dom.limit == pytest.approx(1.25 * np.quantile(dom.val_distances, 0.99))

    from spmamba.checkpoint import load_checkpoint, read_metadata, save_checkpoint
    from spmamba.model import SPMamba
    from tests.conftest import tiny_config

    path = tmp_path / "tiny.safetensors"
    save_checkpoint(path, SPMamba(tiny_config(), encoder_weights=None))
    grey = [rng.random((40, 40)).astype(np.float32) for _ in range(12)]
    real = describe(grey[:8], grey[8:])
    write_domain(path, real)
    back = Domain.from_checkpoint(path, read_metadata(path))
    np.testing.assert_allclose(back.mean, real.mean, rtol=1e-6)
    np.testing.assert_allclose(back.val_distances, real.val_distances, atol=1e-3)
    load_checkpoint(path, encoder_weights=None)  # the extra domain tensors do not disturb loading


@needs_checkpoint
@need_data
def test_every_dataset_goes_to_its_checkpoint_with_no_modality_and_no_carry_over(site):
    """PNGs carry no Modality: the brain MRI, head CT and chest X-ray each reach their own checkpoint, whatever
    the previous image's checkpoint was; keeping a checkpoint keeps it and says the image looks otherwise."""
    brain = first(DATA / "lgg-flair" / "val" / "TUMOR")
    ct = first(DATA / "head-ct" / "val" / "HEMORRHAGE")
    chest = first(DATA / "zhanglab" / "val" / "PNEUMONIA")
    chest_label = site.labels[0]
    for path, want in ((brain, MODALITY_DEFAULTS[0]), (ct, "head-ct-"), (chest, "zhanglab")):
        ready = site.prepare(str(path), handlers.ImageOptions(), chest_label)  # the dropdown still shows chest
        assert Path(ready.route.path).name.startswith(want) and ready.route.in_domain
        assert ready.route.looks_like.startswith("Looks like:")
    kept = site.prepare(str(brain), handlers.ImageOptions(), chest_label, keep=True)
    assert kept.label == chest_label and "looks like LGG FLAIR brain MRI" in kept.route.notes[0]


@needs_checkpoint
@need_data
def test_segmentation_routes_by_content_and_does_not_carry_the_previous_model(pipe):
    from spmamba.imaging import load_image

    busi, ph2 = first(DATA / "busi" / "images"), first(DATA / "ph2" / "images")
    lgg = first(DATA / "lgg-flair-seg" / "images")
    derm = next(label for label, p in pipe.seg_checkpoints.items() if Path(p).name.startswith("ph2-mambamis"))
    for path, want in ((busi, "busi-"), (ph2, "ph2-"), (lgg, "lgg-flair-seg-")):
        route = pipe.route(load_image(path), SEGMENT, chosen=derm)  # a previous choice, not kept
        assert Path(route.path).name.startswith(want) and route.in_domain


@needs_checkpoint
def test_an_image_unlike_every_training_set_gets_no_verdict(tmp_path, site):
    """A photograph and a document scan: flagged on the library path, the API and the batch CSV."""
    from skimage import data

    photo, page = tmp_path / "photo.png", tmp_path / "page.png"
    Image.fromarray(data.astronaut()).save(photo)
    Image.fromarray(data.page()).save(page)
    for path in (photo, page):
        rep, _ = analyse_api(site, str(path))
        assert rep["in_domain"] is False and rep["above_threshold"] is None
        assert rep["percentile_among_normal"] is None and rep["verdict"] == "unlike the training images"
        assert rep["looks_like"].startswith("Unlike any training set")
    rows, _ = batch.score_files([str(photo)], site.pipeline)
    assert rows[0][2] is False and rows[0][4] == "unlike the training images"
    seg, _, _ = segment_api(site.pipeline, str(photo))
    assert seg["in_domain"] is False and "outline may mean nothing" in seg["looks_like"]


def _series(folder: Path, n: int = 4) -> list[str]:
    """A small CT series (positions along z), textured so no slice is blank."""
    rng = np.random.default_rng(5)
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for k in range(n):
        pixels = (rng.random((64, 64)) * 400 + 800).astype(np.uint16)
        files.append(
            str(
                write_dicom(
                    folder / f"s{k}.dcm",
                    pixels,
                    Modality="CT",
                    SeriesInstanceUID="1.2.3.4",
                    ImagePositionPatient=[0, 0, 2.5 * k],
                    ImageOrientationPatient=[1, 0, 0, 0, 1, 0],
                    InstanceNumber=k + 1,
                    RescaleIntercept=-1024,
                    RescaleSlope=1,
                )
            )
        )
    return files


@needs_checkpoint
@need_data
def test_the_same_files_get_the_same_answer_on_every_path(tmp_path, site, capsys):
    """A PNG (brain MRI), a DICOM CT and a NIfTI volume through the library, /analyze, the batch tab and
    spmamba predict; a DICOM series through /analyze_volume and spmamba predict --series; a dermoscopy image
    through /segment and spmamba seg predict: identical checkpoints, scores, verdicts and domain checks."""
    import pydicom.data

    brain = str(first(DATA / "lgg-flair" / "val" / "TUMOR"))
    dicom = pydicom.data.get_testdata_file("CT_small.dcm")
    vol = np.random.default_rng(1).random((32, 32, 6)).astype(np.float32)
    nifti = str(tmp_path / "vol.nii.gz")
    nib.save(nib.Nifti1Image(vol, np.eye(4)), nifti)

    def key(r: dict) -> tuple:
        return (r["checkpoint"], round(r["scores"]["total"], 4), r["verdict"], r["in_domain"])

    library = [key(site.pipeline.analyse(f)) for f in (brain, dicom)]
    api = [key(analyse_api(site, f)[0]) for f in (brain, dicom)]
    assert library == api
    rows, _ = batch.score_files([brain, dicom], site.pipeline)
    assert [(r[1], r[3], r[4], r[2]) for r in rows] == library
    assert cli(["predict", brain, dicom, "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert [key(r) for r in printed] == library

    vapi = volume_api(site.pipeline, [nifti])
    assert cli(["predict", nifti, "--json"]) == 0
    vcli = json.loads(capsys.readouterr().out)[0]
    assert (vapi["checkpoint"], vapi["highest_score"], vapi["in_domain"]) == (
        vcli["checkpoint"],
        vcli["highest_score"],
        vcli["in_domain"],
    )
    series = _series(tmp_path / "series")
    sapi = volume_api(site.pipeline, series)
    assert cli(["predict", *series, "--series", "--json"]) == 0
    scli = json.loads(capsys.readouterr().out)[0]
    assert [r["total"] for r in sapi["per_slice"]] == [r["total"] for r in scli["per_slice"]]

    derm = str(first(DATA / "ph2" / "images"))
    seg, _, _ = segment_api(site.pipeline, derm)
    assert cli(["seg", "predict", derm, "--json"]) == 0
    sc = json.loads(capsys.readouterr().out)[0]
    assert (seg["checkpoint"], seg["lesion_pixels"], seg["in_domain"]) == (
        sc["checkpoint"],
        sc["lesion_pixels"],
        sc["in_domain"],
    )


@needs_checkpoint
def test_a_series_is_read_in_the_window_its_checkpoint_was_trained_in(tmp_path, pipe):
    """The head-CT checkpoint's brain window reaches series loading as it reaches a single DICOM."""
    if not HEAD_CT.is_file():
        pytest.skip("head-CT checkpoint not present")
    series = _series(tmp_path)
    label = next(k for k, v in pipe.checkpoints.items() if Path(v) == HEAD_CT)
    ready = pipe.prepare_volume(series, chosen=label, keep=True)
    single = pipe.prepare(series[0], chosen=label, keep=True)
    assert ready.window == single.window == "brain"
    np.testing.assert_allclose(ready.volume.slices[0], single.image.grey, atol=1e-6)


def test_routing_needs_no_domain_to_work(tmp_path):
    """Checkpoints written before domains existed: the modality rule, and no in_domain claim."""
    from spmamba.checkpoint import save_checkpoint
    from spmamba.imaging import LoadedImage
    from spmamba.model import SPMamba
    from tests.conftest import tiny_config

    paths = {}
    for name, mod in (("xray", ["DX"]), ("ct", ["CT"])):
        paths[name] = str(tmp_path / f"{name}.safetensors")
        save_checkpoint(paths[name], SPMamba(tiny_config(), encoder_weights=None), training={"modalities": mod})
    pipe = Pipeline(paths, {})
    img = np.random.default_rng(0).random((32, 32)).astype(np.float32)
    route = pipe.route(LoadedImage(img, {"format": "DICOM", "Modality": "CT"}), ANOMALY)
    assert route.label == "ct" and route.in_domain is None and "CT" in route.notes[0]
    assert pipe.route(LoadedImage(img, {"format": "PNG"}), ANOMALY).label == "xray"


@needs_checkpoint
def test_an_image_unlike_the_training_images_is_drawn_against_no_normal_range(tmp_path):
    """The score panel drops the threshold and the normal histogram, as it does for another modality."""
    from spmamba.imaging import load_image
    from tests.conftest import SHIPPED

    path = tmp_path / "t.png"
    yy, xx = np.mgrid[:120, :100]
    Image.fromarray((127 + 100 * np.sin(xx / 7) * np.cos(yy / 9)).astype(np.uint8)).save(path)
    img = load_image(path)
    known, other = handlers.analyse_image(img, str(SHIPPED)), handlers.analyse_image(img, str(SHIPPED), in_domain=False)
    placed, unlike = handlers.render(known, known.weights), handlers.render(other, other.weights)
    assert "threshold" in placed.figure.to_json() and "threshold" not in unlike.figure.to_json()
    assert unlike.judgement.above is None and "unlike the images this model was trained on" in unlike.verdict


@needs_checkpoint
def test_predict_takes_a_folder_of_an_export(tmp_path, capsys):
    """A folder is read recursively: images by suffix, an extension-less file when it is a DICOM, nothing else."""
    import shutil

    import pydicom.data

    from tests.conftest import SHIPPED

    export = tmp_path / "export"
    (export / "series" / "a").mkdir(parents=True)
    yy, xx = np.mgrid[:64, :64]
    Image.fromarray((127 + 100 * np.sin(xx / 7) * np.cos(yy / 9)).astype(np.uint8)).save(export / "one.png")
    shutil.copy(pydicom.data.get_testdata_file("CT_small.dcm"), export / "series" / "a" / "IM0001")
    (export / "README.txt").write_text("not an image")
    assert cli(["predict", str(export), "--checkpoint", str(SHIPPED), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [Path(r["file"]).name for r in rows] == ["one.png", "IM0001"]
    assert rows[1]["image"]["Modality"] == "CT"
