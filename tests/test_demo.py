"""Demo handlers as plain functions, and the /analyze API through gradio_client on a launched app."""
import dataclasses

import numpy as np
import pytest
from PIL import Image
from pydicom.data import get_testdata_file

from demo import handlers
from demo.models import WEIGHTS_DIR, list_checkpoints
from demo.render import scan_figure
from spmamba.imaging import ImageLoadError

SHIPPED = WEIGHTS_DIR / "zhanglab-efficientnet_lite0.safetensors"
pytestmark = pytest.mark.skipif(not SHIPPED.is_file(), reason="shipped checkpoint not present")


@pytest.fixture(scope="module")
def png(tmp_path_factory):
    path = tmp_path_factory.mktemp("img") / "chest.png"
    yy, xx = np.mgrid[:300, :260]
    Image.fromarray((127 + 100 * np.sin(xx / 17) * np.cos(yy / 23)).astype(np.uint8)).save(path)
    return str(path)


@pytest.fixture(scope="module")
def analysis(png):
    return handlers.analyze(png, str(SHIPPED))


def test_checkpoint_list_has_summaries():
    cks = list_checkpoints()
    label = next(k for k, v in cks.items() if v == str(SHIPPED))
    assert "val AUROC" in label and not any("train-state" in v for v in cks.values())


def test_analyze_caches_maps_and_display(analysis):
    assert analysis.maps.per_scale.shape == (1, 3, 128, 128) and analysis.maps.prototype.shape == (1, 128, 128)
    assert analysis.display.shape == (300, 260)
    assert analysis.calibration["threshold"] > 0


def test_sliders_rescore_without_the_network(analysis, monkeypatch):
    monkeypatch.setattr(handlers, "predict_maps", lambda *a: pytest.fail("the network ran on a slider event"))
    base = handlers.render(analysis, analysis.weights)
    more = handlers.render(analysis, dataclasses.replace(analysis.weights, beta=analysis.weights.beta - 0.05))
    assert more.scores["total"] < base.scores["total"]  # concentration > 0, its weight lowered
    assert more.scores["concentration"] == base.scores["concentration"]
    faint = handlers.render(analysis, analysis.weights, opacity=0.0, contour=1.01)
    shown = (analysis.display * 255).astype(np.uint8)
    assert np.abs(faint.overlay[..., 0].astype(int) - shown).max() <= 1  # opacity 0: the image itself
    assert not np.array_equal(faint.overlay, base.overlay)
    assert faint.scores == base.scores


def test_verdict_places_the_score_and_never_diagnoses(analysis):
    cal = analysis.calibration
    hi = handlers.verdict(cal["threshold"] + 1, cal)
    lo = handlers.verdict(min(cal["normal_scores"]) - 1, cal)
    assert "Above the normal range" in hi and "Within the normal range" in lo and "higher than 0%" in lo
    for text in (hi, lo):
        assert "not whether disease is present" in text
    assert "cannot be placed" in handlers.verdict(1.0, None)


def test_bad_upload_raises_the_loader_error(tmp_path):
    (tmp_path / "x.dcm").write_text("not dicom")
    with pytest.raises(ImageLoadError, match="DICOM"):
        handlers.analyze(str(tmp_path / "x.dcm"), str(SHIPPED))


@pytest.mark.parametrize("order", ["circular_hilbert", "raster"])
def test_scan_figure_walks_the_path(order):
    fig = scan_figure(order, 8, 16, 3, 10)
    xs = [x for tr in fig.data[:-1] for x in tr.x if x is not None]
    assert len(xs) == 10 and "step 10/64" in fig.layout.title.text


def test_api_analyze_end_to_end(png):
    from gradio_client import Client, handle_file

    from demo.app import build_demo

    demo = build_demo()
    demo.queue().launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=None, quiet=True)
    try:
        client = Client(demo.local_url, verbose=False)
        for path in (png, get_testdata_file("CT_small.dcm")):
            result, overlay = client.predict(handle_file(path), "", api_name="/analyze")
            assert np.isfinite(result["scores"]["total"]) and overlay
            assert isinstance(result["above_threshold"], bool)
        assert result["image"]["Modality"] == "CT"
        bad = png + ".txt"
        open(bad, "w").write("hello")
        with pytest.raises(Exception, match="not an image file"):
            client.predict(handle_file(bad), "", api_name="/analyze")
        result, _ = client.predict(handle_file(png), "", api_name="/analyze")  # still serving
        assert result["scores"]["total"] > 0
    finally:
        demo.close()
