"""The SP-Mamba Studio page, top to bottom as it appears."""
from __future__ import annotations

import argparse
import functools
import logging
import os
import traceback

from pathlib import Path

import gradio as gr
import numpy as np
import torch

from spmamba import imaging
from spmamba.checkpoint import CheckpointError
from spmamba.imaging import ImageLoadError
from spmamba.scan import ORDERS
from spmamba.ssm import backend_name

from . import handlers
from .examples import Example, build_examples
from .models import image_modalities, list_checkpoints, preselect
from .render import maps_figure, scan_figure, walk_step

BANNER = ("**Research use only — not for diagnosis.** Scores say how unusual an image is for a model trained on "
          "normal images of one dataset; they are not a clinical finding.")
SAFE_META = ("format", "Modality", "BodyPartExamined", "ViewPosition", "PhotometricInterpretation", "frames",
             "shape", "size")
NETWORK_CONCURRENCY = 2 if torch.cuda.is_available() else 1  # one CPU forward already uses every core
log = logging.getLogger("spmamba.demo")


def user_errors(fn):
    """Every failure reaches the user as one clear sentence and the server keeps serving.

    Unforeseen errors are logged by type and code location only: their messages may quote file
    names or header values, which can identify a patient.
    """
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except (ImageLoadError, CheckpointError) as err:
            raise gr.Error(str(err)) from None
        except Exception as err:
            where = traceback.extract_tb(err.__traceback__)[-1]
            log.error("%s in %s:%d (%s)", type(err).__name__, Path(where.filename).name, where.lineno, where.name)
            raise gr.Error(f"Something went wrong while processing this request ({type(err).__name__}). "
                           "The app is still running: try again or with another file.") from None
    return wrapper


def _image_info(meta: dict) -> str:
    """Acquisition facts only; the loader never passes identifiers, and this shows a fixed whitelist."""
    parts = [f"{k}: {meta[k]}" for k in SAFE_META if k in meta]
    return "Image — " + " · ".join(parts) if parts else ""


def _options(preset: str, centre: float, width: float, axis: int, index: float | None) -> handlers.ImageOptions:
    return handlers.ImageOptions(handlers.window_for(preset, centre, width),
                                 None if index is None else int(index), int(axis))


