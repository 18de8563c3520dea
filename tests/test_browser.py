"""Headless Chromium drives the page as a person would: upload, move the opacity and β sliders.

Screenshots of each step are saved under ``$SPMAMBA_ARTIFACTS`` (default ``test-artifacts/``).
Needs Playwright (requirements-dev.txt) and a Chromium: Debian's ``chromium`` package or
``python -m playwright install chromium``.
"""

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from spmamba.data import data_root
from spmamba.demo.canvas import BEFORE_AFTER_PAINTED
from spmamba.zoo import MODALITY_DEFAULTS
from tests.conftest import SHIPPED

DATA = data_root()

playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
MR_CHECKPOINT = SHIPPED.parent / f"{MODALITY_DEFAULTS[0]}.safetensors"  # the brain-MRI default
CT_CHECKPOINT = SHIPPED.parent / "head-ct-efficientnet_lite0.safetensors"
ARTIFACTS = Path(os.environ.get("SPMAMBA_ARTIFACTS", Path(__file__).resolve().parents[1] / "test-artifacts"))


def _chromium() -> str | None:
    """System Chromium first (Debian), then Playwright's own download."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    with playwright.sync_playwright() as p:
        path = p.chromium.executable_path
    return path if path and Path(path).is_file() else None


@pytest.fixture(scope="module")
def page(app_url):
    exe = _chromium()
    if exe is None:
        pytest.skip("no Chromium: apt-get install chromium, or python -m playwright install chromium")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, headless=True, args=["--no-sandbox"])
        pg = browser.new_page(viewport={"width": 1400, "height": 1100})
        pg.goto(app_url)
        pg.wait_for_selector("#upload", timeout=60_000)
        yield pg
        browser.close()


FRAME = "(document.querySelector('#overlay-canvas canvas') || {dataset: {}}).dataset.frame"


def _frame(pg) -> int:
    """How many times the page's script has painted the overlay canvas."""
    return int(pg.evaluate(FRAME) or 0)


def _repainted(pg, after: int, timeout: float = 30_000) -> None:
    pg.wait_for_function(f"(n) => parseInt({FRAME} || '0') > n", arg=after, timeout=timeout)


def _canvas_pixels(pg) -> np.ndarray:
    """The overlay canvas as the browser painted it, (H, W, 3) uint8."""
    w, h, data = pg.evaluate(
        "() => { const c = document.querySelector('#overlay-canvas canvas');"
        " const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        " return [c.width, c.height, Array.from(d)]; }"
    )
    return np.asarray(data, dtype=np.uint8).reshape(h, w, 4)[..., :3]


def _score(verdict: str) -> float:
    return float(verdict.split("Score ")[1].split(" ")[0])


def _set_slider(pg, elem_id: str, value: float) -> None:
    box = pg.locator(f"#{elem_id} input[type=number]")
    box.fill(str(value))
    box.press("Enter")


