"""The SP-Mamba Studio page, top to bottom as it appears: header, Analyse, Batch, Scan order, the API.

Each tab is one function that lays out its components and wires their events. Handlers return
dicts keyed by component, so no output is matched by its position in a list.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import logging
import os
import tempfile
import threading
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import gradio as gr
import numpy as np
from PIL import Image

from spmamba import imaging
from spmamba.checkpoint import CheckpointError
from spmamba.imaging import ImageLoadError
from spmamba.inference import default_device
from spmamba.pipeline import Pipeline, Route, get_predictor, report
from spmamba.scan import ORDERS
from spmamba.ssm import backend_name
from spmamba.visualize import CONTOUR, OPACITY
from spmamba.zoo import list_checkpoints, list_seg_checkpoints

from . import batch as batch_scoring
from . import handlers
from .endpoints import file_endpoint
from .examples import Example, build_examples, file_digest
from .render import maps_figure, scan_figure, walk_step
from .segment import segment_endpoint, segment_tab
from .volume import PROFILE_CLICK_JS, volume_endpoint, volume_tab

BANNER = (
    "**Research use only — not for diagnosis.** Scores say how unusual an image is for a model trained on "
    "normal images of one dataset; they are not a clinical finding."
)
SAFE_META = (
    "format",
    "Modality",
    "BodyPartExamined",
    "ViewPosition",
    "PhotometricInterpretation",
    "frames",
    "window",
    "shape",
    "size",
)
NETWORK_CONCURRENCY = 2 if default_device() == "cuda" else 1  # one CPU forward already uses every core
PRIVATE = dict(api_visibility="private")
# What a client of the undocumented /ui_analyse endpoint receives, in order (the state and layout groups are not sent).
ANALYSE_CLIENT_OUTPUTS = (
    "picture",
    "compare",
    "bar",
    "plot",
    "verdict",
    "table",
    "maps_plot",
    "alpha",
    "beta",
    "gamma",
    "dog_low",
    "dog_high",
    "model",
    "preset",
    "axis",
    "index",
    "info",
    "truth",
)
REDRAW_CLIENT_OUTPUTS = ("picture", "compare", "bar", "plot", "verdict", "table")
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
        except gr.Error as err:
            err.print_exception = False  # Gradio would print the message, and with it any file name, to the log
            raise
        except (ImageLoadError, CheckpointError) as err:
            raise gr.Error(str(err), print_exception=False) from None
        except Exception as err:
            where = traceback.extract_tb(err.__traceback__)[-1]
            log.error("%s in %s:%d (%s)", type(err).__name__, Path(where.filename).name, where.lineno, where.name)
            raise gr.Error(
                f"Something went wrong while processing this request ({type(err).__name__}). "
                "The app is still running: try again or with another file.",
                print_exception=False,
            ) from None

    return wrapper


def image_info(meta: dict) -> str:
    """Acquisition facts only; the loader never passes identifiers, and this shows a fixed whitelist."""
    parts = [f"{k}: {meta[k]}" for k in SAFE_META if k in meta]
    return "Image — " + " · ".join(parts) if parts else ""


@dataclass
class Site:
    """What every tab needs to know: the checkpoints on offer, the route through them and the examples."""

    checkpoints: dict[str, str]  # dropdown label -> path
    examples: list[Example]
    seg_checkpoints: dict[str, str] = dataclasses.field(default_factory=dict)

    @functools.cached_property
    def pipeline(self) -> Pipeline:
        return Pipeline(self.checkpoints, self.seg_checkpoints)

    @property
    def labels(self) -> list[str]:
        return list(self.checkpoints)

    @property
    def default(self) -> str | None:
        return self.labels[0] if self.checkpoints else None

    def path(self, label: str) -> str:
        if label not in self.checkpoints:
            if not self.checkpoints:
                raise gr.Error("No checkpoint is installed: put a .safetensors checkpoint in weights/ and restart.")
            raise gr.Error(f"Unknown checkpoint {label!r}; choose one of: {', '.join(self.labels)}.")
        return self.checkpoints[label]

    @functools.cached_property
    def _known(self) -> dict[str, Example]:
        return {file_digest(e.path): e for e in self.examples if e.truth or e.modality}

    def example(self, path: str | None) -> Example | None:
        """The dataset example this file is (Gradio serves a copy, so it is recognised by its bytes)."""
        if not path or not self._known:
            return None
        try:
            return self._known.get(file_digest(path))
        except OSError:
            return None

    def prepare(self, path: str | None, options: handlers.ImageOptions, label: str | None = None, keep: bool = False):
        """The pipeline's route for this file (``label`` is used only with ``keep``; a dataset example's
        modality counts as a DICOM's would), loaded with the page's loader, and the example's mask if any."""
        if label and label not in self.checkpoints:
            self.path(label)  # the page's own error for an unknown label
        example = self.example(path)
        ready = self.pipeline.prepare(
            path,
            functools.partial(handlers.load, options=options),
            chosen=label,
            keep=keep,
            modality=example.modality if example else None,
            window=options.window,
        )
        return Prepared(ready.image, ready.route, ready.window, example.truth if example else None)


