"""The Analyse tab's handlers as plain functions: testable without a server.

``analyse`` runs the network once and returns an :class:`Analysis` kept in the
session's ``gr.State``; ``render`` re-weights and redraws from that cache only.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from skimage.segmentation import find_boundaries
from skimage.transform import resize

from spmamba.data import resize_grey
from spmamba.imaging import WINDOW_PRESETS, ImageLoadError, LoadedImage, load_image
from spmamba.inference import Judgement, score_components
from spmamba.pipeline import get_predictor, load_checked
from spmamba.scoring import ComponentMaps, ScoreWeights, rescore
from spmamba.visualize import CONTOUR, OPACITY, compose, image_bytes, map_levels, outline_level, own_range

from .render import colour_bar, components_table, score_figure

DISPLAY_MAX = 512  # longest side of the displayed image


@dataclass
class ImageOptions:
    """How to turn a file into one 2-D image: DICOM window, NIfTI axis, slice or frame index."""

    window: tuple[float, float] | None = None
    index: int | None = None  # NIfTI slice (default: middle) or DICOM frame (default: first)
    axis: int = 2


@dataclass
class Analysis:
    """Per-session cache: everything a slider needs, nothing identifying the patient."""

    maps: ComponentMaps  # one image, at the model's input size
    display: np.ndarray  # (H, W) grey image as shown
    checkpoint: str  # path of the checkpoint that made the maps: it places the score
    weights: ScoreWeights  # the checkpoint's own weights, restored by "reset"
    calibration: dict | None
    image_meta: dict
    notes: list[str] = field(default_factory=list)
    truth: np.ndarray | None = None  # (H, W) bool ground-truth mask at display size, for dataset examples
    in_domain: bool | None = None  # the pipeline's out-of-domain check: False gives no normal-range verdict
    source: tuple[str, ImageOptions] | None = None  # the stored upload and how it was read, for the Compare tab

    def judge(self, total: float) -> Judgement:
        return get_predictor(self.checkpoint).judge(total, self.image_meta, self.in_domain)

    @functools.cached_property
    def grey8(self) -> np.ndarray:
        """(H, W) uint8: the image as shown, sent to the page once per analysis; the overlay is mixed over it."""
        return image_bytes(self.display)

    @functools.cached_property
    def truth_edge(self) -> np.ndarray:
        """(H, W) bool: the ground-truth mask's outline (none without a mask), made once, not per re-scoring."""
        return np.zeros(self.display.shape, bool) if self.truth is None else find_boundaries(self.truth, mode="inner")


@dataclass
class Rendered:
    """One re-scoring, drawn. The page receives ``layer`` (the map's levels, the ground-truth edge) and mixes it
    with the image in the browser; ``overlay`` is the same mix made here, for the API and the downloads."""

    grey8: np.ndarray  # (H, W) uint8: the image as shown
    layer: np.ndarray  # (H, W, 4) uint8: R the map's level (0-255 over its own range), G 255 on the truth's edge
    opacity: float
    contour: float
    show_truth: bool
    figure: object
    verdict: str
    scores: dict
    colour_bar: str
    table: str
    judgement: Judgement

    @functools.cached_property
    def overlay(self) -> np.ndarray:
        edge = self.layer[..., 1] > 0 if self.show_truth else None
        return compose(self.grey8, self.layer[..., 0], self.opacity, outline_level(self.contour), edge)


def window_for(preset: str, centre: float, width: float) -> tuple[float, float] | None:
    """The DICOM window for a preset name; "custom" takes the sliders' centre and width."""
    if preset == "custom":
        return float(centre), max(float(width), 1.0)
    if preset not in WINDOW_PRESETS:
        raise ImageLoadError(f"unknown window preset {preset!r}; choose one of {', '.join(WINDOW_PRESETS)}")
    return WINDOW_PRESETS[preset]


def load(
    path: str | None, options: ImageOptions | None = None, window: tuple[float, float] | None = None
) -> LoadedImage:
    """The loader plus the app's own refusal of blank images, which carry nothing to analyse (``window``,
    when given, replaces the options' own: the pipeline re-loads a CT in its checkpoint's window)."""
    options = options or ImageOptions()
    return load_checked(path, window or options.window, options.index, options.axis)


