"""Anomaly maps and image scores, batched in torch, on the authors' reference-code scale.

Scoring is split in two so the demo's sliders never re-run the network:
``component_maps`` turns a forward pass into cacheable maps, and ``rescore``
turns those maps plus a set of weights into the anomaly map and scores.
The formulas are written out in ``docs/method.md``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F


@dataclass
class ScoreWeights:
    """Weights of the score. The defaults are the paper's ZhangLab values; ``reference()`` are the
    authors' code's. Both assume the reconstruction map on the reference scale (sum of scales / 9)."""

    alpha: float = 1.0  # prototype map
    beta: float = -0.025  # concentration (negative: normal maps are more dispersed)
    gamma: float = 400.0  # contrast
    sigma: float = 4.0  # Gaussian smoothing of the reconstruction map
    dog_sigma: float = 0.6  # difference of Gaussians for the contrast term: low sigma ...
    dog_k_sigma: float = 1.2  # ... and high sigma

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ScoreWeights":
        return cls(**{k: float(v) for k, v in d.items()})

    @classmethod
    def paper(cls) -> "ScoreWeights":
        """The paper's ZhangLab weights (alpha 1, concentration -0.025, contrast 400, DoG 0.6 / 1.2)."""
        return cls()

    @classmethod
    def reference(cls) -> "ScoreWeights":
        """The reference code's active branch (prototype 0.5, contrast 3750, concentration -0.08, DoG 0.5 / 1.0)."""
        return cls(alpha=0.5, beta=-0.08, gamma=3750.0, dog_sigma=0.5, dog_k_sigma=1.0)

    @classmethod
    def max_only(cls) -> "ScoreWeights":
        """The plain maximum of the smoothed reconstruction map."""
        return cls(alpha=0.0, beta=0.0, gamma=0.0)


WEIGHT_SETTINGS = {"paper": ScoreWeights.paper, "reference": ScoreWeights.reference, "max-only": ScoreWeights.max_only}


class ComponentMaps(NamedTuple):
    per_scale: torch.Tensor  # (B, 3, H, W) 1 - cos per scale, upsampled, unsmoothed
    prototype: torch.Tensor  # (B, H, W) prototype distance D, upsampled

    @property
    def reconstruction(self) -> torch.Tensor:
        """Sum of the per-scale maps divided by (number of scales x sum of their unit weights), i.e. by 9
        for three scales: the reference code's scale, on which the published weights were chosen."""
        n = self.per_scale.shape[1]
        return self.per_scale.sum(1) / (n * n)


class Scores(NamedTuple):
    anomaly_map: torch.Tensor  # (B, H, W)
    reconstruction: torch.Tensor  # (B,) max of the smoothed reconstruction map
    prototype: torch.Tensor  # (B,) max of the prototype distance map
    peak: torch.Tensor  # (B,) max of the anomaly map (the score's first term)
    concentration: torch.Tensor  # (B,)
    contrast: torch.Tensor  # (B,)
    total: torch.Tensor  # (B,)


def upsample_prototype_distance(d: torch.Tensor, size: int) -> torch.Tensor:
    """(B, h, w) bottleneck distances -> (B, size, size); ``align_corners=False`` as in the reference code's
    scoring and loss (the reconstruction maps, by contrast, are upsampled with ``align_corners=True``)."""
    return F.interpolate(d[:, None], size=(size, size), mode="bilinear", align_corners=False)[:, 0]


def component_maps(features, reconstructions, prototype_distance: torch.Tensor, size: int) -> ComponentMaps:
    """Per-scale cosine-distance maps and the prototype map, all at ``size`` x ``size``."""
    per_scale = torch.cat(
        [
            F.interpolate(
                1 - F.cosine_similarity(f, r, dim=1)[:, None], size=(size, size), mode="bilinear", align_corners=True
            )
            for f, r in zip(features, reconstructions, strict=True)
        ],
        1,
    )
    return ComponentMaps(per_scale, upsample_prototype_distance(prototype_distance, size))


@dataclass
class MapNorm:
    """What is normal *at each position*: the mean and spread of every component map over the training
    normals (PaDiM's per-position statistics, reduced to one value per map and pixel). A map is compared with
    them as a standardised deviation, so a place that is always hard to reconstruct (a clavicle, the skull
    base) stops dominating the score of every image."""

    per_scale_mean: torch.Tensor  # (S, H, W)
    per_scale_std: torch.Tensor
    prototype_mean: torch.Tensor  # (H, W)
    prototype_std: torch.Tensor

    FLOOR = 0.1  # the spread is floored at this share of its median over the map: a near-constant pixel is no signal

    @classmethod
    def fit(cls, batches) -> MapNorm:
        """Statistics of ComponentMaps batches, accumulated in float64 (the training set need not fit at once)."""
        n, sums = 0, None
        for m in batches:
            parts = (m.per_scale.double(), m.prototype.double())
            if sums is None:
                sums = [torch.zeros_like(p[0]) for p in parts for _ in range(2)]
            for j, p in enumerate(parts):
                sums[2 * j] += p.sum(0)
                sums[2 * j + 1] += (p * p).sum(0)
            n += parts[0].shape[0]
        if not n:
            raise ValueError("map statistics need at least one training image")
        out = []
        for s, ss in ((sums[0], sums[1]), (sums[2], sums[3])):
            mean = s / n
            std = (ss / n - mean * mean).clamp_min(0).sqrt()
            std = std.clamp_min(cls.FLOOR * float(std.median()) + 1e-12)
            out += [mean.float(), std.float()]
        return cls(*out)

    def apply(self, maps: ComponentMaps) -> ComponentMaps:
        return ComponentMaps(
            (maps.per_scale - self.per_scale_mean) / self.per_scale_std,
            (maps.prototype - self.prototype_mean) / self.prototype_std,
        )

    def tensors(self) -> dict[str, torch.Tensor]:
        return {f"map_norm.{f.name}": getattr(self, f.name).contiguous() for f in dataclasses.fields(self)}

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor]) -> MapNorm | None:
        names = [f"map_norm.{f.name}" for f in dataclasses.fields(cls)]
        return cls(*(tensors[k] for k in names)) if all(k in tensors for k in names) else None


