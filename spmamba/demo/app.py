"""The SP-Mamba Studio page, top to bottom as it appears: header, then one tab per file (Analyse, Batch, Volume,
Segment, Scan order), the documented endpoints, warm-up and launch. Every tab sends a file down one route,
``spmamba.pipeline``: the checkpoint chosen by the image's content, its window, the out-of-domain check."""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
from pathlib import Path

import gradio as gr
import numpy as np
from PIL import Image

from spmamba import imaging
from spmamba.inference import default_device
from spmamba.ssm import backend_name
from spmamba.zoo import list_checkpoints, list_seg_checkpoints

from . import handlers, uploads
from .analyse import analyse_tab, api
from .batch import batch_tab
from .canvas import OVERLAY_CSS, OVERLAY_JS
from .compare import compare_tab
from .examples import Example, build_examples, build_seg_examples
from .scan_order import scan_tab
from .segment import segment_endpoint, segment_tab
from .site import BANNER, NETWORK_CONCURRENCY, PRIVATE, Site, log, user_errors
from .volume import PROFILE_CLICK_JS, volume_endpoint, volume_tab

PAGE_HEAD = PROFILE_CLICK_JS + OVERLAY_JS  # the page's own scripts: the profile's clicks, the overlay canvas


def header(site: Site) -> None:
    gr.Markdown(
        "# SP-Mamba Studio\nUnsupervised anomaly maps for medical images (SP-Mamba, Pan & Lu, ACM MM 2025) and, "
        "on the Segment tab, supervised lesion segmentation (Mamba-MIS)."
    )
    gr.Markdown(BANNER, elem_id="banner")
    device = default_device()
    gr.Markdown(f"Selective-scan backend: **{backend_name(device)}** on {device}.")


def build_demo(
    examples: list[Example] | None = None,
    seg_checkpoints: dict[str, str] | None = None,
    seg_examples: list[Example] | None = None,
) -> gr.Blocks:
    seg_checkpoints = list_seg_checkpoints() if seg_checkpoints is None else seg_checkpoints
    seg_examples = build_seg_examples(seg_checkpoints) if seg_examples is None else seg_examples
    site = Site(list_checkpoints(), build_examples() if examples is None else examples, seg_checkpoints)
    network = dict(concurrency_id="network", concurrency_limit=NETWORK_CONCURRENCY)
    uploads.install()
    # Uploads and cached maps expire with the session: files after an hour, state after an hour idle.
    with gr.Blocks(title="SP-Mamba Studio", delete_cache=(600, 3600)) as demo:
        header(site)
        state = gr.State(None, time_to_live=3600)
        analyse_tab(site, state)
        batch_tab(site)
        if site.checkpoints:
            volume_tab(site.pipeline, user_errors, PRIVATE, network)
        if seg_checkpoints:  # the segmentation model appears where a checkpoint for it is installed
            segment_tab(site.pipeline, user_errors, PRIVATE, network, seg_examples)
        if site.checkpoints:
            compare_tab(site, state)
        scan_tab(state)
        api(site, network)
        if site.checkpoints:
            volume_endpoint(site.pipeline, user_errors, network)
        if seg_checkpoints:
            segment_endpoint(site.pipeline, user_errors, network)
    return demo


def warm_up(checkpoints: dict[str, str]) -> threading.Thread:
    """Run one whole analysis of a generated PNG in the background, so the first request costs what the
    others do: model loading, numba kernels, torch's first calls, the image decoder, the overlay and figure,
    and the WebP encoder the page sends the overlay with all happen here, not in a request. Gradio wraps
    every request in a matplotlib backend switch that imports pyplot (a third of a second) the first time;
    that import happens here too."""

    def run():
        try:
            import matplotlib

            matplotlib.use("agg")
            import matplotlib.pyplot  # noqa: F401

            if checkpoints:
                with tempfile.TemporaryDirectory(prefix="spmamba-warm-") as tmp:
                    png = Path(tmp) / "warm.png"
                    yy, xx = np.mgrid[:256, :256] / 256
                    Image.fromarray((127 + 100 * np.sin(9 * xx) * np.cos(7 * yy)).astype(np.uint8)).save(png)
                    analysis = handlers.analyse(str(png), next(iter(checkpoints.values())))
                gr.Image(type="numpy").postprocess(handlers.render(analysis, analysis.weights).overlay)
        except Exception as err:  # the page must come up even if warming fails; requests will say why
            log.warning("warm-up failed: %s", type(err).__name__)

    thread = threading.Thread(target=run, name="spmamba-warm-up", daemon=True)
    thread.start()
    return thread


def allowed_paths(examples: list[Example]) -> list[str]:
    """The example files, their thumbnails and masks, one by one: nothing else outside the app's own folders is
    served."""
    return sorted({str(p) for e in examples for p in (e.path, e.thumb, e.truth) if p})


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="SP-Mamba Studio demo")
    ap.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    ap.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    ap.add_argument(
        "--examples",
        action="append",
        default=[],
        metavar="DIR",
        help="add the images in DIR to the examples gallery (repeatable)",
    )
    ap.add_argument(
        "--max-upload-mb",
        type=float,
        default=float(os.environ.get("SPMAMBA_MAX_UPLOAD_MB", 200)),
        help="largest file accepted, in MB (default 200, or $SPMAMBA_MAX_UPLOAD_MB)",
    )
    ap.add_argument(
        "--max-pixels",
        type=int,
        default=int(os.environ.get("SPMAMBA_MAX_PIXELS", imaging.MAX_PIXELS)),
        help=f"largest image accepted, in pixels (default {imaging.MAX_PIXELS:,}, or $SPMAMBA_MAX_PIXELS)",
    )
    return ap.parse_args(argv)


def launch_options(args: argparse.Namespace, examples: list[Example]) -> dict:
    """Keyword arguments for ``Blocks.launch``: address, upload limit, the example files it may serve."""
    return dict(
        server_name=args.host,
        server_port=args.port,
        max_file_size=int(args.max_upload_mb * 1024**2),
        allowed_paths=allowed_paths(examples),
        head=PAGE_HEAD,
        css=OVERLAY_CSS,
    )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    imaging.MAX_PIXELS = args.max_pixels
    warming = warm_up(list_checkpoints())  # first, so the model loads while the page is being built
    examples, seg_examples = build_examples(args.examples), build_seg_examples(list_seg_checkpoints())
    demo = build_demo(examples, seg_examples=seg_examples)
    warming.join(timeout=120)  # the page answers once a request costs what every later one does
    demo.queue(default_concurrency_limit=NETWORK_CONCURRENCY).launch(**launch_options(args, examples + seg_examples))
