"""What a checkpoint's training images look like, so an image can be routed by its content and an image
unlike every training set can be said to be so.

One frozen embedder serves every checkpoint (anomaly and segmentation): ImageNet EfficientNet-Lite0 at
128×128, its stride-8 and stride-16 features pooled to their channel means and standard deviations (304
numbers; colour kept, since a dermoscopy photograph differs from a grey radiograph by colour first). A
checkpoint's domain is the mean and the Ledoit-Wolf shrinkage covariance of its training images' embeddings
(a Mahalanobis description, as in the feature-space out-of-distribution literature), stored in the checkpoint
as ``domain.mean`` and ``domain.precision`` with the distances of its validation images in the metadata.

An image's distance to a domain is read against that checkpoint's own validation images: its percentile
among them, and ``in_domain`` when it is at most ``LIMIT_FACTOR`` times their 99th percentile. Why validation
images: they are the checkpoint's own held-out images (abnormal ones included: a pneumonia radiograph is a
chest radiograph), so the limit says how far images the model was meant to judge lie.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

EMBEDDER = "efficientnet_lite0-s8s16-meanstd-128"
EMBED_SIZE = 128
LIMIT_FACTOR = 1.25  # in domain: at most this times the 99th percentile of the validation images' distances
TENSOR_PREFIX = "domain."


@functools.lru_cache(maxsize=1)
def _encoder():
    from .model.encoders import Encoder

    return Encoder("efficientnet_lite0")


def embed_input(pixels: np.ndarray) -> torch.Tensor:
    """(3, EMBED_SIZE, EMBED_SIZE) of an (H, W) grey or (H, W, 3) colour image in [0, 1]: the stored values,
    whatever intensity rule a model applies, since the domain is how the file looks."""
    t = torch.from_numpy(np.ascontiguousarray(pixels, dtype=np.float32))
    t = t[None].expand(3, -1, -1) if t.ndim == 2 else t[..., :3].permute(2, 0, 1)
    return F.interpolate(t[None], size=(EMBED_SIZE,) * 2, mode="bilinear", antialias=True, align_corners=False)[0]


@torch.no_grad()
def embed(images: list[np.ndarray], batch_size: int = 32) -> np.ndarray:
    """(N, 304) float64 embeddings of grey or colour images in [0, 1]."""
    enc, out = _encoder(), []
    for i in range(0, len(images), batch_size):
        feats = enc(torch.stack([embed_input(p) for p in images[i : i + batch_size]]))[1:]
        out.append(torch.cat([t for f in feats for t in (f.mean((2, 3)), f.std((2, 3)))], 1).double())
    return torch.cat(out).numpy() if out else np.zeros((0, 304))


@dataclass
class Domain:
    """A checkpoint's training images in the shared embedding."""

    mean: np.ndarray  # (D,)
    precision: np.ndarray  # (D, D), inverse of the shrinkage covariance
    val_distances: np.ndarray  # sorted distances of the checkpoint's validation images
    n_train: int

    @property
    def limit(self) -> float:
        return float(LIMIT_FACTOR * np.quantile(self.val_distances, 0.99))

    def distance(self, embeddings: np.ndarray) -> np.ndarray:
        """Mahalanobis distance of each embedding to the training images."""
        d = np.atleast_2d(embeddings) - self.mean
        return np.sqrt(np.maximum(np.einsum("nd,de,ne->n", d, self.precision, d), 0.0))

    def percentile(self, distance: float) -> float:
        """Share (in %) of the checkpoint's validation images lying nearer than ``distance``."""
        return float(100 * np.searchsorted(self.val_distances, distance) / len(self.val_distances))

    def tensors(self) -> dict[str, torch.Tensor]:
        return {
            f"{TENSOR_PREFIX}mean": torch.from_numpy(self.mean).float(),
            f"{TENSOR_PREFIX}precision": torch.from_numpy(self.precision).float(),
        }

    def meta(self) -> dict:
        return {
            "embedder": EMBEDDER,
            "n_train": self.n_train,
            "val_distances": [round(float(x), 4) for x in self.val_distances],
            "limit_factor": LIMIT_FACTOR,
        }

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, meta: dict) -> Domain | None:
        """The domain stored in a checkpoint, or None for one written before domains (or by another embedder)."""
        info = meta.get("domain")
        if not info or info.get("embedder") != EMBEDDER:
            return None
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            mean, prec = (f.get_tensor(f"{TENSOR_PREFIX}{k}").double().numpy() for k in ("mean", "precision"))
        return cls(mean, prec, np.sort(np.asarray(info["val_distances"], float)), int(info["n_train"]))


def describe(train: list[np.ndarray], val: list[np.ndarray]) -> Domain:
    """The domain of ``train`` images, its limit read on ``val`` images (both grey or colour, in [0, 1])."""
    from sklearn.covariance import LedoitWolf

    if len(train) < 2 or not val:
        raise ValueError("a domain needs at least two training images and one validation image")
    lw = LedoitWolf().fit(embed(train))
    dom = Domain(lw.location_, lw.precision_, np.zeros(1), len(train))
    dom.val_distances = np.sort(dom.distance(embed(val)))
    return dom


def write_domain(path: str | os.PathLike, domain: Domain) -> None:
    """Store ``domain`` in an existing checkpoint (anomaly or segmentation)."""
    from .checkpoint import add_to_checkpoint

    add_to_checkpoint(path, domain.tensors(), {"domain": domain.meta()})


MAX_TRAIN, MAX_VAL = 600, 400  # seeded subsets: enough for a 304-dimensional shrinkage covariance and its limit


def dataset_images(meta: dict, data: str | os.PathLike) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Training and validation images (seeded subsets) of the dataset a checkpoint was trained on, found as
    ``data/<its data_path_name>``: the anomaly split (validation: in-pool and shift, normal and abnormal) or
    the segmentation split."""
    from .data import discover, subsample
    from .imaging import load_image

    root = Path(data) / meta.get("training", {}).get("data_path_name", "")
    if meta.get("format", "").startswith("spmamba-seg"):
        from .seg.data import split_pairs

        split = split_pairs(root)
        train, val = [p for p, _ in split.train], [p for p, _ in split.val]
    else:
        splits = discover(root)
        train, val = [s.path for s in splits.train], [s.path for s in splits.val + splits.shift_val]
    return [load_image(p).pixels for p in subsample(train, MAX_TRAIN)], [
        load_image(p).pixels for p in subsample(val, MAX_VAL)
    ]