def build_demo(examples: list[Example] | None = None) -> gr.Blocks:
    checkpoints = list_checkpoints()
    labels = list(checkpoints)
    examples = build_examples() if examples is None else examples
    device = "cuda" if torch.cuda.is_available() else "cpu"

    def checkpoint_path(label: str) -> str:
        if label not in checkpoints:
            raise gr.Error("No checkpoint is selected: put a .safetensors checkpoint in weights/ and restart.")
        return checkpoints[label]

    @user_errors
    def analyse(path, label, preset, centre, width, axis, index, opacity, contour, view):
        """Run the network once for this file and these image options; fill every view."""
        if not path:
            raise gr.Error("Upload an image or pick an example first.")
        image = handlers.load(path, _options(preset, centre, width, axis, index))
        label, note = preselect(image_modalities(image.meta), checkpoints, label)
        analysis = handlers.analyze_image(image, checkpoint_path(label), [note] if note else [])
        w = analysis.weights
        r = handlers.render(analysis, w, opacity, contour)
        m = analysis.image_meta
        nifti, frames = m.get("format") == "NIfTI", int(m.get("frames", 1))
        grey_dicom = m.get("format") == "DICOM" and m.get("PhotometricInterpretation", "").startswith("MONOCHROME")
        depth = m.get("slices", 1) if nifti else frames
        index_update = gr.update(visible=depth > 1, maximum=max(depth - 1, 1),
                                 value=m.get("slice", m.get("frame", 0)),
                                 label=f"Slice along axis {m['axis']}" if nifti else "Frame")
        maps = maps_figure(analysis.maps.per_scale[0].numpy(), analysis.maps.prototype[0].numpy())
        return (analysis, *_views(analysis, r, view), r.colour_bar, r.figure, r.verdict, r.table, maps,
                w.alpha, w.beta, w.gamma, w.dog_sigma, w.dog_k_sigma, label, preset, int(axis),
                gr.update(visible=grey_dicom), gr.update(visible=nifti), index_update, _image_info(m))

    def _views(analysis, r, view):
        """Only the visible picture is sent on each event; the other is skipped."""
        if view == "compare":
            return gr.skip(), ((analysis.display * 255).astype(np.uint8), r.overlay)
        return r.overlay, gr.skip()

    @user_errors
    def redraw(analysis, alpha, beta, gamma, sigma, k_sigma, opacity, contour, view):
        if analysis is None:  # nothing analysed yet (or a new file is loading): leave the page as it is
            return (gr.skip(),) * 6
        w = handlers.weights_from_sliders(analysis.weights, alpha, beta, gamma, sigma, k_sigma)
        r = handlers.render(analysis, w, opacity, contour)
        return (*_views(analysis, r, view), r.colour_bar, r.figure, r.verdict, r.table)

    def reset(analysis):
        w = analysis.weights if analysis is not None else handlers.ScoreWeights()
        return w.alpha, w.beta, w.gamma, w.dog_sigma, w.dog_k_sigma

    def pick_example(evt: gr.SelectData):
        return str(examples[evt.index].path)

    def apply_preset(preset, centre, width):
        window = handlers.WINDOW_PRESETS.get(preset)
        return (window[0], window[1]) if window else (centre, width)

    @user_errors
    def batch(paths, label, progress=gr.Progress()):
        rows, csv_path = handlers.score_files(paths, checkpoint_path(label), progress)
        return rows, str(csv_path)

    @user_errors
    def api_analyze(path, label):
        """Scores as JSON and the anomaly-map overlay for one image."""
        if not checkpoints:
            raise gr.Error("No checkpoint is installed in weights/.")
        analysis = handlers.analyze(path, checkpoints.get(label, checkpoints[labels[0]]))
        r = handlers.render(analysis, analysis.weights)
        above, pct = handlers.placement(r.scores["total"], analysis.calibration)
        return ({"scores": r.scores, "threshold": (analysis.calibration or {}).get("threshold"),
                 "above_threshold": bool(above), "percentile_among_normal": pct,
                 "score_weights": analysis.weights.to_dict(), "image": analysis.image_meta}, r.overlay)

    # Uploads and cached maps expire with the session: files after an hour, state after an hour idle.
    with gr.Blocks(title="SP-Mamba Studio", delete_cache=(600, 3600)) as demo:
        gr.Markdown("# SP-Mamba Studio\nUnsupervised anomaly maps for medical images (Pan & Lu, ACM MM 2025).")
        gr.Markdown(BANNER, elem_id="banner")
        gr.Markdown(f"Selective-scan backend: **{backend_name(device)}** on {device}.")
        state = gr.State(None, time_to_live=3600)
        view = gr.State("overlay")
        with gr.Tab("Analyse"):
            with gr.Row():
                with gr.Column(scale=1):
                    upload = gr.File(label="Image: PNG, JPEG, TIFF, DICOM (.dcm or none), NIfTI (.nii/.nii.gz)",
                                     type="filepath", elem_id="upload")
                    gallery = gr.Gallery([(str(e.thumb), e.caption) for e in examples], label="Examples",
                                         columns=3, height=250, allow_preview=False, interactive=False,
                                         elem_id="examples")
                    model = gr.Dropdown(labels, value=labels[0] if labels else None, label="Checkpoint")
                    info = gr.Markdown(elem_id="image-info")
                    with gr.Group(visible=False) as dicom_box:
                        preset = gr.Dropdown(list(handlers.WINDOW_PRESETS), value="auto",
                                             label="DICOM window (CT presets in HU)", elem_id="window")
                        with gr.Row():
                            centre = gr.Slider(-1200, 3000, 40, step=10, label="Window centre")
                            width = gr.Slider(1, 4000, 400, step=10, label="Window width")
                    with gr.Group(visible=False) as nifti_box:
                        axis = gr.Radio([0, 1, 2], value=2, label="NIfTI slice axis (0 sagittal, 1 coronal, 2 axial)")
                    index = gr.Slider(0, 1, 0, step=1, label="Slice", visible=False)
                    go = gr.Button("Analyse again", variant="primary")
                    opacity = gr.Slider(0, 1, 0.45, step=0.05, label="Heat-map opacity", elem_id="opacity")
                    contour = gr.Slider(0.5, 1.01, 0.9, step=0.01, label="Outline above (fraction of map range)")
                    with gr.Accordion("Score weights (re-scored live from cached maps)", open=True):
                        alpha = gr.Slider(0, 2, 1.0, step=0.05, label="α prototype")
                        beta = gr.Slider(-0.2, 0.2, -0.025, step=0.005, label="β concentration", elem_id="beta")
                        gamma = gr.Slider(0, 5000, 400, step=10, label="γ contrast")
                        sigma = gr.Slider(0.3, 3, 0.6, step=0.1, label="DoG σ")
                        k_sigma = gr.Slider(0.6, 6, 1.2, step=0.1, label="DoG kσ")
                        reset_btn = gr.Button("Reset to the checkpoint's weights")
                with gr.Column(scale=2):
                    with gr.Tabs():
                        with gr.Tab("Overlay") as overlay_tab:
                            picture = gr.Image(label="Anomaly map over the image (bright = unusual)", type="numpy",
                                               elem_id="overlay")
                        with gr.Tab("Before / after") as compare_tab:
                            compare = gr.ImageSlider(label="Image ⟷ anomaly map", type="numpy", elem_id="compare")
                        with gr.Tab("Component maps"):
                            maps_plot = gr.Plot(label="Cached maps the sliders combine", elem_id="maps")
                    bar = gr.HTML()
                    verdict = gr.Markdown(elem_id="verdict")
                    plot = gr.Plot(label="Score components")
                    table = gr.Markdown(elem_id="components")
        with gr.Tab("Batch"):
            gr.Markdown("Score many images at once with the checkpoint's own weights. ZIP files are opened; "
                        "files that cannot be read are listed with the reason.")
            with gr.Row():
                batch_files = gr.File(file_count="multiple", type="filepath", label="Images or ZIP files",
                                      elem_id="batch-files")
                with gr.Column():
                    batch_model = gr.Dropdown(labels, value=labels[0] if labels else None, label="Checkpoint")
                    batch_go = gr.Button("Score all", variant="primary")
                    batch_csv = gr.File(label="Scores as CSV")
            batch_table = gr.Dataframe(headers=handlers.BATCH_COLUMNS, interactive=False, wrap=True,
                                       label="Scores (click a column header to sort)", elem_id="batch-table",
                                       column_widths=["22%", "8%", "16%", "10%", "8%", "36%"])
        with gr.Tab("Scan order"):
            gr.Markdown("The order in which the Mamba decoder reads each feature map. Circular-Hilbert: rings from "
                        "the outside in, then a Hilbert curve through the centre.")
            with gr.Row():
                order = gr.Dropdown(list(ORDERS), value="circular_hilbert", label="Order")
                size = gr.Dropdown([8, 16, 32, 64], value=16, label="Map size (decoder resolution)")
                ndirs = gr.Radio([8, 16], value=8, label="Directions")
                direction = gr.Slider(0, 15, 0, step=1, label="Direction")
            with gr.Row():
                steps = gr.Slider(1, 256, 256, step=1, label="Steps shown (drag to walk the sequence)", scale=4)
                walk = gr.Button("▶ Walk the path", scale=1)
                stop = gr.Button("❚❚ Stop", scale=1)
                over_image = gr.Checkbox(False, label="Draw over the analysed image", scale=1)
            walker = gr.Timer(0.3, active=False)
            scan_plot = gr.Plot(value=scan_figure("circular_hilbert", 16, 8, 0, None), elem_id="scan")

        private = dict(api_visibility="private")
        image_inputs = [upload, model, preset, centre, width, axis, index, opacity, contour, view]
        analysis_outputs = [state, picture, compare, bar, plot, verdict, table, maps_plot, alpha, beta, gamma, sigma,
                            k_sigma, model, preset, axis, dicom_box, nifti_box, index, info]
        # Progress and errors show on the picture only (plus the error's own message), not on every output.
        net = dict(concurrency_id="network", concurrency_limit=NETWORK_CONCURRENCY, show_progress_on=picture,
                   **private)

        def fresh(path, label, *rest):
            """A new file: the file's own window, middle slice, axial axis. A cleared upload clears the cache."""
            if not path:
                return (None,) + (gr.skip(),) * (len(analysis_outputs) - 1)
            return analyse(path, label, "auto", 40, 400, 2, None, *rest[-3:])

        views = [state, picture, compare, bar, plot, verdict, table, maps_plot, info]
        # A new file first clears the previous one's results, so a failed upload never shows stale maps.
        hidden = [dicom_box, nifti_box, index]
        upload.change(lambda: (None,) * len(views) + (gr.update(visible=False),) * len(hidden), None,
                      views + hidden, show_progress="hidden", **private).then(
            fresh, image_inputs, analysis_outputs, **net)
        gallery.select(pick_example, None, upload, **private)
        # Callable by clients (the concurrency test drives sessions with them) but not documented as the API.
        ui = dict(concurrency_id="network", concurrency_limit=NETWORK_CONCURRENCY, show_progress_on=picture,
                  api_visibility="undocumented")
        go.click(analyse, image_inputs, analysis_outputs, api_name="ui_analyse", **ui)
        model.input(analyse, image_inputs, analysis_outputs, **net)
        index.release(analyse, image_inputs, analysis_outputs, **net)
        axis.input(lambda *a: analyse(*a[:5], a[5], None, *a[7:]), image_inputs, analysis_outputs, **net)
        preset.input(apply_preset, [preset, centre, width], [centre, width], **private).then(
            analyse, image_inputs, analysis_outputs, **net)
        for s in (centre, width):
            s.release(lambda: "custom", None, preset, **private).then(analyse, image_inputs, analysis_outputs, **net)

        sliders = [alpha, beta, gamma, sigma, k_sigma, opacity, contour]
        redraw_outputs = [picture, compare, bar, plot, verdict, table]
        for i, s in enumerate(sliders):
            s.change(redraw, [state] + sliders + [view], redraw_outputs, trigger_mode="always_last",
                     show_progress="hidden", concurrency_id="render", concurrency_limit=4,
                     **(dict(api_name="ui_redraw", api_visibility="undocumented") if i == 0 else private))
        for tab, name in ((overlay_tab, "overlay"), (compare_tab, "compare")):
            tab.select(lambda n=name: n, None, view, **private).then(
                redraw, [state] + sliders + [view], redraw_outputs, show_progress="hidden", **private)
        reset_btn.click(reset, state, [alpha, beta, gamma, sigma, k_sigma], **private)

        batch_go.click(batch, [batch_files, batch_model], [batch_table, batch_csv], concurrency_id="batch",
                       concurrency_limit=1, **private)

        scan_inputs = [order, size, ndirs, direction, steps, over_image, state]

        def draw_scan(o, n, k, d, st, over, analysis):
            background = analysis.display if over and analysis is not None else None
            return scan_figure(o, int(n), int(k), int(d), int(st), background)

        for c in scan_inputs[:-1]:
            c.change(draw_scan, scan_inputs, scan_plot, show_progress="hidden", **private)

        def walk_tick(st, n):
            nxt, done = walk_step(st, int(n))
            return nxt, gr.Timer(active=not done)

        size.change(lambda n: gr.update(maximum=int(n) ** 2, value=int(n) ** 2), size, steps, **private)
        walk.click(lambda: (1, gr.Timer(active=True)), None, [steps, walker], **private)
        stop.click(lambda: gr.Timer(active=False), None, walker, **private)
        walker.tick(walk_tick, [steps, size], [steps, walker], show_progress="hidden", **private)

        api_file = gr.File(visible=False, type="filepath")
        api_model = gr.Textbox(visible=False)
        api_json = gr.JSON(visible=False)
        api_map = gr.Image(visible=False, type="numpy")
        api_button = gr.Button(visible=False)
        api_button.click(api_analyze, [api_file, api_model], [api_json, api_map], api_name="analyze",
                         concurrency_id="network", concurrency_limit=NETWORK_CONCURRENCY)
    return demo


