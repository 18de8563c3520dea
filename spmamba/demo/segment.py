"""The Segment tab: Mamba-MIS lesion masks. Handlers are plain functions; ``segment_tab`` lays out and wires.

The network runs once per image; the threshold slider, the opacity and a ground-truth mask re-draw from
the cached probability map.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr
import numpy as np
from matplotlib import colormaps
from skimage.segmentation import find_boundaries
from skimage.transform import resize

from spmamba import __version__
from spmamba.export import export_mask
from spmamba.imaging import LoadedImage
from spmamba.pipeline import SEGMENT, Pipeline, get_segmenter
from spmamba.seg.data import DEFAULT_THRESHOLD, MASK_LEVEL, load_truth_mask
from spmamba.seg.metrics import dice, iou
from spmamba.visualize import MAP_OUTLINE, TRUTH_OUTLINE

from .batch import scratch_dir
from .endpoints import api_index, file_endpoint
from .examples import Example
from .handlers import DISPLAY_MAX, ImageOptions, load

FILL = np.array([1.0, 0.35, 0.2])  # the predicted lesion, filled


@dataclass
class Segmentation:
    """Per-session cache of one segmented image."""

    prob: np.ndarray  # (H, W) lesion probability at the image's own size
    display: np.ndarray  # (h, w) grey or (h, w, 3) colour image as shown, longest side DISPLAY_MAX
    checkpoint: str
    threshold: float  # the checkpoint's own
    image_meta: dict
    notes: list[str] = field(default_factory=list)
    route: dict = field(default_factory=dict)  # the pipeline's in_domain, domain_percentile, nearest, looks_like
    source: str | None = None  # the stored upload, which a NIfTI or DICOM SEG export refers to


def segment_image(
    image: LoadedImage, checkpoint: str, notes: list[str] | None = None, source: str | None = None
) -> Segmentation:
    prob = get_segmenter(checkpoint).probabilities(image.pixels)
    h, w = prob.shape
    scale = DISPLAY_MAX / max(h, w)
    display = resize(image.pixels, (round(h * scale), round(w * scale)), anti_aliasing=True).astype(np.float32)
    threshold = get_segmenter(checkpoint).threshold
    return Segmentation(prob, display, checkpoint, threshold, image.meta, list(notes or []), source=source)


def mask_files(seg: Segmentation, threshold: float) -> tuple[list[str], list[str]]:
    """The mask at ``threshold`` in every form its input allows (PNG; NIfTI for NIfTI, DICOM SEG for DICOM), in a
    fresh folder of neutral file names; and a note for a form that could not be written."""
    files, notes = export_mask(
        seg.prob >= threshold, seg.source, seg.image_meta, scratch_dir(), Path(seg.checkpoint).stem, __version__
    )
    return [str(f) for f in files], notes


def measurements(seg: Segmentation, threshold: float, truth: np.ndarray | None = None) -> dict:
    """Lesion size at ``threshold`` (pixels; mm² when the DICOM gives the pixel spacing), and Dice/IoU
    against ``truth`` when given: what the tab shows and ``/segment`` returns."""
    mask = seg.prob >= threshold
    spacing = seg.image_meta.get("pixel_spacing_mm")
    out = {
        "threshold": float(threshold),
        "lesion_pixels": int(mask.sum()),
        "share_of_image": float(mask.mean()),
        "area_mm2": float(mask.sum() * spacing[0] * spacing[1]) if spacing else None,
    }
    if truth is not None:
        out.update(dice=dice(mask, truth), iou=iou(mask, truth))
    return out


def draw(seg: Segmentation, threshold: float, opacity: float, truth: np.ndarray | None = None) -> np.ndarray:
    """RGB uint8: the image with the predicted lesion filled (``opacity``) and outlined, and the ground
    truth outlined in cyan when given."""
    h, w = seg.display.shape[:2]
    rgb = seg.display if seg.display.ndim == 3 else np.repeat(seg.display[..., None], 3, axis=2)
    mask = resize(seg.prob, (h, w), order=1, anti_aliasing=False) >= threshold
    rgb = rgb.copy()
    rgb[mask] = (1 - opacity) * rgb[mask] + opacity * FILL
    rgb[find_boundaries(mask, mode="inner")] = MAP_OUTLINE
    if truth is not None:
        shown = resize(truth.astype(float), (h, w), order=0, anti_aliasing=False) > MASK_LEVEL
        rgb[find_boundaries(shown, mode="inner")] = TRUTH_OUTLINE
    return (np.clip(rgb, 0, 1) * 255).astype(np.uint8)


def probability_image(seg: Segmentation) -> np.ndarray:
    h, w = seg.display.shape[:2]
    return (colormaps["magma"](resize(seg.prob, (h, w), order=1))[..., :3] * 255).astype(np.uint8)


def summary_text(m: dict, checkpoint_name: str, notes: list[str]) -> str:
    area = f" = **{m['area_mm2']:.1f} mm²**" if m["area_mm2"] is not None else " (no pixel spacing in the file)"
    lines = [
        f"Lesion at threshold {m['threshold']:.2f}: **{m['lesion_pixels']:,} pixels**{area}, "
        f"{100 * m['share_of_image']:.1f}% of the image. Checkpoint `{checkpoint_name}`.",
    ]
    if "dice" in m:
        lines.append(f"Against the ground truth: **Dice {m['dice']:.3f}**, IoU {m['iou']:.3f}.")
    lines += [f"⚠️ {n}" for n in notes]
    lines.append("Research use only — a segmentation is not a diagnosis.")
    return "\n\n".join(lines)


def prepared_segmentation(
    pipeline: Pipeline, path: str | None, label: str | None, keep: bool, index: int | None = None
) -> Segmentation:
    """The pipeline's route for this file among the segmentation checkpoints, and its segmentation; an image
    unlike every segmentation training set is still outlined, and the route's ``looks_like`` says so."""
    if not pipeline.seg_checkpoints:
        raise gr.Error("No segmentation checkpoint is installed: put one in weights/ and restart.")
    options = ImageOptions(index=index)
    ready = pipeline.prepare(path, functools.partial(load, options=options), family=SEGMENT, chosen=label, keep=keep)
    seg = segment_image(ready.image, ready.route.path, ready.route.notes, source=path)
    seg.route = ready.route.to_dict()
    return seg


