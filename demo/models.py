"""The checkpoints the demo offers, and a small cache of loaded models."""
from __future__ import annotations

import functools
from pathlib import Path

import torch

from spmamba.checkpoint import CheckpointError, load_checkpoint, read_metadata
from spmamba.model import SPMamba

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"


def list_checkpoints(folder: Path = WEIGHTS_DIR) -> dict[str, str]:
    """{label shown in the dropdown: path} for every readable checkpoint, with its one-line summary."""
    out = {}
    for path in sorted(folder.glob("*.safetensors")):
        if path.name.endswith((".train-state.safetensors", ".best-epoch.safetensors")):
            continue
        try:
            summary = read_metadata(path).get("summary") or path.stem
        except CheckpointError:
            continue
        out[f"{path.stem} — {summary}"] = str(path)
    return out


@functools.lru_cache(maxsize=4)
def get_model(path: str) -> tuple[SPMamba, dict]:
    """Load once per process; models are read-only at inference, so sessions can share them."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return load_checkpoint(path, device=device)
