"""The Analyse tab, top to bottom as the page shows it, and ``/analyze``: a file goes through
``spmamba.pipeline`` (checkpoint by content, its window, the out-of-domain check), the network runs once, and the
sliders re-score the cached maps."""

from __future__ import annotations

import gradio as gr
import numpy as np

from spmamba import imaging
from spmamba.pipeline import get_predictor, report
from spmamba.visualize import CONTOUR, OPACITY

from . import handlers
from .canvas import BEFORE_AFTER_HTML, OVERLAY_HTML, SOURCE_CLASS
from .endpoints import api_index, file_endpoint
from .render import maps_figure
from .site import DEFAULT_WINDOW, NETWORK_CONCURRENCY, PRIVATE, Site, image_info, user_errors, weight_slider

# What a client of the undocumented /ui_analyse endpoint receives, in order (the state and layout groups are not sent).
ANALYSE_CLIENT_OUTPUTS = (
    "base",
    "layer",
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
    "centre",
    "width",
)
REDRAW_CLIENT_OUTPUTS = ("layer", "bar", "plot", "verdict", "table")


def analyse_tab(site: Site, state: gr.State) -> None:
    """Upload or pick an image, see its anomaly map and score; sliders re-score the cached maps live."""
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
                        centre = gr.Slider(-1200, 3000, DEFAULT_WINDOW[0], step=10, label="Window centre")
                        width = gr.Slider(1, 4000, DEFAULT_WINDOW[1], step=10, label="Window width")
                with gr.Group(visible=False) as nifti_box:
                    axis = gr.Radio([0, 1, 2], value=2, label="NIfTI slice axis (0 sagittal, 1 coronal, 2 axial)")
                index = gr.Slider(0, 1, 0, step=1, label="Slice", visible=False)
                go = gr.Button("Analyse", variant="primary")
                # read by the page's own script (canvas.py), never sent to the server
                gr.Slider(0, 1, OPACITY, step=0.05, label="Heat-map opacity", elem_id="opacity", interactive=True)
                gr.Slider(
                    0.5,
                    1.01,
                    CONTOUR,
                    step=0.01,
                    label="Outline above (fraction of map range)",
                    elem_id="contour",
                    interactive=True,
                )
                truth = gr.Checkbox(
                    False,
                    label="Show the ground-truth outline (cyan) to compare with the map",
                    visible=False,
                    elem_id="truth",
                    interactive=True,
                )
                with gr.Accordion("Score weights (re-scored live from cached maps)", open=False):
                    alpha = weight_slider("alpha", elem_id="alpha")
                    beta = weight_slider("beta", elem_id="beta")
                    gamma = weight_slider("gamma", elem_id="gamma")
                    dog_low = weight_slider("dog_sigma")
                    dog_high = weight_slider("dog_k_sigma")
                    reset_btn = gr.Button("Reset to the checkpoint's weights")
            with gr.Column(scale=2):
                with gr.Tabs():
                    with gr.Tab("Overlay"):
                        # mixed in the browser (canvas.py): opacity, outline and truth never call the server
                        canvas = gr.HTML(OVERLAY_HTML, elem_id="overlay-canvas")
                    with gr.Tab("Before / after"):
                        gr.HTML(BEFORE_AFTER_HTML, elem_id="before-after")
                    with gr.Tab("Component maps"):
                        maps_plot = gr.Plot(label="Cached maps the sliders combine", elem_id="maps")
                # what the canvases mix: the image (once per analysis) and the map's levels (once per re-scoring)
                base = gr.Image(type="numpy", format="png", elem_id="overlay-base", elem_classes=SOURCE_CLASS)
                layer = gr.Image(type="numpy", format="png", elem_id="overlay-layer", elem_classes=SOURCE_CLASS)
                bar = gr.HTML()
                verdict = gr.Markdown(elem_id="verdict")
                plot = gr.Plot(label="Score components")
                table = gr.Markdown(elem_id="components")

    weight_sliders = [alpha, beta, gamma, dog_low, dog_high]
    named = dict(
        base=base,
        layer=layer,
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
        centre=centre,
        width=width,
    )
    # Clients receive the named outputs in this order; the state and the layout groups are not sent.
    outputs = [state, *(named[n] for n in ANALYSE_CLIENT_OUTPUTS), dicom_box, nifti_box]
    results = [named[n] for n in REDRAW_CLIENT_OUTPUTS]

    def drawn(r: handlers.Rendered) -> dict:
        """What a re-scoring changes: the map's levels (the page mixes them over the image), the colour bar, the
        score and its parts."""
        return {layer: r.layer, bar: r.colour_bar, plot: r.figure, verdict: r.verdict, table: r.table}

    @user_errors
    def analyse(path, label, preset_name, centre_v, width_v, axis_v, index_v, keep_v=True):
        """Run the network once for this file and these image options; fill every view. The checkpoint shown
        stays for the same file (``keep_v``); a new file is routed afresh unless the user keeps it."""
        if not path:
            raise gr.Error("Upload an image or pick an example first.")
        options = handlers.ImageOptions(
            handlers.window_for(preset_name, centre_v, width_v), None if index_v is None else int(index_v), int(axis_v)
        )
        ready = site.prepare(path, options, label, keep=keep_v)
        label = ready.label
        analysis = handlers.analyse_image(
            ready.image, site.path(label), ready.route.notes, ready.truth, ready.route.in_domain
        )
        analysis.source = (path, options)
        w = analysis.weights
        r = handlers.render(analysis, w)
        m = analysis.image_meta
        nifti, frames = m.get("format") == "NIfTI", int(m.get("frames", 1))
        grey_dicom = m.get("format") == "DICOM" and m.get("PhotometricInterpretation", "").startswith("MONOCHROME")
        depth = m.get("slices", 1) if nifti else frames
        # the sliders show the window the image was read in, the checkpoint's own included
        shown_window = imaging.WINDOW_PRESETS[ready.window] if ready.window else (centre_v, width_v)
        return {
            state: analysis,
            base: r.grey8,
            **drawn(r),
            maps_plot: maps_figure(
                analysis.maps.per_scale[0].numpy(),
                analysis.maps.prototype[0].numpy(),
                standardised=get_predictor(analysis.checkpoint).map_norm is not None,
            ),
            alpha: w.alpha,
            beta: w.beta,
            gamma: w.gamma,
            dog_low: w.dog_sigma,
            dog_high: w.dog_k_sigma,
            model: label,
            preset: ready.window or preset_name,
            centre: shown_window[0],
            width: shown_window[1],
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

    def rechoose(path, *args):
        """Another checkpoint from the dropdown: re-analyse the file shown; before any file, only remember it."""
        return analyse(path, *args) if path else {}

    def fresh(path, label, keep_v):
        """A new file: routed afresh (the checkpoint stays only while "keep" is on), its own window, the middle
        slice, the axial axis. A cleared upload clears the cache."""
        if not path:
            return {state: None}
        return analyse(path, label, "auto", *DEFAULT_WINDOW, 2, None, keep_v)

    def new_axis(path, label, preset_name, centre_v, width_v, axis_v):
        """Another axis: start from its middle slice."""
        return analyse(path, label, preset_name, centre_v, width_v, axis_v, None)

    def cleared():
        """A new file first clears the previous one's results, so a failed upload never shows stale maps."""
        return {
            **{c: None for c in [state, base, *results, maps_plot, info]},
            **{c: gr.update(visible=False) for c in (dicom_box, nifti_box, index, truth)},
        }

    @user_errors
    def redraw(analysis, alpha_v, beta_v, gamma_v, low_v, high_v):
        if analysis is None:  # nothing analysed yet (or a new file is loading): leave the page as it is
            return {c: gr.skip() for c in results}
        w = handlers.weights_from_sliders(analysis.weights, alpha_v, beta_v, gamma_v, low_v, high_v)
        return drawn(handlers.render(analysis, w))

    def reset(analysis):
        w = analysis.weights if analysis is not None else handlers.ScoreWeights()
        return {alpha: w.alpha, beta: w.beta, gamma: w.gamma, dog_low: w.dog_sigma, dog_high: w.dog_k_sigma}

    def pick_example(evt: gr.SelectData):
        return str(site.examples[evt.index].path)

    def apply_preset(preset_name, centre_v, width_v):
        window = imaging.WINDOW_PRESETS.get(preset_name)
        return {centre: window[0], width: window[1]} if window else {centre: centre_v, width: width_v}

    inputs = [upload, model, preset, centre, width, axis, index]
    # Progress and errors show on the overlay only (plus the error's own message), not on every output.
    net = dict(concurrency_id="network", concurrency_limit=NETWORK_CONCURRENCY, show_progress_on=canvas)
    upload.change(
        cleared,
        None,
        [state, base, *results, maps_plot, info, dicom_box, nifti_box, index, truth],
        show_progress="hidden",
        **PRIVATE,
    ).then(fresh, [upload, model, keep], outputs, **net, **PRIVATE)
    gallery.select(pick_example, None, upload, **PRIVATE)
    # Callable by clients (the concurrency test drives sessions with it) but not documented as the API.
    go.click(analyse, inputs, outputs, api_name="ui_analyse", api_visibility="undocumented", **net)
    model.input(rechoose, inputs, outputs, **net, **PRIVATE)
    index.release(analyse, inputs, outputs, **net, **PRIVATE)
    axis.input(new_axis, [upload, model, preset, centre, width, axis], outputs, **net, **PRIVATE)
    preset.input(apply_preset, [preset, centre, width], [centre, width], **PRIVATE).then(
        analyse, inputs, outputs, **net, **PRIVATE
    )
    for s in (centre, width):
        s.release(lambda: "custom", None, preset, **PRIVATE).then(analyse, inputs, outputs, **net, **PRIVATE)

    # A user's moves only (.input): when an analysis sets the five sliders to its checkpoint's weights, a .change
    # per slider would re-score with some set and others not yet (the verdict then said "re-weighted").
    # Opacity, outline and truth are the page's own (canvas.py).
    render_lane = dict(show_progress="hidden", concurrency_id="render", concurrency_limit=4)
    for i, s in enumerate(weight_sliders):
        s.input(
            redraw,
            [state, *weight_sliders],
            results,
            trigger_mode="always_last",
            **render_lane,
            **(dict(api_name="ui_redraw", api_visibility="undocumented") if i == 0 else PRIVATE),
        )
    reset_btn.click(reset, state, weight_sliders, **PRIVATE).then(
        redraw, [state, *weight_sliders], results, **render_lane, **PRIVATE
    )


def analyse_api(
    site: Site, path: str | None, checkpoint: str = "", index: int | None = None
) -> tuple[dict, np.ndarray]:
    """The /analyze endpoint as a plain function: scores as JSON and the anomaly-map overlay for one image
    (``index``: a page, frame or NIfTI slice, from 0; by default the first page or frame, the middle slice).

    With no checkpoint named, it is chosen by the image's modality exactly as the page chooses it.
    """
    options = handlers.ImageOptions(index=api_index(index))
    ready = site.prepare(path, options, checkpoint or None, keep=bool(checkpoint))
    analysis = handlers.analyse_image(
        ready.image, site.path(ready.label), ready.route.notes, in_domain=ready.route.in_domain
    )
    r = handlers.render(analysis, analysis.weights)
    predictor = get_predictor(analysis.checkpoint)
    return report(predictor, predictor.score(analysis.maps), ready), r.overlay


def api(site: Site, network: dict) -> None:
    """``/analyze``: the documented endpoint."""

    @user_errors
    def analyze(path, label="", index=None):
        """Scores as JSON and the anomaly-map overlay for one image; the checkpoint defaults to the one
        trained on the image's modality; ``index`` chooses a page, frame or NIfTI slice (from 0)."""
        return analyse_api(site, path, label or "", index)

    file_endpoint(analyze, "analyze", network)