def segment_api(
    pipeline: Pipeline, path: str | None, checkpoint: str = "", index: int | None = None
) -> tuple[dict, np.ndarray, list[str]]:
    """The /segment endpoint as a plain function: measurements as JSON, the mask overlay and the mask files
    (``index``: a page, frame or NIfTI slice, from 0). With no checkpoint named, the pipeline routes the image
    by its content."""
    seg = prepared_segmentation(pipeline, path, checkpoint or None, keep=bool(checkpoint), index=api_index(index))
    m = measurements(seg, seg.threshold)
    files, export_notes = mask_files(seg, seg.threshold)
    notes = seg.notes + export_notes
    report = {"checkpoint": Path(seg.checkpoint).stem, **m, **seg.route, "image": seg.image_meta, "notes": notes}
    return report, draw(seg, seg.threshold, 0.4), files


def segment_tab(pipeline: Pipeline, user_errors, private: dict, network: dict, examples: list[Example] = ()) -> None:
    """Drop an image or pick an example (with its mask), see the mask; threshold and opacity re-draw without the
    network."""
    checkpoints = pipeline.seg_checkpoints
    state = gr.State(None, time_to_live=3600)
    with gr.Tab("Segment"):
        gr.Markdown(
            "Lesion segmentation with **Mamba-MIS** (bidirectional-scan Mamba U-Net; our construction of a "
            "paper without published code, see docs/mamba_mis.md)."
        )
        with gr.Row():
            with gr.Column(scale=1):
                upload = gr.File(label="Image: PNG, JPEG, DICOM, NIfTI", type="filepath", elem_id="seg-upload")
                gallery = gr.Gallery(
                    [(str(e.thumb), e.caption) for e in examples],
                    label="Examples (validation images, with their masks)",
                    columns=3,
                    height=200,
                    allow_preview=False,
                    interactive=False,
                    visible=bool(examples),
                    elem_id="seg-examples",
                )
                model = gr.Dropdown(list(checkpoints), value=next(iter(checkpoints), None), label="Checkpoint")
                keep = gr.Checkbox(False, label="Keep this checkpoint for new images", elem_id="seg-keep")
                looks = gr.Markdown(elem_id="seg-looks-like")
                threshold = gr.Slider(
                    0.05, 0.95, DEFAULT_THRESHOLD, step=0.05, label="Threshold (re-applied to the cached map)"
                )
                opacity = gr.Slider(0, 1, 0.4, step=0.05, label="Fill opacity")
                truth_file = gr.File(
                    label="Ground-truth mask (optional): Dice and IoU", type="filepath", elem_id="seg-truth"
                )
            with gr.Column(scale=2):
                with gr.Tabs():
                    with gr.Tab("Mask"):
                        picture = gr.Image(
                            label="Predicted lesion (filled, green outline; truth in cyan)", type="numpy"
                        )
                    with gr.Tab("Probability"):
                        prob = gr.Image(label="Lesion probability", type="numpy")
                summary = gr.Markdown(elem_id="seg-summary")
                export = gr.Button("Save the mask at this threshold", elem_id="seg-export")
                exported = gr.File(label="Mask files", file_count="multiple", elem_id="seg-files")
                gr.Markdown(
                    "The mask as PNG at the image's size; for a NIfTI input also as NIfTI on the input's grid "
                    "and affine, for a DICOM image also as DICOM SEG. The SEG refers to the source image by its "
                    "study, series and instance UIDs (so a viewer can lay it over the image); the patient's name, "
                    "ID and birth date are left empty. File names never carry the upload's name."
                )

    def redraw(seg, threshold_v, opacity_v, truth_path):
        if seg is None:
            return {picture: gr.skip(), summary: gr.skip()}
        truth = load_truth_mask(truth_path, seg.prob.shape)
        m = measurements(seg, threshold_v, truth)
        name = Path(seg.checkpoint).stem
        unlike = [seg.route["looks_like"]] if seg.route.get("in_domain") is False else []
        return {picture: draw(seg, threshold_v, opacity_v, truth), summary: summary_text(m, name, unlike + seg.notes)}

    @user_errors
    def run(path, label, opacity_v, truth_path, keep_v=True):
        """Segment this file: routed afresh when it is new (unless kept), with the chosen checkpoint otherwise."""
        if not path:
            return {state: None, picture: None, prob: None, summary: "", looks: ""}
        seg = prepared_segmentation(pipeline, path, label, keep_v)
        return {
            state: seg,
            looks: seg.route.get("looks_like", ""),
            model: next(k for k, v in checkpoints.items() if v == seg.checkpoint),
            threshold: seg.threshold,
            prob: probability_image(seg),
            **redraw(seg, seg.threshold, opacity_v, truth_path),
        }

    def pick_example(evt: gr.SelectData):
        chosen = examples[evt.index]
        return str(chosen.path), str(chosen.truth) if chosen.truth else None

    @user_errors
    def save(seg, threshold_v):
        if seg is None:
            raise gr.Error("Segment an image first.", print_exception=False)
        files, notes = mask_files(seg, threshold_v)
        for note in notes:
            gr.Warning(note)
        return files

    outputs = [state, model, threshold, prob, picture, summary, looks]
    export.click(save, [state, threshold], exported, **private)
    gallery.select(pick_example, None, [upload, truth_file], **private)
    upload.change(run, [upload, model, opacity, truth_file, keep], outputs, **network, **private)
    model.input(run, [upload, model, opacity, truth_file], outputs, **network, **private)
    for control in (threshold, opacity, truth_file):
        control.change(
            user_errors(redraw),
            [state, threshold, opacity, truth_file],
            [picture, summary],
            show_progress="hidden",
            **private,
        )


def segment_endpoint(pipeline: Pipeline, user_errors, network: dict) -> None:
    """``/segment``: the documented segmentation endpoint."""

    @user_errors
    def segment(path, label="", index=None):
        """Lesion mask measurements as JSON, the mask overlay, and the mask as PNG (plus NIfTI for a NIfTI
        input, DICOM SEG for a DICOM image) for one image; the checkpoint defaults to the one trained on the
        image's modality (a colour photograph: dermoscopy); ``index`` chooses a page, frame or NIfTI slice
        (from 0)."""
        return segment_api(pipeline, path, label or "", index)

    file_endpoint(segment, "segment", network, files=True)
