"""The Compare tab's handler: each panel scores the image as the Analyse tab does with that checkpoint kept, and
every map is drawn on one colour scale."""

from __future__ import annotations

import gradio as gr
import numpy as np
import pytest
from PIL import Image

from spmamba.checkpoint import read_metadata
from spmamba.demo import compare, handlers
from spmamba.demo.site import Site
from spmamba.zoo import list_checkpoints
from tests.conftest import SHIPPED

SMALL = SHIPPED.with_name("zhanglab128-efficientnet_lite0.safetensors")
pytestmark = pytest.mark.skipif(not SMALL.is_file(), reason="shipped checkpoints not present")


@pytest.fixture(scope="module")
def chest(tmp_path_factory):
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:200, :180]
    film = 120 + 60 * np.sin(xx / 19) * np.cos(yy / 27) + rng.normal(0, 8, (200, 180))
    path = tmp_path_factory.mktemp("c") / "film.png"
    Image.fromarray(np.clip(film, 0, 255).astype(np.uint8)).save(path)
    return str(path)


def _analysed(site: Site, path: str, label: str) -> handlers.Analysis:
    """What the Analyse tab keeps after analysing ``path`` with ``label`` kept."""
    options = handlers.ImageOptions()
    ready = site.prepare(path, options, label, keep=True)
    analysis = handlers.analyse_image(ready.image, site.path(label), ready.route.notes, None, ready.route.in_domain)
    analysis.source = (path, options)
    return analysis


def test_each_panel_is_what_analyse_shows_for_that_checkpoint_on_one_scale(chest):
    site = Site(list_checkpoints(), [])
    offered = compare.choices(site)
    labels = [label for label, path in offered.items() if path in (str(SHIPPED), str(SMALL))]
    analysis = _analysed(site, chest, labels[0])
    panels = compare.compare(offered, analysis, labels)
    assert [p.name for p in panels] == [SHIPPED.stem, SMALL.stem]
    for label, panel in zip(labels, panels, strict=True):
        alone = _analysed(site, chest, label)
        assert panel.total == pytest.approx(handlers.render(alone, alone.weights).scores["total"], rel=1e-6)
        assert panel.amap.shape == alone.maps.prototype.shape[1:]  # each at its own input size (256², 128²)
    lo, hi = compare.shared_range(panels)
    assert lo == min(p.amap.min() for p in panels) and hi == max(p.amap.max() for p in panels)
    text = compare.caption(panels[1])
    assert "validation AUROC 91.8 (89.0–94.3)" in text and "circular-hilbert scan × 8 directions" in text
    assert compare.scan_thumbnail(panels[1]).data  # the order drawn small beside the map
    assert "acquisition group" not in text  # trained before the shift split: no such figure to show


def test_a_checkpoint_with_a_shift_split_shows_both_validation_figures():
    clahe = SHIPPED.with_name("zhanglab128-clahe-efficientnet_lite0.safetensors")
    metrics = read_metadata(clahe)["metrics"]
    in_pool, shift = metrics["validation"], metrics["shift_validation"]
    lo, hi = shift["auroc_ci95"]
    assert compare.validation_auroc(str(clahe)) == (
        f"{100 * in_pool['auroc']:.1f} ({100 * in_pool['auroc_ci95'][0]:.1f}–{100 * in_pool['auroc_ci95'][1]:.1f})"
        f"; another acquisition group {100 * shift['auroc']:.1f} ({100 * lo:.1f}–{100 * hi:.1f})"
    )


def test_compare_asks_for_an_analysed_image_and_two_to_four_checkpoints(chest):
    site = Site(list_checkpoints(), [])
    offered = compare.choices(site)
    with pytest.raises(gr.Error, match="Analyse an image"):
        compare.compare(offered, None, list(offered)[:2])
    analysis = _analysed(site, chest, list(offered)[0])
    with pytest.raises(gr.Error, match="from 2 to 4"):
        compare.compare(offered, analysis, list(offered)[:1])
