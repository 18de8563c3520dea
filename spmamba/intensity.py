"""Per-image intensity rules, one owner for both model families.

A rule is a checkpoint setting (``SPMambaConfig.intensity``, the segmentation configs' ``intensity``), applied
to the image in [0, 1] before it is resized to the model's input, by every path that feeds a model. Why: the
stored brightness of an image says as much about the scanner and its export as about the patient, and a
model trained on one acquisition period read another's brighter normals as anomalies.
"""

from __future__ import annotations

import numpy as np
from skimage import exposure

PERCENTILE = 99.9  # ``percentile``: the top of the scale, high enough that a few hot pixels do not set it
STRETCH = (1.0, 99.0)  # ``stretch``: the percentiles mapped to 0 and 1
CLAHE_CLIP = 0.01  # ``clahe``: skimage's default clip limit


def _percentile(pixels: np.ndarray) -> np.ndarray:
    top = float(np.percentile(pixels, PERCENTILE))
    return np.clip(pixels / top, 0.0, 1.0) if top > 0 else pixels


def _stretch(pixels: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(pixels, STRETCH)
    return np.clip((pixels - lo) / (hi - lo), 0.0, 1.0) if hi > lo else pixels


def _equalize(pixels: np.ndarray) -> np.ndarray:
    return exposure.equalize_hist(pixels).astype(np.float32) if np.ptp(pixels) > 0 else pixels


def _clahe(pixels: np.ndarray) -> np.ndarray:
    return (
        exposure.equalize_adapthist(pixels, clip_limit=CLAHE_CLIP).astype(np.float32) if np.ptp(pixels) > 0 else pixels
    )


RULES = {
    "raw": lambda p: p,  # the stored values
    "percentile": _percentile,  # divide by the 99.9th percentile (MR: no absolute scale)
    "stretch": _stretch,  # 1st..99th percentile to 0..1 (brightness and contrast of the export)
    "equalize": _equalize,  # global histogram equalisation
    "clahe": _clahe,  # contrast-limited adaptive histogram equalisation
}
INTENSITY = tuple(RULES)


def check_intensity(rule: str) -> None:
    if rule not in RULES:
        raise ValueError(f"unknown intensity rule {rule!r}; choose one of {', '.join(INTENSITY)}")


def stored_intensity(config: dict) -> str:
    """A stored config's intensity rule: configs written before the option have none, and were raw."""
    return config.get("intensity", "raw")


def scale_intensity(pixels: np.ndarray, rule: str) -> np.ndarray:
    """``pixels`` (grey or RGB, in [0, 1]) under ``rule``, float32 in [0, 1]; a blank image stays blank."""
    check_intensity(rule)
    return RULES[rule](np.asarray(pixels, dtype=np.float32))
