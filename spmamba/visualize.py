"""The anomaly-map overlay, shared by the demo and ``spmamba predict --overlay``."""

from __future__ import annotations

import numpy as np
from matplotlib import colormaps
from skimage.segmentation import find_boundaries
from skimage.transform import resize

CMAP = "inferno"


MAP_OUTLINE = (0.2, 1.0, 0.4)  # green: where the map is above the outline level
TRUTH_OUTLINE = (0.1, 0.8, 1.0)  # cyan: the ground-truth mask, where a dataset provides one
OPACITY = 0.45  # the heat map's weight over the image until the user moves the slider
CONTOUR = 0.9  # the outline's level, as a fraction of the map's own range


def overlay(
    grey: np.ndarray,
    amap: np.ndarray,
    vmin: float,
    vmax: float,
    opacity: float,
    threshold: float | None,
    truth: np.ndarray | None = None,
) -> np.ndarray:
    """RGB uint8: the grey image under the coloured anomaly map, with the map >= threshold outlined in green
    and, when given, the (H, W) ground-truth mask outlined in cyan."""
    h, w = grey.shape
    m = resize(amap, (h, w), order=1, preserve_range=True, anti_aliasing=False)
    norm = np.clip((m - vmin) / max(vmax - vmin, 1e-8), 0, 1)
    heat = colormaps[CMAP](norm)[..., :3]
    rgb = (1 - opacity) * np.repeat(grey[..., None], 3, axis=2) + opacity * heat
    if threshold is not None:
        edge = find_boundaries(m >= threshold, mode="inner")
        rgb[edge] = MAP_OUTLINE
    if truth is not None:
        rgb[find_boundaries(truth, mode="inner")] = TRUTH_OUTLINE
    return (np.clip(rgb, 0, 1) * 255).astype(np.uint8)


def own_range(amap: np.ndarray, contour: float = CONTOUR) -> tuple[float, float, float]:
    """The map's lowest and highest value and the outline level at ``contour`` of that range."""
    lo, hi = float(amap.min()), float(amap.max())
    return lo, hi, lo + contour * (hi - lo)


def overlay_own_range(
    grey: np.ndarray,
    amap: np.ndarray,
    opacity: float = OPACITY,
    contour: float = CONTOUR,
    truth: np.ndarray | None = None,
) -> np.ndarray:
    """The overlay with the colours spanning this map's own range and the outline at ``contour`` of it: how
    the Analyse and Volume tabs and ``spmamba predict --overlay`` all draw one image."""
    lo, hi, line = own_range(amap, contour)
    return overlay(grey, amap, lo, hi, opacity, line, truth)