def analyse(
    path: str | None, checkpoint: str, options: ImageOptions | None = None, notes: list[str] | None = None
) -> Analysis:
    """Load the file, run the model once, cache the component maps."""
    return analyse_image(load(path, options), checkpoint, notes)


def analyse_image(
    img: LoadedImage,
    checkpoint: str,
    notes: list[str] | None = None,
    truth: str | Path | None = None,
    in_domain: bool | None = None,
) -> Analysis:
    """Run the model once on a loaded image and cache its component maps (and ``truth``, a mask file)."""
    predictor = get_predictor(checkpoint)
    grey = img.grey
    maps = predictor.maps([grey])
    scale = DISPLAY_MAX / max(grey.shape)  # small images are enlarged, so every map is readable
    display = resize_grey(grey, (round(grey.shape[0] * scale), round(grey.shape[1] * scale))).numpy()
    mask = None
    if truth is not None:
        mask = resize(load_image(truth).grey > 0.5, display.shape, order=0, anti_aliasing=False).astype(bool)
    return Analysis(
        maps,
        display.astype(np.float32),
        checkpoint,
        predictor.weights,
        predictor.calibration,
        img.meta,
        list(notes or []),
        mask,
        in_domain,
    )


def render(
    analysis: Analysis,
    weights: ScoreWeights,
    opacity: float = OPACITY,
    contour: float = CONTOUR,
    show_truth: bool = False,
) -> Rendered:
    """Re-score the cached maps with ``weights`` and draw them; ``contour`` is the fraction of the map's range
    above which the region is outlined; ``show_truth`` outlines the ground-truth mask where there is one."""
    s = rescore(analysis.maps, weights)
    amap = s.anomaly_map[0].numpy()
    lo, hi, line = own_range(amap, contour)
    levels = map_levels(amap, lo, hi, analysis.display.shape)
    edge = analysis.truth_edge.astype(np.uint8) * 255
    layer = np.dstack([levels, edge, np.zeros_like(levels), np.full_like(levels, 255)])
    total = float(s.total[0])
    parts = {
        "peak": float(s.peak[0]),
        "β·concentration": weights.beta * float(s.concentration[0]),
        "γ·contrast": weights.gamma * float(s.contrast[0]),
    }
    judgement = analysis.judge(total)
    # another modality, unlike the training images, or weights the normal range was not measured with:
    # nothing to place the score against
    own = all(math.isclose(getattr(weights, f), getattr(analysis.weights, f), abs_tol=1e-6) for f in SLIDER_FIELDS)
    placed = judgement.modality_match is not False and analysis.in_domain is not False and own
    cal = analysis.calibration if placed else None
    fig = score_figure(parts, total, cal and cal["threshold"], cal and cal.get("normal_scores"))
    scores = {**score_components(s), "map_min": lo, "map_max": hi}
    verdict = judgement.text if own else reweighted_text(total)
    text = "\n\n".join([verdict] + [f"⚠️ {n}" for n in analysis.notes])
    return Rendered(
        analysis.grey8,
        layer,
        opacity,
        contour,
        show_truth,
        fig,
        text,
        scores,
        colour_bar(lo, hi, line if contour <= 1 else None),
        components_table(scores, weights),
        judgement,
    )


def reweighted_text(total: float) -> str:
    """The verdict while the sliders differ from the checkpoint's weights: the threshold and the normal range
    were measured with its own weights, so a re-weighted score is shown but not placed."""
    return (
        f"**Re-weighted with your slider values.** Score {total:.3g} is not placed against the normal range, "
        "which was measured with the checkpoint's own weights; *Reset to the checkpoint's weights* restores them "
        "and the verdict."
    )


SLIDER_FIELDS = ("alpha", "beta", "gamma", "dog_sigma", "dog_k_sigma")  # the weights the page lets a user move


def weights_from_sliders(base: ScoreWeights, alpha, beta, gamma, dog_low, dog_high) -> ScoreWeights:
    return dataclasses.replace(
        base,
        alpha=float(alpha),
        beta=float(beta),
        gamma=float(gamma),
        dog_sigma=float(dog_low),
        dog_k_sigma=float(dog_high),
    )
