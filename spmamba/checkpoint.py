"""Checkpoints: safetensors tensors + JSON metadata in the same file. Nothing is ever unpickled.

The frozen encoder is normally not stored (it comes from its own weight
package or cache); its fingerprint is, so a checkpoint is never silently paired
with different encoder weights.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .model import SPMamba, SPMambaConfig
from .scoring import ScoreWeights

FORMAT = "spmamba-studio/1"
META_KEY = "spmamba"
# Files a training run keeps beside its checkpoint (resumable state, best-epoch snapshot): not checkpoints to offer.
TRAIN_STATE_SUFFIX, BEST_EPOCH_SUFFIX = ".train-state.safetensors", ".best-epoch.safetensors"
# Tensors a checkpoint may carry beside the model's: its domain (spmamba.domain) and the training normals'
# map statistics (spmamba.scoring.MapNorm); the model loaders pass over them.
EXTRA_PREFIXES = ("domain.", "map_norm.")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used, with the reason in plain words."""


def _check_is_safetensors(path: Path) -> None:
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    with open(path, "rb") as fh:
        head = fh.read(16)
    size = int.from_bytes(head[:8], "little") if len(head) >= 8 else 0
    if len(head) >= 9 and head[8:9] == b"{" and 0 < size <= path.stat().st_size - 8:
        return
    if head[:2] == b"PK" or head[:1] == b"\x80":
        raise CheckpointError(
            f"{path.name} is a pickle-based PyTorch file; only .safetensors checkpoints are loaded "
            "because unpickling a file can run arbitrary code"
        )
    raise CheckpointError(f"{path.name} is not a safetensors file")


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The checkpoint's JSON metadata, read from the header only (cheap: used to list checkpoints)."""
    path = Path(path)
    meta = read_raw_metadata(path)
    for key in ("format", "model_config", "encoder", "score_weights"):
        if key not in meta:
            raise CheckpointError(f"{path.name}: metadata lacks {key!r}")
    if meta["format"] != FORMAT:
        raise CheckpointError(f"{path.name}: unsupported checkpoint format {meta['format']!r} (expected {FORMAT})")
    return meta


def read_raw_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON metadata of any of this project's safetensors checkpoints (anomaly or segmentation)."""
    path = Path(path)
    _check_is_safetensors(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get(META_KEY)
    except Exception as err:
        raise CheckpointError(f"{path.name} is not a readable safetensors file: {err}") from err
    if raw is None:
        raise CheckpointError(f"{path.name} has no SP-Mamba metadata (key {META_KEY!r} in the safetensors header)")
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path.name}: metadata is not valid JSON ({err})") from err
    if not isinstance(meta, dict) or "format" not in meta:
        raise CheckpointError(f"{path.name}: metadata lacks 'format'")
    return meta


def read_tensors(path: Path, expected: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The tensors of ``expected``'s keys, refusing a file whose keys or shapes differ from the model's."""
    with safe_open(str(path), framework="pt") as f:
        keys = {k for k in f.keys() if not k.startswith(EXTRA_PREFIXES)}  # read by their own modules
        missing = sorted(set(expected) - keys)
        unexpected = sorted(keys - set(expected))
        if missing or unexpected:
            parts = []
            if missing:
                parts.append(f"missing {len(missing)} tensors, e.g. {missing[0]}")
            if unexpected:
                parts.append(f"{len(unexpected)} unexpected tensors, e.g. {unexpected[0]}")
            raise CheckpointError(f"{path.name} does not match its model config: " + "; ".join(parts))
        state = {}
        for k in expected:
            shape = tuple(f.get_slice(k).get_shape())
            if shape != tuple(expected[k].shape):
                raise CheckpointError(
                    f"{path.name}: tensor {k} has shape {shape}, the model expects {tuple(expected[k].shape)}"
                )
            state[k] = f.get_tensor(k)
    return state


def save_checkpoint(
    path: str | os.PathLike,
    model: SPMamba,
    score_weights: ScoreWeights | None = None,
    *,
    calibration: dict | None = None,
    training: dict | None = None,
    metrics: dict | None = None,
    summary: str = "",
    include_encoder: bool = False,
) -> dict[str, Any]:
    """Write ``model``'s trainable tensors (and optionally the encoder's) with JSON metadata."""
    state = {
        k: v.detach().cpu().contiguous()
        for k, v in model.state_dict().items()
        if include_encoder or not k.startswith("encoder.")
    }
    meta = {
        "format": FORMAT,
        "summary": summary,
        "model_config": model.config.to_dict(),
        "encoder": {
            "name": model.config.encoder,
            "weights_source": model.encoder.weights_source,
            "fingerprint": model.encoder.fingerprint(),
            "included": include_encoder,
        },
        "score_weights": (score_weights or ScoreWeights()).to_dict(),
        "calibration": calibration,
        "training": training or {},
        "metrics": metrics or {},
    }
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path), metadata={META_KEY: json.dumps(meta)})
    return meta


def add_to_checkpoint(path: str | os.PathLike, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Store extra tensors (replacing those of the same prefix) and metadata fields in an existing checkpoint of
    either family, keeping every other tensor and field as it was."""
    path = Path(path)
    full = read_raw_metadata(path)
    prefixes = tuple({k.split(".", 1)[0] + "." for k in tensors})
    with safe_open(str(path), framework="pt") as f:
        kept = {k: f.get_tensor(k) for k in f.keys() if not k.startswith(prefixes)}
    full.update(meta)
    save_file(
        {**kept, **{k: v.contiguous() for k, v in tensors.items()}}, str(path), metadata={META_KEY: json.dumps(full)}
    )


def load_checkpoint(
    path: str | os.PathLike, device: str | torch.device = "cpu", encoder_weights: str | None = "imagenet"
) -> tuple[SPMamba, dict[str, Any]]:
    """Build the model the metadata describes and load its tensors, checking every key and shape."""
    path = Path(path)
    meta = read_metadata(path)
    try:
        config = SPMambaConfig.from_dict(meta["model_config"])
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{path.name}: bad model config: {err}") from err
    included = bool(meta["encoder"].get("included"))
    model = SPMamba(config, encoder_weights=None if included else encoder_weights)
    expected = {k: v for k, v in model.state_dict().items() if included or not k.startswith("encoder.")}
    model.load_state_dict(read_tensors(path, expected), strict=False)
    if not included and encoder_weights is not None:
        want, got = meta["encoder"].get("fingerprint"), model.encoder.fingerprint()
        if want and want != got:
            raise CheckpointError(
                f"{path.name} was trained on encoder weights {want} ({meta['encoder'].get('weights_source')}), "
                f"but the installed {config.encoder} weights are {got}"
            )
    return model.to(device).eval(), meta
