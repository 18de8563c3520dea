"""The checkpoints in a weights folder and the choice among them by an image's modality.

One rule for the page, the API and ``spmamba predict``: keep the chosen checkpoint when it was
trained on the image's modality, else take the first one that was.
"""

from __future__ import annotations

import functools
from pathlib import Path

from .checkpoint import BEST_EPOCH_SUFFIX, TRAIN_STATE_SUFFIX, CheckpointError, read_metadata, read_raw_metadata
from .hub import CHECKOUT_WEIGHTS, weights_dir

WEIGHTS_DIR = CHECKOUT_WEIGHTS  # the source checkout's weights (the tests' shipped checkpoints live there)
LABEL_SEP = " — "  # a dropdown label: the file's stem, this, its card's one-line summary
DEFAULT_CHECKPOINT = "zhanglab128-clahe-efficientnet_lite0"  # first in every list: the page's and the API's default
# each modality's default, in this order right after it: the first checkpoint trained on an image's modality
# is the one ``preselect`` switches to (rule 4 in docs/experiments-shift.md chooses them)
MODALITY_DEFAULTS = ("lgg128-percentile-efficientnet_lite0",)  # brain MRI (since 2026-12-07)
# what a DICOM Modality code means, for notes a reader without the DICOM standard at hand can follow
MODALITY_NAMES = {"CR": "X-ray", "DX": "X-ray", "PT": "PET", "US": "ultrasound", "XC": "colour photograph"}


def _labelled(folder: Path | None, read) -> dict[str, str]:
    """{"<stem> — <summary>": path} for every checkpoint in ``folder`` (default: ``hub.weights_dir``'s search
    order) that ``read`` accepts (training states and best-epoch snapshots are not offered)."""
    folder = weights_dir() if folder is None else folder
    if folder is None:
        return {}
    out = {}
    for path in sorted(Path(folder).glob("*.safetensors")):
        if path.name.endswith((TRAIN_STATE_SUFFIX, BEST_EPOCH_SUFFIX)):
            continue
        try:
            summary = read(path).get("summary") or path.stem
        except CheckpointError:
            continue
        out[f"{path.stem}{LABEL_SEP}{summary}"] = str(path)
    return out


def list_checkpoints(folder: Path | None = None) -> dict[str, str]:
    """{label shown in the dropdown: path} for every readable anomaly checkpoint, with its one-line summary;
    the default checkpoint first, then each modality's default, then the rest by file name."""
    order = (DEFAULT_CHECKPOINT, *MODALITY_DEFAULTS)
    out = _labelled(folder, read_metadata)
    rank = {stem: i for i, stem in enumerate(order)}
    return dict(sorted(out.items(), key=lambda kv: rank.get(Path(kv[1]).stem, len(order))))


def list_seg_checkpoints(folder: Path | None = None) -> dict[str, str]:
    """{label: path} for every readable segmentation (Mamba-MIS or U-Net) checkpoint in ``folder``."""
    from .seg.checkpoint import read_seg_metadata

    return _labelled(folder, read_seg_metadata)


@functools.lru_cache(maxsize=16)
def modalities(path: str) -> tuple[str, ...]:
    """DICOM Modality codes a checkpoint (anomaly or segmentation) was trained on (empty when it does not say)."""
    return tuple(m.upper() for m in read_raw_metadata(path).get("training", {}).get("modalities") or ())


def preselect(
    image: str | tuple[str, ...] | None, checkpoints: dict[str, str], current: str | None
) -> tuple[str | None, str]:
    """The checkpoint to use for an image of these modalities, and a note when none was trained on them.

    Keeps ``current`` when it fits; otherwise the first checkpoint whose card lists the most likely of
    them.
    """
    wanted = (image,) if isinstance(image, str) else tuple(image or ())
    wanted = tuple(m.upper() for m in wanted)
    if not wanted or not checkpoints:
        return current, ""
    if current in checkpoints and set(wanted) & set(modalities(checkpoints[current])):
        return current, ""
    shown = "/".join(wanted)
    for modality in wanted:  # in the image's order of likelihood: a NIfTI volume is MR before CT
        for label, path in checkpoints.items():
            if modality in modalities(path):
                name = f" ({MODALITY_NAMES[modality]})" if modality in MODALITY_NAMES else ""
                return label, f"Switched to a checkpoint trained on {modality}{name} images."
    trained = modalities(checkpoints[current]) if current in checkpoints else ()
    on = "/".join(trained) if trained else "other"
    return current, (
        f"No checkpoint here was trained on {shown} images; this one was trained on {on} images, "
        "so its score for this image is not meaningful."
    )
