"""The SP-Mamba Studio page, top to bottom as it appears."""
from __future__ import annotations

import argparse

import gradio as gr
import torch

from spmamba.imaging import ImageLoadError
from spmamba.scan import ORDERS
from spmamba.ssm import backend_name

from . import handlers
from .models import list_checkpoints
from .render import scan_figure

BANNER = ("**Research use only — not for diagnosis.** Scores say how unusual an image is for a model trained on "
          "normal images of one dataset; they are not a clinical finding.")


def build_demo() -> gr.Blocks:
    checkpoints = list_checkpoints()
    labels = list(checkpoints)
    device = "cuda" if torch.cuda.is_available() else "cpu"

    def run(path, label):
        if label not in checkpoints:
            raise gr.Error("No checkpoint is selected: put a .safetensors checkpoint in weights/ and restart.")
        try:
            analysis = handlers.analyze(path, checkpoints[label])
        except ImageLoadError as err:
            raise gr.Error(str(err)) from None
        w = analysis.weights
        r = handlers.render(analysis, w)
        return (analysis, r.overlay, r.figure, r.verdict, w.alpha, w.beta, w.gamma, w.dog_sigma, w.dog_k_sigma)

    def redraw(analysis, alpha, beta, gamma, sigma, k_sigma, opacity, contour):
        if analysis is None:
            return None, None, "Upload an image first."
        w = handlers.weights_from_sliders(analysis.weights, alpha, beta, gamma, sigma, k_sigma)
        r = handlers.render(analysis, w, opacity, contour)
        return r.overlay, r.figure, r.verdict

    def reset(analysis):
        w = analysis.weights if analysis is not None else handlers.ScoreWeights()
        return w.alpha, w.beta, w.gamma, w.dog_sigma, w.dog_k_sigma

    def api_analyze(path, label):
        """Scores as JSON and the anomaly-map overlay for one image."""
        if not checkpoints:
            raise gr.Error("No checkpoint is installed in weights/.")
        try:
            analysis = handlers.analyze(path, checkpoints.get(label, checkpoints[labels[0]]))
        except ImageLoadError as err:
            raise gr.Error(str(err)) from None
        r = handlers.render(analysis, analysis.weights)
        cal = analysis.calibration or {}
        return ({"scores": r.scores, "threshold": cal.get("threshold"),
                 "above_threshold": bool(cal) and r.scores["total"] >= cal["threshold"],
                 "score_weights": analysis.weights.to_dict(), "image": analysis.image_meta}, r.overlay)

    # Uploads and cached maps expire with the session: files after an hour, state after an hour idle.
    with gr.Blocks(title="SP-Mamba Studio", delete_cache=(600, 3600)) as demo:
        gr.Markdown("# SP-Mamba Studio\nUnsupervised anomaly maps for medical images (Pan & Lu, ACM MM 2025).")
        gr.Markdown(BANNER)
        gr.Markdown(f"Selective-scan backend: **{backend_name(device)}** on {device}.")
        state = gr.State(None, time_to_live=3600)
        with gr.Tab("Analyse"):
            with gr.Row():
                with gr.Column(scale=1):
                    upload = gr.File(label="Image: PNG, JPEG, TIFF, DICOM (.dcm or none), NIfTI (.nii/.nii.gz)",
                                     type="filepath")
                    model = gr.Dropdown(labels, value=labels[0] if labels else None, label="Checkpoint")
                    go = gr.Button("Analyse", variant="primary")
                    opacity = gr.Slider(0, 1, 0.45, step=0.05, label="Heat-map opacity")
                    contour = gr.Slider(0.5, 1.0, 0.9, step=0.01, label="Outline above (fraction of map range)")
                    with gr.Accordion("Score weights (re-scored live from cached maps)", open=True):
                        alpha = gr.Slider(0, 2, 1.0, step=0.05, label="α prototype")
                        beta = gr.Slider(-0.2, 0.2, -0.025, step=0.005, label="β concentration")
                        gamma = gr.Slider(0, 5000, 400, step=10, label="γ contrast")
                        sigma = gr.Slider(0.3, 3, 0.6, step=0.1, label="DoG σ")
                        k_sigma = gr.Slider(0.6, 6, 1.2, step=0.1, label="DoG kσ")
                        reset_btn = gr.Button("Reset to the checkpoint's weights")
                with gr.Column(scale=2):
                    picture = gr.Image(label="Anomaly map over the image (bright = unusual)", type="numpy")
                    verdict = gr.Markdown()
                    plot = gr.Plot(label="Score components")
        with gr.Tab("Scan order"):
            gr.Markdown("The order in which the Mamba decoder reads each feature map. Circular-Hilbert: rings from "
                        "the outside in, then a Hilbert curve through the centre.")
            with gr.Row():
                order = gr.Dropdown(list(ORDERS), value="circular_hilbert", label="Order")
                size = gr.Dropdown([8, 16, 32, 64], value=16, label="Map size (decoder resolution)")
                ndirs = gr.Radio([8, 16], value=8, label="Directions")
                direction = gr.Slider(0, 15, 0, step=1, label="Direction")
                steps = gr.Slider(1, 4096, 4096, step=1, label="Steps shown")
            scan_plot = gr.Plot(value=scan_figure("circular_hilbert", 16, 8, 0, None))

        sliders = [alpha, beta, gamma, sigma, k_sigma, opacity, contour]
        go.click(run, [upload, model], [state, picture, plot, verdict, alpha, beta, gamma, sigma, k_sigma],
                 api_visibility="private")
        for s in sliders:
            s.change(redraw, [state] + sliders, [picture, plot, verdict], api_visibility="private",
                     trigger_mode="always_last", show_progress="hidden")
        reset_btn.click(reset, state, [alpha, beta, gamma, sigma, k_sigma], api_visibility="private")
        scan_inputs = [order, size, ndirs, direction, steps]
        for c in scan_inputs:
            c.change(lambda o, n, k, d, st: scan_figure(o, int(n), int(k), int(d), int(st)), scan_inputs, scan_plot,
                     api_visibility="private", show_progress="hidden")
        api_file = gr.File(visible=False, type="filepath")
        api_model = gr.Textbox(visible=False)
        api_json = gr.JSON(visible=False)
        api_map = gr.Image(visible=False, type="numpy")
        api_button = gr.Button(visible=False)
        api_button.click(api_analyze, [api_file, api_model], [api_json, api_map], api_name="analyze")
    return demo


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="SP-Mamba Studio demo")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=7860)
    args = ap.parse_args(argv)
    build_demo().queue(default_concurrency_limit=1 if not torch.cuda.is_available() else 4).launch(
        server_name=args.host, server_port=args.port)

