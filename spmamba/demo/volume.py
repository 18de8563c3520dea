"""The Volume tab: every slice of a NIfTI volume, a multi-frame DICOM or a DICOM series scored in batches, a
slice-score profile, the most anomalous slice first. Handlers are plain functions; ``volume_tab`` wires them.

The network runs once per volume; the weight sliders re-score every slice from the cached maps.
"""

from __future__ import annotations

import csv
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr
import numpy as np
import plotly.graph_objects as go
from skimage.transform import resize

from spmamba.imaging import NIFTI_SUFFIXES, ImageLoadError, near_blank_note
from spmamba.pipeline import Pipeline, get_predictor
from spmamba.scoring import ScoreWeights
from spmamba.visualize import overlay_own_range
from spmamba.volume import Volume, save_map_nifti, volume_maps, volume_report

from .batch import expand_uploads, scratch_dir
from .handlers import DISPLAY_MAX, weights_from_sliders
from .site import weight_slider

# Clicking a point of the profile moves the slice slider (Gradio's plotly component sends no clicks itself).
PROFILE_CLICK_JS = """
<script>
setInterval(() => {
  const plot = document.querySelector('#volume-profile .js-plotly-plot');
  if (!plot || plot.__sliceClick || !plot.on) return;
  plot.__sliceClick = true;
  plot.on('plotly_click', (ev) => {
    const box = document.querySelector('#volume-slice input[type=number]');
    if (!box || !ev.points.length) return;
    box.value = ev.points[0].x;
    box.dispatchEvent(new Event('input', {bubbles: true}));
    box.dispatchEvent(new KeyboardEvent('keydown', {key: 'Enter', bubbles: true}));
    box.dispatchEvent(new Event('change', {bubbles: true}));
  });
}, 500);
</script>
"""
VOLUME_SUFFIXES = (*NIFTI_SUFFIXES, ".dcm", ".zip")


@dataclass
class VolumeAnalysis:
    """Per-session cache: the slices and their component maps, nothing identifying the patient."""

    volume: Volume
    maps: object  # ComponentMaps of every slice
    checkpoint: str
    weights: ScoreWeights
    notes: list[str] = field(default_factory=list)
    route: dict = field(default_factory=dict)  # the pipeline's in_domain, domain_percentile, nearest, looks_like


def volume_files(paths: list[str], workdir: Path) -> list[str]:
    """Uploaded files, with ZIP archives opened (by the batch tab's safe extraction)."""
    files = []
    for item in expand_uploads(list(paths), workdir):
        if item.error:
            raise ImageLoadError(f"{item.name}: {item.error}")
        files.append(str(item.path))
    return files


def analyse_volume(
    paths: list[str],
    pipeline: Pipeline,
    label: str | None,
    keep: bool = False,
    axis: int = 2,
    volume_index: int = 0,
    progress=None,
) -> tuple[VolumeAnalysis, str]:
    """The pipeline's volume route (checkpoint by content, its CT window), every slice through the network once,
    the maps kept for the slice view and the weight sliders."""
    if not paths:
        raise ImageLoadError("no file was given")
    with tempfile.TemporaryDirectory(prefix="spmamba-volume-") as tmp:  # extracted series files, removed at once
        ready = pipeline.prepare_volume(volume_files(paths, Path(tmp)), label, keep, axis, volume_index)
    predictor = get_predictor(ready.route.path)
    maps = volume_maps(predictor, ready.volume, progress=progress)
    va = VolumeAnalysis(ready.volume, maps, ready.route.path, predictor.weights, ready.notes, ready.route.to_dict())
    return va, ready.route.label


def report(va: VolumeAnalysis, weights: ScoreWeights | None = None) -> dict:
    predictor = get_predictor(va.checkpoint)
    scores = predictor.score(va.maps, weights or va.weights)
    rep = volume_report(predictor, va.volume, scores, va.route.get("in_domain"))
    return {**rep, **va.route}