class Prepared(NamedTuple):
    """A file made ready for a checkpoint: what the page, the API and their tests start from."""

    image: imaging.LoadedImage
    route: Route  # the checkpoint, whether the image is like its training images, and notes
    window: str | None  # the CT window preset applied because the checkpoint was trained in it
    truth: Path | None  # the ground-truth mask of a dataset example

    @property
    def label(self) -> str:
        return self.route.label


def header(site: Site) -> None:
    gr.Markdown(
        "# SP-Mamba Studio\nUnsupervised anomaly maps for medical images (SP-Mamba, Pan & Lu, ACM MM 2025) and, "
        "on the Segment tab, supervised lesion segmentation (Mamba-MIS)."
    )
    gr.Markdown(BANNER, elem_id="banner")
    device = default_device()
    gr.Markdown(f"Selective-scan backend: **{backend_name(device)}** on {device}.")


def analyse_tab(site: Site, state: gr.State) -> None:
    """Upload or pick an image, see its anomaly map and score; sliders re-score the cached maps live."""
    view = gr.State("overlay")
    with gr.Tab("Analyse"):
        with gr.Row():
            with gr.Column(scale=1):
                upload = gr.File(
                    label="Image: PNG, JPEG, TIFF, DICOM (.dcm or none), NIfTI (.nii/.nii.gz)",
                    type="filepath",
                    elem_id="upload",
                )
                gallery = gr.Gallery(
                    [(str(e.thumb), e.caption) for e in site.examples],
                    label="Examples",
                    columns=3,
                    height=250,
                    allow_preview=False,
                    interactive=False,
                    elem_id="examples",
                )
                model = gr.Dropdown(site.labels, value=site.default, label="Checkpoint", elem_id="checkpoint")
                keep = gr.Checkbox(
                    False,
                    label="Keep this checkpoint for new images (otherwise each image goes to the checkpoint "
                    "whose training images it resembles)",
                    elem_id="keep",
                )
                info = gr.Markdown(elem_id="image-info")
                with gr.Group(visible=False) as dicom_box:
                    preset = gr.Dropdown(
                        list(imaging.WINDOW_PRESETS),
                        value="auto",
                        label="DICOM window (CT presets in HU)",
                        elem_id="window",
                    )
                    with gr.Row():
                        centre = gr.Slider(-1200, 3000, 40, step=10, label="Window centre")
                        width = gr.Slider(1, 4000, 400, step=10, label="Window width")
                with gr.Group(visible=False) as nifti_box:
                    axis = gr.Radio([0, 1, 2], value=2, label="NIfTI slice axis (0 sagittal, 1 coronal, 2 axial)")
                index = gr.Slider(0, 1, 0, step=1, label="Slice", visible=False)
                go = gr.Button("Analyse again", variant="primary")
                opacity = gr.Slider(0, 1, OPACITY, step=0.05, label="Heat-map opacity", elem_id="opacity")
                contour = gr.Slider(0.5, 1.01, CONTOUR, step=0.01, label="Outline above (fraction of map range)")
                truth = gr.Checkbox(
                    False,
                    label="Show the ground-truth outline (cyan) to compare with the map",
                    visible=False,
                    elem_id="truth",
                )
                with gr.Accordion("Score weights (re-scored live from cached maps)", open=True):
                    alpha = gr.Slider(0, 2, 1.0, step=0.05, label="α prototype")
                    beta = gr.Slider(-0.2, 0.2, -0.025, step=0.005, label="β concentration", elem_id="beta")
                    gamma = gr.Slider(0, 5000, 400, step=10, label="γ contrast")
                    dog_low = gr.Slider(0.3, 3, 0.6, step=0.1, label="Contrast: difference-of-Gaussians low σ")
                    dog_high = gr.Slider(0.6, 6, 1.2, step=0.1, label="Contrast: difference-of-Gaussians high σ")
                    reset_btn = gr.Button("Reset to the checkpoint's weights")
            with gr.Column(scale=2):
                with gr.Tabs():
                    with gr.Tab("Overlay") as overlay_tab:
                        picture = gr.Image(
                            label="Anomaly map over the image (bright = unusual)", type="numpy", elem_id="overlay"
                        )
                    with gr.Tab("Before / after") as compare_tab:
                        compare = gr.ImageSlider(label="Image ⟷ anomaly map", type="numpy", elem_id="compare")
                    with gr.Tab("Component maps"):
                        maps_plot = gr.Plot(label="Cached maps the sliders combine", elem_id="maps")
                bar = gr.HTML()
                verdict = gr.Markdown(elem_id="verdict")
                plot = gr.Plot(label="Score components")
                table = gr.Markdown(elem_id="components")

    weight_sliders = [alpha, beta, gamma, dog_low, dog_high]
    named = dict(
        picture=picture,
        compare=compare,
        bar=bar,
        plot=plot,
        verdict=verdict,
        table=table,
        maps_plot=maps_plot,
        alpha=alpha,
        beta=beta,
        gamma=gamma,
        dog_low=dog_low,
        dog_high=dog_high,
        model=model,
        preset=preset,
        axis=axis,
        index=index,
        info=info,
        truth=truth,
    )
    # Clients receive the named outputs in this order; the state and the layout groups are not sent.
    outputs = [state, *(named[n] for n in ANALYSE_CLIENT_OUTPUTS), dicom_box, nifti_box]
    results = [named[n] for n in REDRAW_CLIENT_OUTPUTS]

    def views(analysis: handlers.Analysis, r: handlers.Rendered, shown: str) -> dict:
        """The overlay on every event; the before/after pair only while it is shown. The overlay is not left
        to the tab's select event: a click on its tab while results were arriving could be lost, leaving
        the main picture empty under a fresh verdict."""
        if shown == "compare":
            return {picture: r.overlay, compare: ((analysis.display * 255).astype(np.uint8), r.overlay)}
        return {picture: r.overlay}

    def drawn(analysis: handlers.Analysis, r: handlers.Rendered, shown: str) -> dict:
        return {**views(analysis, r, shown), bar: r.colour_bar, plot: r.figure, verdict: r.verdict, table: r.table}

    @user_errors
    def analyse(
        path, label, preset_name, centre_v, width_v, axis_v, index_v, opacity_v, contour_v, truth_v, shown, keep_v=True
    ):
        """Run the network once for this file and these image options; fill every view. The checkpoint shown
        stays for the same file (``keep_v``); a new file is routed afresh unless the user keeps it."""
        if not path:
            raise gr.Error("Upload an image or pick an example first.")
        options = handlers.ImageOptions(
            handlers.window_for(preset_name, centre_v, width_v), None if index_v is None else int(index_v), int(axis_v)
        )
        ready = site.prepare(path, options, label, keep=keep_v)
        label = ready.label
        analysis = handlers.analyze_image(
            ready.image, site.path(label), ready.route.notes, ready.truth, ready.route.in_domain
        )
        w = analysis.weights
        r = handlers.render(analysis, w, opacity_v, contour_v, truth_v)
        m = analysis.image_meta
        nifti, frames = m.get("format") == "NIfTI", int(m.get("frames", 1))
        grey_dicom = m.get("format") == "DICOM" and m.get("PhotometricInterpretation", "").startswith("MONOCHROME")
        depth = m.get("slices", 1) if nifti else frames
        return {
            state: analysis,
            **drawn(analysis, r, shown),
            maps_plot: maps_figure(analysis.maps.per_scale[0].numpy(), analysis.maps.prototype[0].numpy()),
            alpha: w.alpha,
            beta: w.beta,
            gamma: w.gamma,
            dog_low: w.dog_sigma,
            dog_high: w.dog_k_sigma,
            model: label,
            preset: ready.window or preset_name,
            axis: int(axis_v),
            dicom_box: gr.update(visible=grey_dicom),
            nifti_box: gr.update(visible=nifti),
            index: gr.update(
                visible=depth > 1,
                maximum=max(depth - 1, 1),
                value=m.get("slice", m.get("frame", 0)),
                label=f"Slice along axis {m['axis']}" if nifti else "Frame",
            ),
            info: "\n\n".join(x for x in (image_info(m), ready.route.looks_like) if x),
            truth: gr.update(visible=analysis.truth is not None),
        }

    def fresh(path, label, opacity_v, contour_v, truth_v, shown, keep_v):
        """A new file: routed afresh (the checkpoint stays only while "keep" is on), its own window, the middle
        slice, the axial axis. A cleared upload clears the cache."""
        if not path:
            return {state: None}
        return analyse(path, label, "auto", 40, 400, 2, None, opacity_v, contour_v, truth_v, shown, keep_v)

    def new_axis(path, label, preset_name, centre_v, width_v, axis_v, opacity_v, contour_v, truth_v, shown):
        """Another axis: start from its middle slice."""
        return analyse(path, label, preset_name, centre_v, width_v, axis_v, None, opacity_v, contour_v, truth_v, shown)

    def cleared():
        """A new file first clears the previous one's results, so a failed upload never shows stale maps."""
        return {
            **{c: None for c in [state, *results, maps_plot, info]},
            **{c: gr.update(visible=False) for c in (dicom_box, nifti_box, index, truth)},
        }

    @user_errors
    def redraw(analysis, alpha_v, beta_v, gamma_v, low_v, high_v, opacity_v, contour_v, truth_v, shown):
        if analysis is None:  # nothing analysed yet (or a new file is loading): leave the page as it is
            return {c: gr.skip() for c in results}
        w = handlers.weights_from_sliders(analysis.weights, alpha_v, beta_v, gamma_v, low_v, high_v)
        return drawn(analysis, handlers.render(analysis, w, opacity_v, contour_v, truth_v), shown)

    def reset(analysis):
        w = analysis.weights if analysis is not None else handlers.ScoreWeights()
        return {alpha: w.alpha, beta: w.beta, gamma: w.gamma, dog_low: w.dog_sigma, dog_high: w.dog_k_sigma}

    def pick_example(evt: gr.SelectData):
        return str(site.examples[evt.index].path)

    def apply_preset(preset_name, centre_v, width_v):
        window = imaging.WINDOW_PRESETS.get(preset_name)
        return {centre: window[0], width: window[1]} if window else {centre: centre_v, width: width_v}

    inputs = [upload, model, preset, centre, width, axis, index, opacity, contour, truth, view]
    # Progress and errors show on the picture only (plus the error's own message), not on every output.
    net = dict(concurrency_id="network", concurrency_limit=NETWORK_CONCURRENCY, show_progress_on=picture)
    upload.change(
        cleared,
        None,
        [state, *results, maps_plot, info, dicom_box, nifti_box, index, truth],
        show_progress="hidden",
        **PRIVATE,
    ).then(fresh, [upload, model, opacity, contour, truth, view, keep], outputs, **net, **PRIVATE)
    gallery.select(pick_example, None, upload, **PRIVATE)
    # Callable by clients (the concurrency test drives sessions with it) but not documented as the API.
    go.click(analyse, inputs, outputs, api_name="ui_analyse", api_visibility="undocumented", **net)
    model.input(analyse, inputs, outputs, **net, **PRIVATE)
    index.release(analyse, inputs, outputs, **net, **PRIVATE)
    axis.input(
        new_axis, [upload, model, preset, centre, width, axis, opacity, contour, truth, view], outputs, **net, **PRIVATE
    )
    preset.input(apply_preset, [preset, centre, width], [centre, width], **PRIVATE).then(
        analyse, inputs, outputs, **net, **PRIVATE
    )
    for s in (centre, width):
        s.release(lambda: "custom", None, preset, **PRIVATE).then(analyse, inputs, outputs, **net, **PRIVATE)

    sliders = [*weight_sliders, opacity, contour, truth]
    for i, s in enumerate(sliders):
        s.change(
            redraw,
            [state, *sliders, view],
            results,
            trigger_mode="always_last",
            show_progress="hidden",
            concurrency_id="render",
            concurrency_limit=4,
            **(dict(api_name="ui_redraw", api_visibility="undocumented") if i == 0 else PRIVATE),
        )
    for tab, name in ((overlay_tab, "overlay"), (compare_tab, "compare")):
        tab.select(lambda n=name: n, None, view, **PRIVATE).then(
            redraw, [state, *sliders, view], results, show_progress="hidden", **PRIVATE
        )
    reset_btn.click(reset, state, weight_sliders, **PRIVATE)


