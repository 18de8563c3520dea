"""The Scan order tab: the order in which each decoder reads a feature map, with a walk along it."""

from __future__ import annotations

import gradio as gr
import plotly.graph_objects as go

from spmamba.scan import ORDERS

from .render import scan_figure, walk_step
from .site import PRIVATE

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
            "BFSS: the raster order by rows and by columns, each forwards and backwards (4 directions), fused. "
            "To see what an order changes on an image, put checkpoints trained with different orders side by "
            "side on the **Compare** tab."
        )
        with gr.Row():
            model = gr.Radio(list(SCAN_MODELS), value="SP-Mamba (Circular-Hilbert)", label="Model", scale=2)
            order = gr.Dropdown(list(ORDERS), value="circular_hilbert", label="Order")
            size = gr.Dropdown([8, 16, 32, 64], value=16, label="Map size (decoder resolution)")
            ndirs = gr.Radio([4, 8, 16], value=8, label="Directions")
            direction = gr.Slider(0, 7, 0, step=1, label="Direction")
        with gr.Row():
            steps = gr.Slider(1, 256, 256, step=1, label="Steps shown (drag to walk the sequence)", scale=4)
            walk = gr.Button("▶ Walk the path", scale=1)
            stop = gr.Button("❚❚ Stop", scale=1)
            over_image = gr.Checkbox(False, label="Draw over the analysed image", scale=1)
        walker = gr.Timer(0.3, active=False)
        plot = gr.Plot(value=scan_figure("circular_hilbert", 16, 8, 0, None), elem_id="scan")

    model.input(
        lambda m: dict(zip((order, ndirs, direction), (*SCAN_MODELS[m], 0), strict=True)),
        model,
        [order, ndirs, direction],
        **PRIVATE,
    )
    inputs = [order, size, ndirs, direction, steps, over_image, state]
    quiet = dict(show_progress="hidden", trigger_mode="always_last", **PRIVATE)
    for c in (order, direction, over_image):
        c.change(draw, inputs, plot, **quiet)
    steps.input(draw, inputs, plot, **quiet)  # a drag; the walk draws its own steps
    ndirs.change(directions, inputs, [direction, plot], **quiet)
    size.change(resized, inputs, [steps, plot], **quiet)
    walk.click(lambda: (1, gr.Timer(active=True)), None, [steps, walker], **PRIVATE)
    stop.click(lambda: gr.Timer(active=False), None, walker, **PRIVATE)
    walker.tick(tick, inputs, [steps, plot, walker], **quiet)


def draw(o, n, k, d, st, over, analysis) -> go.Figure:
    """The path for the tab's controls, over the analysed image when asked and there is one."""
    background = analysis.display if over and analysis is not None else None
    return scan_figure(o, int(n), int(k), int(d), None if st is None else int(st), background)


def tick(o, n, k, d, st, over, analysis) -> tuple:
    """The next step of the walk, drawn in the same event that moves the slider, so title and path agree."""
    nxt, done = walk_step(st, int(n))
    return nxt, draw(o, n, k, d, nxt, over, analysis), gr.Timer(active=not done)


def resized(o, n, k, d, st, over, analysis) -> tuple:
    """A new map size: the whole path, and the step slider's range with it."""
    return gr.update(maximum=int(n) ** 2, value=int(n) ** 2), draw(o, n, k, d, None, over, analysis)


def directions(o, n, k, d, st, over, analysis) -> tuple:
    """Another number of directions: the direction slider offers exactly those."""
    d = min(int(d), int(k) - 1)
    return gr.update(maximum=int(k) - 1, value=d), draw(o, n, k, d, st, over, analysis)