def profile_figure(rep: dict, current: int | None, calibration: dict | None) -> go.Figure:
    """Score per slice, with the calibrated threshold and the range of normal validation scores (5th-95th
    percentile) when the checkpoint was trained on this modality."""
    rows = rep["per_slice"]
    x = [r["index"] for r in rows]
    y = [r["total"] for r in rows]
    fig = go.Figure()
    if rep["threshold"] is not None and calibration:
        q = calibration.get("normal_quantiles", {})
        if "5" in q and "95" in q:
            fig.add_hrect(y0=q["5"], y1=q["95"], fillcolor="#4c9f70", opacity=0.15, line_width=0)
            fig.add_annotation(x=x[-1], y=q["95"], text="normal range (5–95%)", showarrow=False, yshift=8)
        fig.add_hline(y=rep["threshold"], line_dash="dash", line_color="#c0392b")
        fig.add_annotation(x=x[0], y=rep["threshold"], text="threshold", showarrow=False, yshift=8, xanchor="left")
    fig.add_trace(
        go.Scatter(x=x, y=y, mode="lines+markers", name="score", hovertext=[r["label"] for r in rows], marker_size=6)
    )
    if current is not None and 0 <= current < len(rows):
        fig.add_trace(
            go.Scatter(
                x=[current], y=[y[current]], mode="markers", name="shown", marker=dict(size=14, symbol="circle-open")
            )
        )
    fig.update_layout(
        height=300,
        margin=dict(l=40, r=20, t=30, b=40),
        xaxis_title="slice (click one to show it)",
        yaxis_title="anomaly score",
        showlegend=False,
        title=f"highest: {rows[rep['highest_slice']]['label']}",
    )
    return fig


def slice_view(va: VolumeAnalysis, k: int, weights: ScoreWeights) -> tuple[np.ndarray, str]:
    """Slice k with its anomaly map over it, and its score placed as the Analyse tab places it."""
    from spmamba.scoring import rescore

    k = int(np.clip(k, 0, len(va.volume) - 1))
    grey = va.volume.slices[k]
    scale = DISPLAY_MAX / max(grey.shape)
    display = resize(grey, (round(grey.shape[0] * scale), round(grey.shape[1] * scale)), anti_aliasing=True)
    s = rescore(type(va.maps)(va.maps.per_scale[k : k + 1], va.maps.prototype[k : k + 1]), weights)
    picture = overlay_own_range(display.astype(np.float32), s.anomaly_map[0].numpy())
    judgement = get_predictor(va.checkpoint).judge(float(s.total[0]), va.volume.meta, va.route.get("in_domain"))
    label = va.volume.labels[k] if k < len(va.volume.labels) else str(k)
    text = f"**{label}** ({k + 1} of {len(va.volume)})\n\n" + judgement.text
    notes = [n for n in [near_blank_note(grey)] if n] + va.notes
    return picture, "\n\n".join([text] + [f"⚠️ {n}" for n in notes])


def write_csv(rep: dict, folder: Path) -> Path:
    path = folder / "slice_scores.csv"
    keys = [
        "index",
        "label",
        "blank",
        "nearly_blank",
        "total",
        "reconstruction",
        "prototype",
        "concentration",
        "contrast",
        "above_threshold",
    ]
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys, extrasaction="ignore")
        w.writeheader()
        w.writerows(rep["per_slice"])
    return path


