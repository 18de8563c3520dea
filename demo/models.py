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


@functools.lru_cache(maxsize=16)
def modalities(path: str) -> tuple[str, ...]:
    """DICOM Modality codes a checkpoint was trained on (empty when its card does not say)."""
    return tuple(read_metadata(path).get("training", {}).get("modalities") or ())


def image_modalities(meta: dict) -> tuple[str, ...]:
    """The modalities an image may be: its DICOM Modality, or MR/CT/PT for a NIfTI volume; () when unknown."""
    if meta.get("Modality"):
        return (str(meta["Modality"]).upper(),)
    return ("MR", "CT", "PT") if meta.get("format") == "NIfTI" else ()


def preselect(image: str | tuple[str, ...] | None, checkpoints: dict[str, str],
              current: str | None) -> tuple[str | None, str]:
    """The checkpoint to use for an image of these modalities, and a note when none was trained on them.

    Keeps ``current`` when it fits; otherwise the first checkpoint whose card lists one of them.
    """
    wanted = (image,) if isinstance(image, str) else tuple(image or ())
    wanted = tuple(m.upper() for m in wanted)
    if not wanted or not checkpoints:
        return current, ""
    if current in checkpoints and set(wanted) & set(modalities(checkpoints[current])):
        return current, ""
    shown = "/".join(wanted)
    for label, path in checkpoints.items():
        if set(wanted) & set(modalities(path)):
            return label, f"Switched to a checkpoint trained on {shown} images."
    trained = modalities(checkpoints[current]) if current in checkpoints else ()
    on = "/".join(trained) if trained else "other"
    return current, (f"No checkpoint here was trained on {shown} images; this one was trained on {on} images, "
                     "so its score for this image is not meaningful.")


@functools.lru_cache(maxsize=4)
def get_model(path: str) -> tuple[SPMamba, dict]:
    """Load once per process; models are read-only at inference, so sessions can share them."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return load_checkpoint(path, device=device)
