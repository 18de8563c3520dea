"""The anomaly-map overlay, shared by the demo and ``spmamba predict --overlay``."""

from __future__ import annotations

import functools

import numpy as np
from matplotlib import colormaps
from skimage.segmentation import find_boundaries
from skimage.transform import resize

CMAP = "inferno"


MAP_OUTLINE = (0.2, 1.0, 0.4)  # green: where the map is above the outline level
TRUTH_OUTLINE = (0.1, 0.8, 1.0)  # cyan: the ground-truth mask, where a dataset provides one
OPACITY = 0.45  # the heat map's weight over the image until the user moves the slider
CONTOUR = 0.9  # the outline's level, as a fraction of the map's own range


LEVELS = 255  # the map is drawn from 256 levels: what the page's canvas receives, so both draw the same pixels


def _byte(x: np.ndarray | float) -> np.ndarray:
    """[0, 255] to the nearest byte, halves up: the rounding the page's script uses."""
    return np.floor(np.asarray(x, dtype=np.float64) + 0.5).astype(np.uint8)


def image_bytes(grey: np.ndarray) -> np.ndarray:
    """A [0, 1] grey image as the bytes the overlay is mixed over."""
    return _byte(np.asarray(grey, dtype=np.float64) * 255)


@functools.lru_cache(maxsize=1)
def colour_table() -> np.ndarray:
    """(256, 3) uint8: the colour of each map level (the page's script gets the same table). Made once: every
    overlay, a weight slider's included, reads it."""
    table = _byte(colormaps[CMAP](np.arange(LEVELS + 1) / LEVELS)[:, :3] * 255)
    table.flags.writeable = False
    return table


def map_levels(amap: np.ndarray, vmin: float, vmax: float, shape: tuple[int, int]) -> np.ndarray:
    """(H, W) uint8: ``amap`` resized to ``shape`` and its [vmin, vmax] range spread over 256 levels."""
    m = resize(amap, shape, order=1, preserve_range=True, anti_aliasing=False)
    return _byte(np.clip((m - vmin) / max(vmax - vmin, 1e-8), 0, 1) * LEVELS)


def outline_level(fraction: float | None) -> int:
    """The map level from which the region is outlined (a fraction of the range); 256 (none) for None."""
    return LEVELS + 1 if fraction is None else int(np.floor(fraction * LEVELS + 0.5))  # above 255: no outline


def compose(
    grey8: np.ndarray, levels: np.ndarray, opacity: float, outline_from: int, truth_edge: np.ndarray | None = None
) -> np.ndarray:
    """RGB uint8 from the image's bytes and the map's levels: colour and image mixed by ``opacity``, the region
    at or above ``outline_from`` outlined in green, ``truth_edge`` in cyan. The page's script does exactly this
    in the browser (tests/test_browser.py compares the two)."""
    heat = colour_table()[levels].astype(np.float64)
    rgb = _byte((1 - opacity) * grey8.astype(np.float64)[..., None] + opacity * heat)
    rgb[find_boundaries(levels >= outline_from, mode="inner")] = _byte(np.array(MAP_OUTLINE) * 255)
    if truth_edge is not None:
        rgb[truth_edge] = _byte(np.array(TRUTH_OUTLINE) * 255)
    return rgb


def overlay(
    grey: np.ndarray,
    amap: np.ndarray,
    vmin: float,
    vmax: float,
    opacity: float,
    outline: float | None,
    truth: np.ndarray | None = None,
) -> np.ndarray:
    """RGB uint8: the grey image under the coloured anomaly map (its [vmin, vmax] range over the colours), the
    map outlined in green from ``outline`` (a fraction of that range) up and, when given, the (H, W)
    ground-truth mask outlined in cyan."""
    levels = map_levels(amap, vmin, vmax, grey.shape)
    edge = None if truth is None else find_boundaries(truth, mode="inner")
    return compose(image_bytes(grey), levels, opacity, outline_level(outline), edge)


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
    lo, hi, _ = own_range(amap, contour)
    return overlay(grey, amap, lo, hi, opacity, contour, truth)
