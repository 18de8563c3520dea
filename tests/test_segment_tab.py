"""The Segment tab's handlers without a server, and /segment through gradio_client."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pydicom.data import get_testdata_file

from spmamba.demo import segment
from spmamba.imaging import load_image
from spmamba.seg.checkpoint import save_seg_checkpoint
from spmamba.seg.mamba_mis import MambaMIS, MambaMISConfig
from spmamba.visualize import TRUTH_OUTLINE
from tests.conftest import serve


@pytest.fixture(scope="module")
def seg_checkpoints(tmp_path_factory):
    """Two small untrained Mamba-MIS checkpoints, one said to be trained on dermoscopy, one on MR."""
    folder = tmp_path_factory.mktemp("seg")
    out = {}
    for modality in ("XC", "MR"):
        torch.manual_seed(0)
        model = MambaMIS(MambaMISConfig(image_size=32, channels=4, d_state=4, bridge_dim=4))
        path = folder / f"{modality.lower()}.safetensors"
        save_seg_checkpoint(path, model, threshold=0.5, training={"modalities": [modality]}, summary=modality)
        out[f"{path.stem} — {modality}"] = str(path)
    return out


@pytest.fixture(scope="module")
def colour_png(tmp_path_factory):
    path = tmp_path_factory.mktemp("img") / "lesion.png"
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((60, 80, 3)) * 255).astype(np.uint8)).save(path)
    return str(path)


def test_without_stored_domains_the_checkpoint_follows_the_modality_unless_kept(seg_checkpoints):
    """Checkpoints written before domains: an MR DICOM goes to the MR checkpoint from the dermoscopy one the
    dropdown shows, and stays with the dermoscopy one only when the user keeps it (content routing with stored
    domains: tests/test_pipeline.py)."""
    from spmamba.pipeline import SEGMENT, Pipeline

    xc, mr = list(seg_checkpoints)
    pipe = Pipeline({}, seg_checkpoints)
    dicom = load_image(get_testdata_file("MR_small.dcm"))
    route = pipe.route(dicom, SEGMENT, chosen=xc)
    assert route.label == mr and route.notes == ["Switched to a checkpoint trained on MR images."]
    assert route.in_domain is None  # nothing stored to say how typical the image is
    assert pipe.route(dicom, SEGMENT, chosen=xc, keep=True).label == xc


def test_threshold_redraws_from_the_cached_map_and_measures_in_mm(seg_checkpoints, monkeypatch):
    mr = list(seg_checkpoints)[1]
    dicom = load_image(get_testdata_file("MR_small.dcm"))
    seg = segment.segment_image(dicom, seg_checkpoints[mr])
    assert seg.prob.shape == dicom.pixels.shape and seg.display.shape == (512, 512)

    def no_network(*_):
        raise AssertionError("the network ran again")

    monkeypatch.setattr(segment, "get_segmenter", no_network)
    t = float(np.median(seg.prob))
    m = segment.measurements(seg, t)
    assert m["lesion_pixels"] == int((seg.prob >= t).sum())
    assert m["area_mm2"] == pytest.approx(m["lesion_pixels"] * 0.3125 * 0.3125)
    truth = seg.prob >= t
    assert segment.measurements(seg, t, truth)["dice"] == 1.0
    shifted = np.roll(truth, 5, axis=1)
    expected = 2 * (truth & shifted).sum() / (truth.sum() + shifted.sum())
    assert segment.measurements(seg, t, shifted)["dice"] == pytest.approx(expected)
    picture = segment.draw(seg, t, 0.4, shifted)
    assert (np.abs(picture - np.array(TRUTH_OUTLINE) * 255).max(-1) < 2).sum() > 20
    assert "mm²" in segment.summary_text(m, "mr", [])


def test_truth_mask_must_cover_the_same_field_of_view(tmp_path):
    Image.fromarray(np.zeros((30, 90), np.uint8)).save(tmp_path / "wide.png")
    with pytest.raises(Exception, match="same field of view"):
        segment.load_truth_mask(str(tmp_path / "wide.png"), (60, 80))
    Image.fromarray(np.full((30, 40), 255, np.uint8)).save(tmp_path / "half.png")
    assert segment.load_truth_mask(str(tmp_path / "half.png"), (60, 80)).all()  # same aspect: resized


def test_segment_api_through_the_client(seg_checkpoints, colour_png):
    from gradio_client import Client, handle_file

    from spmamba.demo.app import build_demo

    demo = build_demo(examples=[], seg_checkpoints=seg_checkpoints)
    url = serve(demo)
    try:
        client = Client(url, verbose=False)
        report, overlay, files = client.predict(handle_file(colour_png), api_name="/segment")
        assert report["checkpoint"] == "xc" and report["area_mm2"] is None
        assert 0 <= report["lesion_pixels"] <= 60 * 80 and report["notes"] == []
        assert np.asarray(Image.open(overlay)).shape[:2] == (384, 512)
        (png,) = [f if isinstance(f, str) else f["path"] for f in files]  # a PNG input: the PNG mask alone
        mask = np.asarray(Image.open(png))
        assert Path(png).name == "lesion-mask.png" and mask.shape == (60, 80)  # the image's own size
        assert int((mask == 255).sum()) == report["lesion_pixels"] and set(np.unique(mask)) <= {0, 255}
        named, _, files = client.predict(handle_file(get_testdata_file("MR_small.dcm")), "mr — MR", api_name="/segment")
        assert named["checkpoint"] == "mr" and named["area_mm2"] is not None
        names = sorted(Path(f if isinstance(f, str) else f["path"]).name for f in files)
        assert names == ["lesion-mask-seg.dcm", "lesion-mask.png"]
    finally:
        demo.close()


def test_each_segment_example_is_its_datasets_median_image_and_the_page_reproduces_its_dice(tmp_path):
    """The Segment tab's examples (with shared data present): one per dataset, routed to a checkpoint of that
    dataset, and the Dice the page shows against the example's mask is the per-image Dice the checkpoint's
    card records for that image (the page and the evaluation resize differently: within 0.02)."""
    from spmamba.checkpoint import read_raw_metadata
    from spmamba.data import data_root
    from spmamba.demo.examples import build_seg_examples
    from spmamba.pipeline import Pipeline
    from spmamba.zoo import list_seg_checkpoints

    shipped = list_seg_checkpoints()
    if data_root() is None or not shipped:
        pytest.skip("needs the shared data (SPMAMBA_DATA) and the shipped segmentation checkpoints")
    examples = build_seg_examples(shipped, cache=tmp_path)
    assert len(examples) == len({e.path.parent.parent for e in examples}) >= 3
    pipeline = Pipeline()
    for example in examples:
        seg = segment.prepared_segmentation(pipeline, str(example.path), None, keep=False)
        recorded = {r["image"]: r["dice"] for r in read_raw_metadata(seg.checkpoint)["metrics"]["per_image"]}
        assert example.path.name in recorded, example.caption  # routed to the checkpoint that validated on it
        shown = segment.measurements(seg, seg.threshold, segment.load_truth_mask(str(example.truth), seg.prob.shape))
        assert shown["dice"] == pytest.approx(recorded[example.path.name], abs=0.02)
        assert f"Dice {recorded[example.path.name]:.2f}" in example.caption