def _pad_index(n: int, r: int, mode: str, device) -> torch.Tensor:
    """Indices of scipy.ndimage's padding: 'reflect' (d c b a | a b c d | d c b a) or 'nearest'
    (a a | a b c d | d d)."""
    i = torch.arange(-r, n + r, device=device)
    if mode == "nearest":
        return i.clamp(0, n - 1)
    if mode != "reflect":
        raise ValueError(f"border mode must be 'reflect' or 'nearest', got {mode!r}")
    i = i % (2 * n)
    return torch.where(i >= n, 2 * n - 1 - i, i)


def gaussian_blur(x: torch.Tensor, sigma: float, mode: str = "reflect") -> torch.Tensor:
    """Separable Gaussian over the last two dims, matching scipy.ndimage.gaussian_filter (truncate 4)."""
    if sigma <= 0:
        return x
    r = int(4.0 * sigma + 0.5)
    t = torch.arange(-r, r + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    shape = x.shape
    h, w = shape[-2:]
    y = x.reshape(-1, 1, h, w)
    y = y.index_select(2, _pad_index(h, r, mode, x.device))
    y = F.conv2d(y, k.view(1, 1, -1, 1))
    y = y.index_select(3, _pad_index(w, r, mode, x.device))
    y = F.conv2d(y, k.view(1, 1, 1, -1))
    return y.reshape(shape)


def concentration(amap: torch.Tensor) -> torch.Tensor:
    """mean over pixels of (e - e*)^2 * distance to the arg-max (x*, y*) (first maximum on ties)."""
    b, h, w = amap.shape
    flat = amap.reshape(b, -1)
    peak, idx = flat.max(1)
    ys = torch.arange(h, device=amap.device, dtype=amap.dtype).view(1, h, 1)
    xs = torch.arange(w, device=amap.device, dtype=amap.dtype).view(1, 1, w)
    py, px = (idx // w).to(amap.dtype).view(b, 1, 1), (idx % w).to(amap.dtype).view(b, 1, 1)
    dist = torch.sqrt((ys - py) ** 2 + (xs - px) ** 2)
    return (((amap - peak.view(b, 1, 1)) ** 2) * dist).mean((1, 2))


def contrast(amap: torch.Tensor, sigma: float, k_sigma: float) -> torch.Tensor:
    """mean |difference of Gaussians| of the map, with skimage's ``difference_of_gaussians`` border ('nearest')."""
    return (gaussian_blur(amap, sigma, "nearest") - gaussian_blur(amap, k_sigma, "nearest")).abs().mean((1, 2))


RESCORE_CHUNK = 32  # images scored at a time: each needs several full-size temporaries (blur, DoG)


def rescore(maps: ComponentMaps, weights: ScoreWeights) -> Scores:
    """Anomaly map and scores from cached maps: cheap, no network. Scored ``RESCORE_CHUNK`` images at a time,
    so a 1,024-slice volume holds one chunk's temporaries, not a thousand images' (each image is scored alone:
    the result is the same)."""
    n = maps.per_scale.shape[0]
    if n <= RESCORE_CHUNK:
        return _rescore(maps, weights)
    parts = [
        _rescore(ComponentMaps(maps.per_scale[i : i + RESCORE_CHUNK], maps.prototype[i : i + RESCORE_CHUNK]), weights)
        for i in range(0, n, RESCORE_CHUNK)
    ]
    return cat_scores(parts)


def cat_scores(parts: list[Scores]) -> Scores:
    """The scores of several batches as one, in order (each field concatenated along the images)."""
    return Scores(*(torch.cat(field) for field in zip(*parts, strict=True)))


def _rescore(maps: ComponentMaps, weights: ScoreWeights) -> Scores:
    recon = gaussian_blur(maps.reconstruction, weights.sigma)
    amap = recon + weights.alpha * maps.prototype
    concen = concentration(amap)
    contra = contrast(amap, weights.dog_sigma, weights.dog_k_sigma)
    peak = amap.flatten(1).amax(1)
    total = peak + weights.beta * concen + weights.gamma * contra
    return Scores(amap, recon.flatten(1).amax(1), maps.prototype.flatten(1).amax(1), peak, concen, contra, total)


def ablation_weights(weights: ScoreWeights) -> dict[str, ScoreWeights]:
    """The paper's Table-4 score ablation: each term added in turn, with ``weights``' own values for them.

    Where ``weights`` switch terms off (max-only), the terms are added with the paper's values instead, so
    the table still shows what each term would do."""
    if weights.alpha == 0 and weights.beta == 0 and weights.gamma == 0:
        weights = ScoreWeights.paper()
    rep = dataclasses.replace
    return {
        "max only": rep(weights, alpha=0.0, beta=0.0, gamma=0.0),
        "+ prototype": rep(weights, beta=0.0, gamma=0.0),
        "+ contrast": rep(weights, beta=0.0),
        "+ concentration": rep(weights, gamma=0.0),
        "all four": weights,
    }
