"""A segmentation checkpoint ready to use: probability maps at each image's own size, and its scores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..imaging import load_image
from .checkpoint import load_seg_checkpoint
from .data import DEFAULT_THRESHOLD, load_truth, model_image
from .metrics import segmentation_scores


class Segmenter:
    """Read-only after loading, so sessions can share one."""

    def __init__(self, model: torch.nn.Module, meta: dict | None = None):
        self.model, self.meta = model.eval(), meta or {}
        self.threshold = float(self.meta.get("threshold", DEFAULT_THRESHOLD))

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> Segmenter:
        model, meta = load_seg_checkpoint(path, device)
        return cls(model, meta)

    @property
    def image_size(self) -> int:
        return self.model.config.image_size

    @torch.no_grad()
    def probabilities(self, pixels: np.ndarray) -> np.ndarray:
        """(H, W) lesion probability for an (H, W) grey or (H, W, 3) colour image in [0, 1]."""
        device = next(self.model.parameters()).device
        x = model_image(pixels, self.image_size, self.model.config.intensity)
        logits = self.model(x[None].to(device))
        h, w = pixels.shape[:2]
        prob = torch.sigmoid(F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False))
        return prob[0, 0].cpu().numpy()

    def scores(self, image: Path, mask: Path) -> dict:
        """Dice, IoU and HD95 (pixels) of the thresholded prediction against ``mask`` at the image's size."""
        prob = self.probabilities(load_image(image).pixels)
        truth = load_truth(mask)
        if truth.shape != prob.shape:
            raise ValueError(
                f"{mask.name} is {truth.shape[1]}x{truth.shape[0]}, its image {prob.shape[1]}x{prob.shape[0]}"
            )
        return segmentation_scores(prob >= self.threshold, truth)
