"""What a user feels: slider input event to repainted pixels, in a real browser.

    python bench/bench_browser.py [--steps 20] [--threads 2] [--reference DIR]

Starts ``python app.py`` as its own process and drives it with headless Chromium (Playwright, as the browser
tests): analyses a chest X-ray, then drags each slider through ``steps`` values, one input event at a time.
For each event the page itself times, with ``performance.now()``, from dispatching the slider's ``input`` event
to the first animation frame after the view changed: the overlay (a new server image that has loaded, or the
client-side canvas's next frame), the verdict for the weight sliders, the slice view for the Volume tab. Median
and p95 per slider, and beside them the server-side time of the same redraw (``handlers.render`` on the same
image, in this process: the network excluded). A step that shows nothing within 10 s counts as 10 s.
``--reference DIR`` runs the same drags, in the same run, on the app of another checkout (e.g. a ``git worktree``
of the commit before a change), printed beside ours.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.common import free_port, parser, start, start_server  # noqa: E402

# The page's own timer: dispatch an input event on a slider and wait for the first frame after ``changed``.
DRAG = """
async ({slider, values, watch}) => {
  const range = document.querySelector(slider + ' input[type=range]');
  const state = () => watch.map((w) => {
    const el = document.querySelector(w);
    if (!el) return '';
    if (el.tagName === 'CANVAS') return el.dataset.frame || '';
    const img = el.tagName === 'IMG' ? el : el.querySelector('img');
    if (img) return img.complete && img.naturalWidth ? img.src : '';
    return el.innerText;
  }).join('|');
  const times = [];
  for (const v of values) {
    const before = state();
    const t0 = performance.now();
    range.value = v;
    range.dispatchEvent(new Event('input', {bubbles: true}));
    await new Promise((done) => {
      const check = () => {
        const now = state();
        if (now !== before && !now.split('|').includes('')) requestAnimationFrame(() => done());
        else if (performance.now() - t0 > 10000) done();
        else requestAnimationFrame(check);
      };
      requestAnimationFrame(check);
    });
    times.push(performance.now() - t0);
    range.dispatchEvent(new Event('change', {bubbles: true}));
  }
  return times;
}
"""


def overlay_view() -> str:
    """The element that shows the overlay: the client-side canvas where the page has one, else the image."""
    return "#overlay-canvas canvas, #overlay img"


def drags(page, steps: int) -> dict[str, list[float]]:
    """ms per input event for each slider of the Analyse tab."""
    sliders = {
        "opacity": ("#opacity", 0.05, 0.95, [overlay_view()]),
        "outline level": ("#contour", 0.55, 1.0, [overlay_view()]),
        "α prototype": ("#alpha", 0.2, 1.8, [overlay_view(), "#verdict"]),
        "β concentration": ("#beta", -0.15, 0.15, [overlay_view(), "#verdict"]),
        "γ contrast": ("#gamma", 100, 4000, [overlay_view(), "#verdict"]),
    }
    out = {}
    for name, (slider, lo, hi, watch) in sliders.items():
        values = [float(v) for v in np.round(np.linspace(lo, hi, steps), 4)]
        page.evaluate(DRAG, {"slider": slider, "values": values, "watch": [_first(page, watch[0]), *watch[1:]]})
        out[name] = page.evaluate(
            DRAG, {"slider": slider, "values": values[::-1], "watch": [_first(page, watch[0]), *watch[1:]]}
        )
    return out


def _first(page, selectors: str) -> str:
    """The first of several comma-separated selectors present on the page."""
    for sel in selectors.split(","):
        if page.locator(sel.strip()).count():
            return sel.strip()
    raise RuntimeError(f"none of {selectors} is on the page")


def volume_drag(page, path: Path, steps: int) -> list[float]:
    page.get_by_role("tab", name="Volume").click()
    page.locator("#volume-files input[type=file]").set_input_files(str(path))
    page.get_by_role("button", name="Score the volume").click()
    page.wait_for_function("document.querySelector('#volume-verdict').innerText.includes(' of ')", timeout=300_000)
    n = int(page.locator("#volume-slice input[type=range]").get_attribute("max"))
    values = [int(v) for v in np.linspace(1, n - 1, min(steps, n - 1))]
    return page.evaluate(DRAG, {"slider": "#volume-slice", "values": values, "watch": ["#volume-verdict"]})


def server_ms(path: Path, repeat: int = 20) -> dict[str, float]:
    """The server's share: handlers.render on the same image (re-weight, colour, encode nothing), median ms."""
    from spmamba.demo import handlers
    from spmamba.zoo import list_checkpoints

    analysis = handlers.analyse(str(path), next(iter(list_checkpoints().values())))
    times = []
    for i in range(repeat):
        t = time.perf_counter()
        handlers.render(analysis, analysis.weights, opacity=0.1 + 0.04 * i)
        times.append(1e3 * (time.perf_counter() - t))
    return {"render": statistics.median(times)}


def p95(xs: list[float]) -> float:
    return float(np.percentile(xs, 95))


def measure(app_dir: Path, film: Path, head: Path, steps: int, env: dict, chromium: str) -> dict[str, list[float]]:
    """Start ``app_dir``'s app.py and drag every slider in a fresh browser page."""
    from playwright.sync_api import sync_playwright

    port = free_port()
    proc, _ = start_server([sys.executable, "app.py", "--port", str(port)], port, app_dir, env)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            page.goto(f"http://127.0.0.1:{port}/")
            page.locator("#upload input[type=file]").set_input_files(str(film))
            page.wait_for_function("document.querySelector('#verdict').innerText.includes('Score')", timeout=120_000)
            page.get_by_text("Score weights").click()  # the accordion: its sliders are laid out once opened
            page.wait_for_timeout(500)
            results = drags(page, steps)
            results["Volume slice"] = volume_drag(page, head, steps)
            browser.close()
        return results
    finally:
        proc.terminate()
        proc.wait()


def main() -> None:
    ap = parser(__doc__, repeat=1)
    ap.add_argument("--steps", type=int, default=20, help="input events per slider (a drag)")
    ap.add_argument("--reference", type=Path, default=None, help="another checkout's app, timed beside ours")
    args = ap.parse_args()
    import nibabel as nib
    from PIL import Image

    from tests.test_browser import _chromium
    from tests.test_volume import _head

    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), GRADIO_ANALYTICS_ENABLED="False")
    columns = ["slider", "median ms (event → pixels)", "p95 ms", "events", "server-side ms"]
    if args.reference:
        columns[1:1] = ["reference median ms", "reference p95 ms"]
    start(args.threads, columns)
    with tempfile.TemporaryDirectory() as tmp:
        film = Path(tmp) / "film.png"
        yy, xx = np.mgrid[:400, :360]
        Image.fromarray((127 + 90 * np.sin(xx / 23) * np.cos(yy / 31)).astype(np.uint8)).save(film)
        head = Path(tmp) / "head.nii.gz"
        nib.save(nib.Nifti1Image(_head(), np.eye(4)), head)
        reference = measure(args.reference, film, head, args.steps, env, _chromium()) if args.reference else None
        ours = measure(ROOT, film, head, args.steps, env, _chromium())
        server = server_ms(film)
    for name, times in ours.items():
        side = f"{server['render']:.0f}" if name != "Volume slice" else "–"
        ref = ""
        if reference is not None:
            ref = f"{statistics.median(reference[name]):.0f} | {p95(reference[name]):.0f} | "
        print(f"| {name} | {ref}{statistics.median(times):.0f} | {p95(times):.0f} | {len(times)} | {side} |")


if __name__ == "__main__":
    main()