def allowed_paths(examples: list[Example]) -> list[str]:
    """The example files and their thumbnails, one by one: nothing else outside the app's own folders is served."""
    return sorted({str(e.path) for e in examples} | {str(e.thumb) for e in examples})


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="SP-Mamba Studio demo")
    ap.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    ap.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    ap.add_argument("--examples", action="append", default=[], metavar="DIR",
                    help="add the images in DIR to the examples gallery (repeatable)")
    ap.add_argument("--max-upload-mb", type=float, default=float(os.environ.get("SPMAMBA_MAX_UPLOAD_MB", 200)),
                    help="largest file accepted, in MB (default 200, or $SPMAMBA_MAX_UPLOAD_MB)")
    ap.add_argument("--max-pixels", type=int, default=int(os.environ.get("SPMAMBA_MAX_PIXELS", imaging.MAX_PIXELS)),
                    help=f"largest image accepted, in pixels (default {imaging.MAX_PIXELS:,}, or $SPMAMBA_MAX_PIXELS)")
    return ap.parse_args(argv)


def launch_options(args: argparse.Namespace, examples: list[Example]) -> dict:
    """Keyword arguments for ``Blocks.launch``: address, upload limit, the example files it may serve."""
    return dict(server_name=args.host, server_port=args.port, max_file_size=int(args.max_upload_mb * 1024 ** 2),
                allowed_paths=allowed_paths(examples))


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    imaging.MAX_PIXELS = args.max_pixels
    examples = build_examples(args.examples)
    demo = build_demo(examples)
    demo.queue(default_concurrency_limit=NETWORK_CONCURRENCY).launch(**launch_options(args, examples))