def batch_tab(site: Site) -> None:
    """Many files or ZIPs, each routed as the Analyse tab routes it; a sortable table and a CSV."""
    with gr.Tab("Batch"):
        gr.Markdown(
            "Score many images at once. Each goes to the checkpoint whose training images it resembles (or to the "
            "one chosen, when kept); images unlike every training set get no verdict. ZIP files are opened; "
            "files that cannot be read are listed with the reason."
        )
        with gr.Row():
            files = gr.File(file_count="multiple", type="filepath", label="Images or ZIP files", elem_id="batch-files")
            with gr.Column():
                model = gr.Dropdown(site.labels, value=site.default, label="Checkpoint")
                keep = gr.Checkbox(False, label="Use this checkpoint for every file")
                go = gr.Button("Score all", variant="primary")
                csv_file = gr.File(label="Scores as CSV")
        table = gr.Dataframe(
            headers=batch_scoring.BATCH_COLUMNS,
            interactive=False,
            wrap=True,
            label="Scores (click a column header to sort)",
            elem_id="batch-table",
            column_widths=["18%", "14%", "6%", "7%", "14%", "8%", "7%", "26%"],
        )

    @user_errors
    def score(paths, label, keep_v, progress=gr.Progress()):
        rows, csv_path = batch_scoring.score_files(paths, site.pipeline, site.path(label) if keep_v else None, progress)
        return {table: rows, csv_file: str(csv_path)}

    go.click(score, [files, model, keep], [table, csv_file], concurrency_id="batch", concurrency_limit=1, **PRIVATE)


