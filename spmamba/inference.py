"""Running a model over images and sample lists to cacheable component maps."""
from __future__ import annotations

import torch
from tqdm.auto import tqdm

from .data import Sample, load_batch
from .model import SPMamba
from .scoring import ComponentMaps, component_maps


@torch.no_grad()
def predict_maps(model: SPMamba, images: torch.Tensor) -> ComponentMaps:
    """(B, 1 or 3, S, S) images in [0, 1] -> component maps at S x S."""
    out = model(images)
    return component_maps(out.features, out.reconstructions, out.prototype_distance, model.config.image_size)


def maps_for_samples(model: SPMamba, samples: list[Sample], batch_size: int = 16,
                     desc: str | None = None) -> ComponentMaps:
    """Component maps for a list of samples, batched, with a progress bar when ``desc`` is given."""
    model.eval()
    parts = []
    it = range(0, len(samples), batch_size)
    for i in tqdm(it, desc=desc, disable=desc is None, unit="batch", leave=False):
        parts.append(predict_maps(model, load_batch(samples[i:i + batch_size], model.config.image_size)))
    return ComponentMaps(torch.cat([p.per_scale for p in parts]), torch.cat([p.prototype for p in parts]))
