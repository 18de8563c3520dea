"""Segmentation checkpoints: safetensors tensors + JSON metadata, the anomaly checkpoints' discipline."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from ..checkpoint import META_KEY, CheckpointError, read_raw_metadata, read_tensors
from .mamba_mis import MambaMIS, MambaMISConfig
from .unet import UNet, UNetConfig

SEG_FORMAT = "spmamba-seg/1"
MODELS = {"mamba-mis": (MambaMIS, MambaMISConfig), "unet": (UNet, UNetConfig)}


def parse_config(kind: str, config: dict) -> MambaMISConfig | UNetConfig:
    """A stored config as the network's config object; fields it lacks (written before they existed) take
    their defaults, which are what those networks were."""
    if kind not in MODELS:
        raise CheckpointError(f"unknown segmentation model {kind!r}; expected one of {', '.join(MODELS)}")
    cfg_cls = MODELS[kind][1]
    names = {f.name for f in dataclasses.fields(cfg_cls)}
    try:
        return cfg_cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in config.items() if k in names})
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"bad {kind} config: {err}") from err


def build_model(kind: str, config: dict) -> torch.nn.Module:
    return MODELS[kind][0](parse_config(kind, config))


def config_dict(model: torch.nn.Module) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(model.config).items()}


def model_kind(model: torch.nn.Module) -> str:
    return next(kind for kind, (cls, _) in MODELS.items() if isinstance(model, cls))


def read_seg_metadata(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    meta = read_raw_metadata(path)
    if meta.get("format") != SEG_FORMAT:
        raise CheckpointError(f"{path.name} is not a segmentation checkpoint (format {meta.get('format')!r})")
    return meta


def save_seg_checkpoint(path: str | os.PathLike, model: torch.nn.Module, **meta: Any) -> dict[str, Any]:
    """Write ``model``'s tensors with its kind, config and ``meta`` (threshold, training, metrics, summary)."""
    full = {"format": SEG_FORMAT, "model": model_kind(model), "config": config_dict(model), **meta}
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path), metadata={META_KEY: json.dumps(full)})
    return full


def load_seg_checkpoint(path: str | os.PathLike, device: str = "cpu") -> tuple[torch.nn.Module, dict[str, Any]]:
    path = Path(path)
    meta = read_seg_metadata(path)
    model = build_model(meta["model"], meta["config"])
    model.load_state_dict(read_tensors(path, model.state_dict()))
    return model.to(device).eval(), meta