SCAN_MODELS = {  # the Scan order tab's model choice: (order, directions)
    "SP-Mamba (Circular-Hilbert)": ("circular_hilbert", 8),
    "Mamba-MIS (BFSS)": ("raster", 4),
}


def scan_tab(state: gr.State) -> None:
    """The order in which the decoder reads a map, with a walk along it."""
    with gr.Tab("Scan order"):
        gr.Markdown(
            "The order in which a Mamba layer reads each feature map. SP-Mamba's decoder: Circular-Hilbert, "
            "rings from the outside in, then a Hilbert curve through the centre, in 8 directions. Mamba-MIS's "
            "BFSS: the raster order by rows and by columns, each forwards and backwards (4 directions), fused."
        )
        with gr.Row():
            model = gr.Radio(list(SCAN_MODELS), value="SP-Mamba (Circular-Hilbert)", label="Model", scale=2)
            order = gr.Dropdown(list(ORDERS), value="circular_hilbert", label="Order")
            size = gr.Dropdown([8, 16, 32, 64], value=16, label="Map size (decoder resolution)")
            ndirs = gr.Radio([4, 8, 16], value=8, label="Directions")
            direction = gr.Slider(0, 15, 0, step=1, label="Direction")
        with gr.Row():
            steps = gr.Slider(1, 256, 256, step=1, label="Steps shown (drag to walk the sequence)", scale=4)
            walk = gr.Button("▶ Walk the path", scale=1)
            stop = gr.Button("❚❚ Stop", scale=1)
            over_image = gr.Checkbox(False, label="Draw over the analysed image", scale=1)
        walker = gr.Timer(0.3, active=False)
        plot = gr.Plot(value=scan_figure("circular_hilbert", 16, 8, 0, None), elem_id="scan")

    def draw(o, n, k, d, st, over, analysis):
        background = analysis.display if over and analysis is not None else None
        return scan_figure(o, int(n), int(k), int(d), int(st), background)

    def tick(st, n):
        nxt, done = walk_step(st, int(n))
        return {steps: nxt, walker: gr.Timer(active=not done)}

    model.input(
        lambda m: dict(zip((order, ndirs, direction), (*SCAN_MODELS[m], 0), strict=True)),
        model,
        [order, ndirs, direction],
        **PRIVATE,
    )
    controls = [order, size, ndirs, direction, steps, over_image]
    for c in controls:
        c.change(draw, [*controls, state], plot, show_progress="hidden", **PRIVATE)
    size.change(lambda n: gr.update(maximum=int(n) ** 2, value=int(n) ** 2), size, steps, **PRIVATE)
    walk.click(lambda: {steps: 1, walker: gr.Timer(active=True)}, None, [steps, walker], **PRIVATE)
    stop.click(lambda: gr.Timer(active=False), None, walker, **PRIVATE)
    walker.tick(tick, [steps, size], [steps, walker], show_progress="hidden", **PRIVATE)