@pytest.mark.skipif(not SHIPPED.is_file(), reason="shipped checkpoint not present")
def test_upload_then_sliders_change_overlay_and_score(page, tmp_path):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    img = tmp_path / "chest.png"
    if DATA is not None:  # a real chest X-ray: placed against the normal range
        Image.open(sorted((DATA / "zhanglab" / "val" / "NORMAL").iterdir())[0]).convert("L").save(img)
    else:  # a texture: scored, and said to be unlike the training images
        yy, xx = np.mgrid[:300, :260]
        Image.fromarray((127 + 100 * np.sin(xx / 17) * np.cos(yy / 23)).astype(np.uint8)).save(img)
    page.locator("#upload input[type=file]").set_input_files(str(img))
    _repainted(page, 0, 60_000)
    page.wait_for_function("document.querySelector('#verdict').innerText.includes('Score')", timeout=60_000)
    page.screenshot(path=str(ARTIFACTS / "browser-1-uploaded.png"), full_page=True)
    frame, text = _frame(page), page.locator("#verdict").inner_text()
    assert ("normal range for this model" if DATA is not None else "unlike the images this model") in text
    if DATA is not None:
        assert "Looks like: ZhangLab chest X-ray" in page.locator("#image-info").inner_text()

    requests = []
    page.on("request", lambda r: requests.append(r.url) if "/gradio_api/queue" in r.url else None)
    _set_slider(page, "opacity", 0.95)
    _repainted(page, frame)
    page.screenshot(path=str(ARTIFACTS / "browser-2-opacity.png"), full_page=True)
    assert _score(page.locator("#verdict").inner_text()) == _score(text)  # display only: same score
    assert requests == []  # mixed in the browser: the opacity slider sent nothing to the server
    frame = _frame(page)
    _set_slider(page, "contour", 0.8)
    _repainted(page, frame)
    page.wait_for_timeout(300)  # the last event's frame
    from spmamba.demo import handlers
    from spmamba.demo.site import Site
    from spmamba.zoo import list_checkpoints

    site = Site(list_checkpoints(), [])  # the server's own drawing of the same image at the same settings
    ready = site.prepare(str(img), handlers.ImageOptions())
    analysed = handlers.analyse_image(ready.image, site.path(ready.label), in_domain=ready.route.in_domain)
    server = handlers.render(analysed, analysed.weights, opacity=0.95, contour=0.8).overlay
    painted = _canvas_pixels(page)
    assert painted.shape == server.shape and np.array_equal(painted, server)

    page.get_by_text("Score weights (re-scored live").click()  # the expert sliders start folded away
    _set_slider(page, "beta", 0.2)
    before = _score(text)
    page.wait_for_function(
        "(s) => { const m = document.querySelector('#verdict').innerText.match(/Score ([-0-9.e+]+)/);"
        " return m && parseFloat(m[1]) !== s; }",
        arg=before,
        timeout=30_000,
    )
    page.screenshot(path=str(ARTIFACTS / "browser-3-beta.png"), full_page=True)
    assert _score(page.locator("#verdict").inner_text()) > before  # concentration > 0, weight raised


