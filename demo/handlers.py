"""Event handlers as plain functions: testable without a server.

``analyze`` runs the network once and returns an :class:`Analysis` kept in the
session's ``gr.State``; ``render`` re-weights and redraws from that cache only.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from skimage.transform import resize

from spmamba.imaging import ImageLoadError, load_image
from spmamba.inference import predict_maps
from spmamba.scoring import ComponentMaps, ScoreWeights, rescore

from .models import get_model
from .render import overlay, score_figure

DISPLAY_MAX = 512  # longest side of the displayed image


@dataclass
class Analysis:
    """Per-session cache: everything a slider needs, nothing identifying the patient."""

    maps: ComponentMaps  # one image, at the model's input size
    display: np.ndarray  # (H, W) grey image as shown
    checkpoint: str
    weights: ScoreWeights  # the checkpoint's own weights, restored by "reset"
    calibration: dict | None
    image_meta: dict


@dataclass
class Rendered:
    overlay: np.ndarray
    figure: object
    verdict: str
    scores: dict


def analyze(path: str, checkpoint: str) -> Analysis:
    """Load the file, run the model once, cache the component maps."""
    if not path:
        raise ImageLoadError("no file was given")
    img = load_image(path)
    model, meta = get_model(checkpoint)
    grey = img.grey
    size = model.config.image_size
    x = F.interpolate(torch.from_numpy(grey)[None, None], size=(size, size), mode="bilinear", antialias=True)
    maps = predict_maps(model, x.to(next(model.parameters()).device))
    maps = ComponentMaps(maps.per_scale.cpu(), maps.prototype.cpu())
    scale = min(1.0, DISPLAY_MAX / max(grey.shape))
    display = resize(grey, (round(grey.shape[0] * scale), round(grey.shape[1] * scale)), anti_aliasing=True)
    return Analysis(maps, display.astype(np.float32), checkpoint, ScoreWeights.from_dict(meta["score_weights"]),
                    meta.get("calibration"), img.meta)


def verdict(total: float, calibration: dict | None) -> str:
    """Plain-language placement of the score; never a diagnosis."""
    if not calibration:
        return f"Score {total:.3g}. This checkpoint has no calibration, so the score cannot be placed."
    normal = np.asarray(calibration["normal_scores"])
    pct = 100 * (normal < total).mean()
    above = total >= calibration["threshold"]
    head = "**Above the normal range for this model.**" if above else "**Within the normal range for this model.**"
    return (f"{head} Score {total:.3g} (threshold {calibration['threshold']:.3g}); higher than {pct:.0f}% of the "
            f"{len(normal)} normal validation images. This measures how unusual the image is for the model, "
            "not whether disease is present.")


def render(analysis: Analysis, weights: ScoreWeights, opacity: float = 0.45, contour: float = 0.9) -> Rendered:
    """Re-score the cached maps with ``weights`` and draw them; ``contour`` is the fraction of the map's range
    above which the region is outlined."""
    s = rescore(analysis.maps, weights)
    amap = s.anomaly_map[0].numpy()
    lo, hi = float(amap.min()), float(amap.max())
    picture = overlay(analysis.display, amap, lo, hi, opacity, lo + contour * (hi - lo))
    total = float(s.total[0])
    parts = {"peak": float(s.peak[0]), "β·concentration": weights.beta * float(s.concentration[0]),
             "γ·contrast": weights.gamma * float(s.contrast[0])}
    cal = analysis.calibration
    fig = score_figure(parts, total, cal and cal["threshold"], cal and cal.get("normal_scores"))
    scores = {"total": total, "reconstruction": float(s.reconstruction[0]), "prototype": float(s.prototype[0]),
              "peak": float(s.peak[0]), "concentration": float(s.concentration[0]),
              "contrast": float(s.contrast[0]), "map_min": lo, "map_max": hi}
    return Rendered(picture, fig, verdict(total, cal), scores)


def weights_from_sliders(base: ScoreWeights, alpha, beta, gamma, sigma, k_sigma) -> ScoreWeights:
    return dataclasses.replace(base, alpha=float(alpha), beta=float(beta), gamma=float(gamma),
                               dog_sigma=float(sigma), dog_k_sigma=float(k_sigma))
