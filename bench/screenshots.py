"""The README's screenshots of the newer views, taken from the running app with headless Chromium.

    python bench/screenshots.py [--out assets/screenshots] [--only VIEW ...]   (default: all views below)

Needs Playwright and a Chromium (see tests/test_browser.py), the shipped checkpoints and the data in
$SPMAMBA_DATA. Views whose checkpoint or data is missing are skipped with a message.

``analyse``: the README's first picture, the pneumonia chest X-ray example on the default checkpoint, and its
Before / after and Component maps views. ``batch``: three validation images of two datasets and a file that is
no image. ``dicom``: pydicom's CT sample in the lung window. ``scan-order``: the tab as it opens.

``compare``: the brain-MRI tumour example through the scan-order ablations on the Compare tab (the first four
present, in ``weights/ablations/``, of the Circular-Hilbert, raster, Hilbert, prototypes-off and boustrophedon
rows of ``--ablations``), written to ``compare-scan-orders-<prefix>.png``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from spmamba.data import data_root, labelled_folder, patient_id  # noqa: E402
from spmamba.demo.app import PAGE_HEAD, allowed_paths, build_demo  # noqa: E402
from spmamba.demo.canvas import BEFORE_AFTER_PAINTED, OVERLAY_CSS  # noqa: E402
from spmamba.demo.compare import RESEARCH  # noqa: E402
from spmamba.demo.examples import build_examples  # noqa: E402
from spmamba.imaging import load_image  # noqa: E402
from spmamba.zoo import LABEL_SEP, list_checkpoints, list_seg_checkpoints  # noqa: E402

VIEWS = ["analyse", "dicom", "batch", "scan-order", "volume", "mr", "ct", "segment", "compare"]
# the four first; boustrophedon where one of them is missing (the Compare tab takes at most four)
COMPARED_ROWS = ("circular-hilbert", "raster", "hilbert", "no-prototypes", "boustrophedon")


def lgg_patient_volume(folder: Path) -> Path | None:
    """The LGG validation patient with the most slices, as a NIfTI volume in slice order."""
    root = data_root()
    val = root / "lgg-flair" / "val" if root else None
    if val is None or not val.is_dir():
        return None
    samples = labelled_folder(val)
    best = max({patient_id(s.path) for s in samples}, key=lambda p: sum(patient_id(s.path) == p for s in samples))
    mine = sorted((s for s in samples if patient_id(s.path) == best), key=lambda s: int(s.path.stem.rsplit("_", 1)[1]))
    stack = np.stack([np.rot90(load_image(s.path).grey, -1) for s in mine], axis=2)
    path = folder / f"{best}.nii.gz"
    nib.save(nib.Nifti1Image(stack.astype(np.float32), np.eye(4)), path)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(ROOT / "assets" / "screenshots"))
    ap.add_argument("--only", nargs="*", default=VIEWS)
    ap.add_argument("--ablations", default="lgg128-e10", help="name prefix of the ablation rows to compare")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp())
    examples = build_examples(cache=tmp / "examples")
    demo = build_demo(examples)
    demo.queue().launch(
        prevent_thread_lock=True, quiet=True, allowed_paths=allowed_paths(examples), head=PAGE_HEAD, css=OVERLAY_CSS
    )
    checkpoints = " ".join(list_checkpoints().values())
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.goto(demo.local_url)
        page.wait_for_selector("#upload", timeout=60_000)

        def example(caption: str, name: str | None, truth: bool = False) -> None:
            """Analyse an example; screenshot the page as ``name``.png (None: analyse only)."""
            page.get_by_role("tab", name="Analyse").click()
            if not page.locator("#examples").get_by_text(caption).count():
                print(f"skipped {name}: no example '{caption}' (data missing)")
                return
            before = page.locator("#verdict").inner_text()
            page.locator("#examples").get_by_text(caption).click()
            # this image's verdict, not the previous example's: a new file first clears the verdict; then no
            # request still running (its progress text or bar)
            page.wait_for_function("(b) => document.querySelector('#verdict').innerText !== b", arg=before)
            page.wait_for_function(
                "(() => { const t = document.querySelector('#verdict').innerText;"
                " return t.includes('Score') && !document.querySelector('.eta-bar, .progress-text'); })()",
                timeout=90_000,
            )
            if truth:  # the page's script repaints the canvas (its frame count goes up)
                frame = "parseInt(document.querySelector('#overlay-canvas canvas').dataset.frame || '0')"
                painted = page.evaluate(frame)
                page.locator("#truth input").check()
                page.wait_for_function(f"(n) => {frame} > n", arg=painted)
            page.wait_for_timeout(1000)
            if name:
                page.screenshot(path=str(out / f"{name}.png"), full_page=True)
                print(f"wrote {name}.png")

        def shoot(name: str, ready: str, timeout: float = 90_000) -> None:
            """Screenshot the page as ``name``.png once ``ready`` (a JS expression) holds and no request runs."""
            page.wait_for_function(
                f"({ready}) && !document.querySelector('.eta-bar, .progress-text, .pending')", timeout=timeout
            )
            page.wait_for_timeout(1500)
            page.screenshot(path=str(out / f"{name}.png"), full_page=True)
            print(f"wrote {name}.png")

        if "analyse" in args.only:
            example("Chest X-ray, pneumonia", "analyse")
            page.get_by_role("tab", name="Before / after").click()  # its canvas mounts now, and is painted
            shoot("before-after", BEFORE_AFTER_PAINTED)
            page.get_by_role("tab", name="Component maps").click()
            shoot("component-maps", "document.querySelector('#maps .js-plotly-plot')")
            page.get_by_role("tab", name="Overlay").click()
        if "dicom" in args.only:
            example("CT slice", None)
            page.locator("#window input").click()
            page.get_by_role("option", name="lung").click()
            page.wait_for_function("document.querySelector('#image-info').innerText.includes('centre -600')")
            shoot("dicom-window", "document.querySelector('#verdict').innerText.includes('Score')")
        root = data_root()
        if "batch" in args.only and root and (root / "zhanglab" / "val").is_dir() and (root / "lgg-flair").is_dir():
            files = [sorted((root / "zhanglab" / "val" / c).iterdir())[0] for c in ("NORMAL", "PNEUMONIA")]
            files.append(sorted((root / "lgg-flair" / "val" / "TUMOR").iterdir())[0])
            notes = tmp / "notes.txt"
            notes.write_text("not an image")
            page.get_by_role("tab", name="Batch").click()
            page.locator("#batch-files input[type=file]").set_input_files([str(f) for f in [*files, notes]])
            page.wait_for_timeout(1500)
            page.get_by_role("button", name="Score all").click()
            shoot("batch", "document.querySelector('#batch-table').innerText.includes('notes.txt')", 120_000)
        if "scan-order" in args.only:
            page.get_by_role("tab", name="Scan order").click()
            shoot("scan-order", "document.querySelector('#scan .js-plotly-plot')")
        if "mr" in args.only and "lgg-flair" in checkpoints:
            example("Brain MRI FLAIR, tumour", "mr-tumour-truth", truth=True)
        rows = [f"{args.ablations}-{row}" for row in COMPARED_ROWS]
        present = [row for row in rows if (RESEARCH / f"{row}.safetensors").is_file()][:4]
        if "compare" in args.only and len(present) < 2:
            print(f"skipped compare: fewer than two of {', '.join(rows)} in {RESEARCH}")
        elif "compare" in args.only:
            example("Brain MRI FLAIR, tumour", None)
            page.get_by_role("tab", name="Compare").click()
            group = page.locator("#compare-choices")
            for box in group.locator("input[type=checkbox]").all():
                if box.is_checked():
                    box.uncheck()
            for row in present:
                group.get_by_text(f"{row}{LABEL_SEP}", exact=False).first.click()
            page.get_by_role("button", name="Compare on the analysed image").click()
            last = len(present) - 1
            caption = f"document.querySelector('#compare-caption-{last}')"
            mapped = f"document.querySelector('#compare-map-{last} img')"
            ready = f"{caption} && {caption}.innerText.includes('AUROC') && {mapped}"
            shoot(f"compare-scan-orders-{args.ablations}", ready, 300_000)
        if "ct" in args.only and "head-ct" in checkpoints:
            example("Head CT, haemorrhage", "ct-haemorrhage")
        if "volume" in args.only and (volume := lgg_patient_volume(tmp)) is not None:
            page.get_by_role("tab", name="Volume").click()
            page.locator("#volume-files input[type=file]").set_input_files(str(volume))
            page.wait_for_timeout(1500)
            page.get_by_role("button", name="Score the volume").click()
            page.wait_for_function(
                "document.querySelector('#volume-verdict').innerText.includes(' of ')", timeout=300_000
            )
            page.wait_for_selector("#volume-profile .js-plotly-plot .scatterlayer .point", timeout=60_000)
            page.wait_for_timeout(1500)
            page.screenshot(path=str(out / "volume-profile.png"), full_page=True)
            print("wrote volume-profile.png")
        seg = list_seg_checkpoints()
        ph2 = next((path for path in seg.values() if Path(path).name.startswith("ph2")), None)
        if "segment" in args.only and ph2 and root and (root / "ph2" / "images").is_dir():
            from spmamba.seg.checkpoint import read_seg_metadata

            # validation images only (not trained on), chosen by the checkpoint's own per-image Dice: the median
            # case for the README, and the worst one beside it, so neither flatters the network
            ranked = sorted(read_seg_metadata(ph2)["metrics"]["per_image"], key=lambda r: r["dice"])
            for name, row in (("segment-ph2.png", ranked[len(ranked) // 2]), ("segment-ph2-worst.png", ranked[0])):
                image = root / "ph2" / "images" / row["image"]
                page.goto(demo.local_url)
                page.get_by_role("tab", name="Segment").click()
                page.locator("#seg-upload input[type=file]").set_input_files(str(image))
                page.wait_for_function(
                    "document.querySelector('#seg-summary').innerText.includes('pixels')", timeout=120_000
                )
                page.locator("#seg-truth input[type=file]").set_input_files(str(root / "ph2" / "masks" / image.name))
                page.wait_for_function(
                    "document.querySelector('#seg-summary').innerText.includes('Dice')", timeout=60_000
                )
                page.wait_for_timeout(1000)
                page.screenshot(path=str(out / name), full_page=True)
                print(f"wrote {name}: {row['image']}, validation Dice {row['dice']:.3f}")
        browser.close()
    demo.close()


if __name__ == "__main__":
    main()