@pytest.mark.skipif(not SHIPPED.is_file(), reason="shipped checkpoint not present")
def test_example_dicom_window_views_and_batch_tab(page, tmp_path):
    """Every tab once, with a screenshot of each (the README's come from these)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.locator("#examples").get_by_text("CT slice").click()
    page.wait_for_function("document.querySelector('#image-info').innerText.includes('Modality: CT')", timeout=60_000)
    if CT_CHECKPOINT.is_file():  # the head CT checkpoint takes it (Modality CT), in the brain window it was
        # trained in; pydicom's sample is no head, so the page says it is unlike the training images
        page.wait_for_function(
            "document.querySelector('#checkpoint input').value.startsWith('head-ct')", timeout=10_000
        )
        page.wait_for_function(
            "(document.querySelectorAll('#window input')[0] || {}).value === 'brain'", timeout=10_000
        )
        assert "unlike the images this model was trained on" in page.locator("#verdict").inner_text()
        assert "Unlike any training set" in page.locator("#image-info").inner_text()
    else:
        assert "cannot judge this kind of image" in page.locator("#verdict").inner_text()
    page.locator("#window input").click()
    page.get_by_role("option", name="lung").click()
    page.wait_for_function("document.querySelectorAll('#window input')[0].value === 'lung'", timeout=10_000)
    page.wait_for_timeout(1500)  # the re-analysis with the lung window
    page.screenshot(path=str(ARTIFACTS / "tab-analyse.png"), full_page=True)
    page.locator("#examples").get_by_text("MR slice").click()  # a new file starts from its own window
    page.wait_for_function("document.querySelector('#image-info').innerText.includes('Modality: MR')", timeout=60_000)
    page.wait_for_function("document.querySelectorAll('#window input')[0].value === 'auto'", timeout=10_000)

    page.get_by_role("tab", name="Before / after").click()  # its canvas mounts now, and is painted
    page.wait_for_function(BEFORE_AFTER_PAINTED, timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / "tab-before-after.png"), full_page=True)
    page.get_by_role("tab", name="Component maps").click()
    page.wait_for_selector("#maps .js-plotly-plot", timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / "tab-component-maps.png"), full_page=True)

    page.get_by_role("tab", name="Batch").click()
    img = tmp_path / "phantom.png"
    Image.fromarray((np.random.default_rng(0).random((96, 96)) * 255).astype(np.uint8)).save(img)
    bad = tmp_path / "report.txt"
    bad.write_text("not an image")
    page.locator("#batch-files input[type=file]").set_input_files([str(img), str(bad)])
    page.wait_for_timeout(1000)
    page.get_by_role("button", name="Score all").click()
    page.wait_for_function("document.querySelector('#batch-table').innerText.includes('report.txt')", timeout=60_000)
    table = page.locator("#batch-table").inner_text()
    assert "phantom.png" in table and "not an image file" in table
    page.screenshot(path=str(ARTIFACTS / "tab-batch.png"), full_page=True)

    page.get_by_role("tab", name="Scan order").click()
    page.wait_for_selector("#scan .js-plotly-plot", timeout=30_000)
    shown = (
        "() => document.querySelector('#scan .js-plotly-plot').data.slice(0, 2)"
        ".map(t => t.x.filter(v => v !== null).length).reduce((a, b) => a + b, 0)"
    )
    full = page.evaluate(shown)
    page.get_by_role("button", name="▶ Walk the path").click()
    page.wait_for_function(f"({shown})() < {full}", timeout=30_000)  # the walk restarts from step 1 ...
    partway = page.evaluate(shown)
    page.wait_for_function(f"({shown})() > {partway}", timeout=30_000)  # ... and advances on its own
    page.screenshot(path=str(ARTIFACTS / "tab-scan-order.png"), full_page=True)
    page.get_by_role("button", name="❚❚ Stop").click()


@pytest.mark.skipif(not SHIPPED.is_file(), reason="shipped checkpoint not present")
def test_a_bad_upload_shows_its_reason_and_the_page_keeps_working(page, tmp_path):
    page.get_by_role("tab", name="Analyse").first.click()
    bad = tmp_path / "scan.png"
    bad.write_bytes(b"this is a letter, not a picture\n" * 10)
    clear = page.locator("#upload").get_by_label("Clear")
    if clear.count():  # an earlier test's example left a file in the widget
        clear.first.click()
    page.locator("#upload input[type=file]").set_input_files(str(bad))
    toast = page.get_by_text("This file is not an image file this app can read")
    toast.first.wait_for(timeout=30_000)
    # the previous image's map is gone, not left standing beside the refusal
    page.wait_for_function("document.querySelector('#overlay-canvas canvas').width === 0", timeout=10_000)
    page.screenshot(path=str(ARTIFACTS / "browser-4-bad-upload.png"), full_page=True)
    page.locator("#examples").get_by_text("Synthetic chest phantom").click()
    page.wait_for_function("document.querySelector('#image-info').innerText.includes('PNG')", timeout=60_000)
    assert "Score" in page.locator("#verdict").inner_text()


@pytest.mark.skipif(not SHIPPED.is_file(), reason="shipped checkpoint not present")
def test_volume_profile_opens_on_the_highest_slice_and_a_click_shows_another(page, tmp_path):
    import nibabel as nib

    from tests.test_volume import _head

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(_head(), np.eye(4)), tmp_path / "head.nii.gz")
    page.get_by_role("tab", name="Volume").click()
    page.locator("#volume-files input[type=file]").set_input_files(str(tmp_path / "head.nii.gz"))
    page.get_by_role("button", name="Score the volume").click()
    page.wait_for_function("document.querySelector('#volume-verdict').innerText.includes(' of 12)')", timeout=120_000)
    first = page.locator("#volume-slice input[type=number]").input_value()
    assert f"slice {first} ({int(first) + 1} of 12)" in page.locator("#volume-verdict").inner_text().replace("\n", "")
    page.screenshot(path=str(ARTIFACTS / "browser-volume-1.png"), full_page=True)
    target = 4 if first != "4" else 5
    shown = f"document.querySelector('#volume-verdict').innerText.includes('slice {target} ({target + 1} of 12)')"
    hit = []
    for _ in range(3):  # Gradio may redraw the plot after it first appears; the page re-attaches its click hook
        page.wait_for_function(
            "(() => { const p = document.querySelector('#volume-profile .js-plotly-plot');"
            " return p && p.__sliceClick && p.querySelector('.scatterlayer .point'); })()",
            timeout=30_000,
        )
        points = page.locator("#volume-profile .js-plotly-plot .scatterlayer .trace").first.locator(".point")
        point = points.nth(target - 1)  # slice 0 is blank: it has no point, so point k is slice k + 1
        box = point.bounding_box()  # a real click where the point is drawn: plotly listens on the layer above it
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        under = "e => e && (e.className.baseVal ?? e.className)"  # the element a real click lands on
        hit.append(page.evaluate(f"({under})(document.elementFromPoint({x}, {y}))"))
        page.mouse.click(x, y)
        try:
            page.wait_for_function(shown, timeout=15_000)
            break
        except playwright.TimeoutError:
            continue
    else:
        pytest.fail(f"three clicks on slice {target}'s point did not show it; the elements under the pointer: {hit}")
    assert page.locator("#volume-slice input[type=number]").input_value() == str(target)
    page.screenshot(path=str(ARTIFACTS / "browser-volume-2.png"), full_page=True)


@pytest.mark.skipif(not MR_CHECKPOINT.is_file(), reason="brain MRI checkpoint not present")
def test_brain_tumour_example_switches_to_mr_and_shows_its_ground_truth_on_request(page):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.get_by_role("tab", name="Analyse").click()
    examples = page.locator("#examples")
    if not examples.get_by_text("Brain MRI FLAIR, tumour").count():
        pytest.skip("the brain MRI examples need ../shared/data/lgg-flair")
    before = page.locator("#verdict").inner_text()  # an earlier test's verdict must not pass for this one's
    examples.get_by_text("Brain MRI FLAIR, tumour").click()
    page.wait_for_function(
        "(before) => document.querySelector('#checkpoint input').value.startsWith('lgg128-percentile') && "
        "document.querySelector('#image-info').innerText.includes('format: PNG') && "
        "document.querySelector('#verdict').innerText.includes('Score') && "
        "document.querySelector('#verdict').innerText !== before",
        arg=before,
        timeout=60_000,
    )
    # its checkpoint keeps the peak alone (α = β = γ = 0): setting the sliders to them re-scores nothing
    page.wait_for_timeout(1500)
    verdict = page.locator("#verdict").inner_text()
    assert "Re-weighted" not in verdict and "Score" in verdict
    assert "β = 0\t" in page.locator("#components").inner_text()  # the table's cells, tab-separated
    page.get_by_role("tab", name="Overlay").click()
    _repainted(page, 0, 60_000)
    frame = _frame(page)
    page.locator("#truth input").check()
    _repainted(page, frame)
    page.screenshot(path=str(ARTIFACTS / "mr-tumour-with-truth.png"), full_page=True)
    # the same slice through two checkpoints on the Compare tab: the brain MRI model and the chest one
    page.get_by_role("tab", name="Compare").click()
    group = page.locator("#compare-choices")
    for box in group.locator("input[type=checkbox]").all():
        if box.is_checked():
            box.uncheck()
    group.get_by_text("lgg-flair-efficientnet_lite0", exact=False).first.click()
    group.get_by_text("zhanglab128-efficientnet_lite0", exact=False).first.click()
    page.get_by_role("button", name="Compare on the analysed image").click()
    page.wait_for_function(
        "document.querySelector('#compare-caption-1') && "
        "document.querySelector('#compare-caption-1').innerText.includes('validation AUROC')",
        timeout=120_000,
    )
    assert "lgg-flair-efficientnet_lite0" in page.locator("#compare-caption-0").inner_text()
    page.wait_for_selector("#compare-map-1 img", timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / "compare-mr-tumour.png"), full_page=True)


@pytest.mark.skipif(not CT_CHECKPOINT.is_file(), reason="head CT checkpoint not present")
def test_head_ct_example_is_judged_by_the_ct_checkpoint(page):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.get_by_role("tab", name="Analyse").click()
    examples = page.locator("#examples")
    if not examples.get_by_text("Head CT, haemorrhage").count():
        pytest.skip("the head CT examples need ../shared/data/head-ct")
    before = page.locator("#verdict").inner_text()
    examples.get_by_text("Head CT, haemorrhage").click()
    page.wait_for_function(
        "(before) => document.querySelector('#checkpoint input').value.startsWith('head-ct') && "
        "document.querySelector('#verdict').innerText.includes('Score') && "
        "document.querySelector('#verdict').innerText !== before",
        arg=before,
        timeout=60_000,
    )
    text = page.locator("#verdict").inner_text()
    assert "cannot judge" not in text and "normal range for this model" in text
    page.screenshot(path=str(ARTIFACTS / "ct-haemorrhage.png"), full_page=True)