def volume_tab(pipeline: Pipeline, user_errors, private: dict, network: dict) -> None:
    checkpoints = pipeline.checkpoints
    state = gr.State(None, time_to_live=3600)
    with gr.Tab("Volume"):
        gr.Markdown(
            "Score every slice of a volume: a NIfTI file, a multi-frame DICOM, or the DICOM files of one series "
            "(several files or a ZIP). The most anomalous slice is shown first; click the profile or move the "
            "slider to browse."
        )
        with gr.Row():
            with gr.Column(scale=1):
                files = gr.File(
                    file_count="multiple", type="filepath", label="Volume or series", elem_id="volume-files"
                )
                model = gr.Dropdown(list(checkpoints), value=next(iter(checkpoints), None), label="Checkpoint")
                keep = gr.Checkbox(
                    False, label="Use this checkpoint (otherwise the volume goes to the one it resembles)"
                )
                with gr.Row():
                    axis = gr.Radio([0, 1, 2], value=2, label="NIfTI slice axis")
                    vol_index = gr.Number(0, precision=0, minimum=0, label="NIfTI volume (4-D)")
                go_btn = gr.Button("Score the volume", variant="primary")
                with gr.Accordion("Score weights (re-score every slice from cached maps)", open=False):
                    alpha = weight_slider("alpha")
                    beta = weight_slider("beta")
                    gamma = weight_slider("gamma")
                csv_file = gr.File(label="Per-slice scores (CSV)")
                map_file = gr.File(label="Anomaly map as NIfTI, aligned with the input")
            with gr.Column(scale=2):
                profile = gr.Plot(label="Slice-score profile", elem_id="volume-profile")
                index = gr.Slider(0, 1, 0, step=1, label="Slice", elem_id="volume-slice")
                picture = gr.Image(label="Slice and its anomaly map", type="numpy", elem_id="volume-slice-image")
                verdict = gr.Markdown(elem_id="volume-verdict")

    def weights_of(va, a, b, g):
        return weights_from_sliders(va.weights, a, b, g, va.weights.dog_sigma, va.weights.dog_k_sigma)

    @user_errors
    def run(paths, label, keep_v, axis_v, vol_v, progress=gr.Progress()):
        va, label = analyse_volume(
            paths or [],
            pipeline,
            label,
            keep_v,
            int(axis_v),
            int(vol_v or 0),
            progress=lambda f: progress(f, desc="slices"),
        )
        rep = report(va)
        folder = scratch_dir()
        top = rep["highest_slice"]
        picture_v, text = slice_view(va, top, va.weights)
        w = va.weights
        return {
            state: va,
            model: label,
            profile: profile_figure(rep, top, get_predictor(va.checkpoint).calibration),
            index: gr.update(maximum=max(len(va.volume) - 1, 1), value=top),
            picture: picture_v,
            verdict: "\n\n".join(x for x in (va.route.get("looks_like"), text) if x),
            csv_file: str(write_csv(rep, folder)),
            map_file: str(save_map_nifti(va.volume, va.maps, w, folder / "anomaly_map.nii.gz"))
            if va.volume.affine is not None
            else None,
            alpha: w.alpha,
            beta: w.beta,
            gamma: w.gamma,
        }

    @user_errors
    def show(va, k, a, b, g):
        if va is None:
            return {picture: gr.skip(), verdict: gr.skip(), profile: gr.skip()}
        w = weights_of(va, a, b, g)
        picture_v, text = slice_view(va, int(k), w)
        rep = report(va, w)
        return {
            picture: picture_v,
            verdict: text,
            profile: profile_figure(rep, int(k), get_predictor(va.checkpoint).calibration),
        }

    outputs = [state, model, profile, index, picture, verdict, csv_file, map_file, alpha, beta, gamma]
    go_btn.click(run, [files, model, keep, axis, vol_index], outputs, **network, **private)
    # user moves only (.input): the values the run itself sets must not trigger a redraw with stale inputs
    for control in (index, alpha, beta, gamma):
        control.input(
            show, [state, index, alpha, beta, gamma], [picture, verdict, profile], show_progress="hidden", **private
        )


def volume_api(pipeline: Pipeline, paths: list[str] | None, checkpoint: str = "") -> dict:
    """The /analyze_volume endpoint as a plain function: per-slice scores and the index of the highest. No maps
    are kept: nothing on the page shows them."""
    if not paths:
        raise ImageLoadError("no file was given")
    with tempfile.TemporaryDirectory(prefix="spmamba-volume-") as tmp:
        return pipeline.analyse_volume(volume_files(list(paths), Path(tmp)), checkpoint or None, bool(checkpoint))


def volume_endpoint(pipeline: Pipeline, user_errors, network: dict) -> None:
    files = gr.File(visible=False, file_count="multiple", type="filepath")
    checkpoint = gr.Textbox("", visible=False)
    result = gr.JSON(visible=False)
    trigger = gr.Button(visible=False)

    @user_errors
    def analyze_volume(paths, label=""):
        """Per-slice scores of a NIfTI volume, a multi-frame DICOM or the files of one DICOM series (or a ZIP of
        them), and the index of the highest-scoring slice; the checkpoint defaults to the one trained on the
        volume's modality."""
        return volume_api(pipeline, paths, label or "")

    trigger.click(analyze_volume, [files, checkpoint], result, api_name="analyze_volume", **network)