def analyze_api(site: Site, path: str | None, checkpoint: str = "") -> tuple[dict, np.ndarray]:
    """The /analyze endpoint as a plain function: scores as JSON and the anomaly-map overlay for one image.

    With no checkpoint named, it is chosen by the image's modality exactly as the page chooses it.
    """
    ready = site.prepare(path, handlers.ImageOptions(), checkpoint or None, keep=bool(checkpoint))
    analysis = handlers.analyze_image(
        ready.image, site.path(ready.label), ready.route.notes, in_domain=ready.route.in_domain
    )
    r = handlers.render(analysis, analysis.weights)
    predictor = get_predictor(analysis.checkpoint)
    return report(predictor, predictor.score(analysis.maps), ready), r.overlay


def api(site: Site, network: dict) -> None:
    """``/analyze``: the documented endpoint."""

    @user_errors
    def analyze(path, label=""):
        """Scores as JSON and the anomaly-map overlay for one image; the checkpoint defaults to the one
        trained on the image's modality."""
        return analyze_api(site, path, label or "")

    file_endpoint(analyze, "analyze", network)


def build_demo(examples: list[Example] | None = None, seg_checkpoints: dict[str, str] | None = None) -> gr.Blocks:
    seg_checkpoints = list_seg_checkpoints() if seg_checkpoints is None else seg_checkpoints
    site = Site(list_checkpoints(), build_examples() if examples is None else examples, seg_checkpoints)
    network = dict(concurrency_id="network", concurrency_limit=NETWORK_CONCURRENCY)
    # Uploads and cached maps expire with the session: files after an hour, state after an hour idle.
    with gr.Blocks(title="SP-Mamba Studio", delete_cache=(600, 3600)) as demo:
        header(site)
        state = gr.State(None, time_to_live=3600)
        analyse_tab(site, state)
        batch_tab(site)
        if site.checkpoints:
            volume_tab(site.pipeline, user_errors, PRIVATE, network)
        if seg_checkpoints:  # the segmentation model appears where a checkpoint for it is installed
            segment_tab(site.pipeline, user_errors, PRIVATE, network)
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
                    analysis = handlers.analyze(str(png), next(iter(checkpoints.values())))
                gr.Image(type="numpy").postprocess(handlers.render(analysis, analysis.weights).overlay)
        except Exception as err:  # the page must come up even if warming fails; requests will say why
            log.warning("warm-up failed: %s", type(err).__name__)

    thread = threading.Thread(target=run, name="spmamba-warm-up", daemon=True)
    thread.start()
    return thread


def allowed_paths(examples: list[Example]) -> list[str]:
    """The example files and their thumbnails, one by one: nothing else outside the app's own folders is served."""
    return sorted({str(e.path) for e in examples} | {str(e.thumb) for e in examples})


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
        head=PROFILE_CLICK_JS,
    )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    imaging.MAX_PIXELS = args.max_pixels
    warming = warm_up(list_checkpoints())  # first, so the model loads while the page is being built
    examples = build_examples(args.examples)
    demo = build_demo(examples)
    warming.join(timeout=120)  # the page answers once a request costs what every later one does
    demo.queue(default_concurrency_limit=NETWORK_CONCURRENCY).launch(**launch_options(args, examples))
