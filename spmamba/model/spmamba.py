"""SP-Mamba: frozen encoder -> Half-FPN -> prototypes + SPSS decoder reconstructing the features."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..intensity import check_intensity
from ..scoring import upsample_prototype_distance
from .bottleneck import HalfFPN
from .decoder import SPSSDecoder
from .encoders import Encoder
from .prototype import MedicalPrototype


@dataclass
class SPMambaConfig:
    """Architecture and loss hyper-parameters; ``paper()`` is the published configuration."""

    encoder: str = "resnet34"
    image_size: int = 256
    bottleneck_dim: int = 512
    depths: tuple[int, ...] = (3, 4, 6, 3)
    d_state: int = 16
    expand: int = 2
    scan_order: str = "circular_hilbert"
    num_directions: int = 8
    prototype_banks: int = 10  # K: 10 in the paper, 5 in the reference code
    prototype_window: int = 3
    prototype_init_std: float = 1.0  # reference code: banks drawn from N(0, 1)
    drop_path: float = 0.2  # decoder stochastic depth, reversed linspace up to this, one rate per SPSS block
    loss_mse_weight: float = 5.0  # the reference config's L2 loss factor (lam)
    loss_epsilon: float = 25.0  # weight of the mean prototype distance
    intensity: str = "raw"  # per-image input rule (spmamba.intensity), applied by every path that feeds the model

    def __post_init__(self):
        self.depths = tuple(self.depths)
        check_intensity(self.intensity)
        if self.image_size % 32 or (self.image_size // 32) & (self.image_size // 32 - 1):
            raise ValueError(f"image_size must be 32 x a power of two (e.g. 128, 256), got {self.image_size}")
        if self.image_size // 32 < 4 and self.scan_order == "circular_hilbert":
            raise ValueError("the Circular-Hilbert scan needs a bottleneck of at least 4x4 (image_size >= 128)")
        if len(self.depths) != 4:
            raise ValueError(f"the decoder has 4 stages, got depths {self.depths}")

    @property
    def bottleneck_size(self) -> int:
        return self.image_size // 32

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "SPMambaConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown model config keys: {sorted(unknown)}")
        return cls(**d)

    @classmethod
    def paper(cls) -> "SPMambaConfig":
        """ResNet34, K=10, p=3, depths [3,4,6,3], d_state 16, C-H scan, 8 directions, 256x256; the
        reference code's training details (drop-path, loss factors, prototype init) where the paper is silent."""
        return cls()

    @classmethod
    def preset(cls, name: str) -> "SPMambaConfig":
        if name not in PRESETS:
            raise ValueError(f"unknown config {name!r}; choose one of {', '.join(PRESETS)}")
        return cls(**PRESETS[name])


PRESETS: dict[str, dict] = {
    "paper": {},
    # The authors' code where it differs from the paper's text: K = 5 prototype banks.
    "reference": {"prototype_banks": 5},
    # The paper's architecture on the encoder every machine can install offline.
    "paper-lite0": {"encoder": "efficientnet_lite0"},
    # Trainable on a 2-core CPU in under an hour and a half at the paper's 256x256 input: same method (C-H
    # scan x 8 directions, prototypes with the reference code's K = 5, SPSS blocks, four-term score),
    # half-width decoder with 6 SPSS layers (about 2 training images/s with the feature cache).
    "cpu-lite0-256": {
        "encoder": "efficientnet_lite0",
        "bottleneck_dim": 256,
        "depths": (1, 2, 2, 1),
        "prototype_banks": 5,
    },
    # The same at 128x128: six times faster, for quick experiments and tests.
    "cpu-lite0": {
        "encoder": "efficientnet_lite0",
        "image_size": 128,
        "bottleneck_dim": 256,
        "depths": (1, 2, 2, 1),
        "prototype_banks": 5,
    },
}


class SPMambaOutput(NamedTuple):
    features: list[torch.Tensor]  # encoder features, fine to coarse
    reconstructions: list[torch.Tensor]  # decoder outputs matching ``features``
    prototype_distance: torch.Tensor  # (B, h, w) at the bottleneck resolution


class SPMamba(nn.Module):
    def __init__(self, config: SPMambaConfig | None = None, encoder_weights: str | None = "imagenet"):
        super().__init__()
        self.config = cfg = config or SPMambaConfig.paper()
        self.encoder = Encoder(cfg.encoder, encoder_weights)
        self.bottleneck = HalfFPN(self.encoder.channels, cfg.bottleneck_dim)
        # K = 0 switches the module off (the paper's ablation): its distance map is then zero
        self.prototype = None
        if cfg.prototype_banks:
            sizes = (cfg.bottleneck_dim, cfg.bottleneck_size, cfg.prototype_banks, cfg.prototype_window)
            self.prototype = MedicalPrototype(*sizes, cfg.prototype_init_std)
        self.decoder = SPSSDecoder(
            cfg.bottleneck_dim,
            cfg.depths,
            cfg.drop_path,
            d_state=cfg.d_state,
            expand=cfg.expand,
            scan_order=cfg.scan_order,
            num_directions=cfg.num_directions,
        )
        # 1x1 heads only where the decoder's widths differ from the encoder's (never for the paper's ResNet34).
        self.heads = nn.ModuleList(
            nn.Identity() if d == c else nn.Conv2d(d, c, 1)
            for d, c in zip(reversed(self.decoder.out_dims), self.encoder.channels, strict=True)
        )

    def trainable_parameters(self):
        return (p for n, p in self.named_parameters() if not n.startswith("encoder."))

    def parameter_groups(self, weight_decay: float) -> list[dict]:
        """AdamW groups as the reference code builds them: biases and 1-D parameters (norms, D) get no
        weight decay; everything else trainable does."""
        decay, no_decay = [], []
        for name, p in self.named_parameters():
            if name.startswith("encoder."):
                continue
            (no_decay if p.ndim == 1 or name.endswith(".bias") else decay).append(p)
        return [{"params": no_decay, "weight_decay": 0.0}, {"params": decay, "weight_decay": weight_decay}]

    def forward_features(self, feats: list[torch.Tensor]) -> SPMambaOutput:
        """Everything after the frozen encoder: lets training reuse cached encoder features."""
        fused = self.bottleneck(feats)
        if self.prototype is None:
            dist = fused.new_zeros(fused.shape[0], *fused.shape[2:])
        else:
            dist = self.prototype(fused)
        recs = [head(r) for head, r in zip(self.heads, self.decoder(fused), strict=True)]
        return SPMambaOutput(list(feats), recs, dist)

    def forward(self, images: torch.Tensor) -> SPMambaOutput:
        """(B, 1 or 3, S, S) images in [0, 1] -> features, reconstructions, prototype distance."""
        if images.shape[-2:] != (self.config.image_size,) * 2:
            raise ValueError(
                f"model expects {self.config.image_size}x{self.config.image_size} input, got {tuple(images.shape[-2:])}"
            )
        return self.forward_features(self.encoder(images))

    def loss(self, out: SPMambaOutput) -> torch.Tensor:
        """5 x (sum of per-scale MSE) + 25 x mean upsampled prototype distance (the reference code's loss)."""
        mse = sum(F.mse_loss(r, f) for f, r in zip(out.features, out.reconstructions, strict=True))
        d = upsample_prototype_distance(out.prototype_distance, self.config.image_size)
        return self.config.loss_mse_weight * mse + self.config.loss_epsilon * d.mean()
