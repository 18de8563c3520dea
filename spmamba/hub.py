"""Where checkpoints come from: a local path, a Hugging Face Hub reference, or the weights folder's search order.

A Hub reference names one file at one revision, ``hf://owner/repo/path/file.safetensors@revision``; it is
fetched through ``huggingface_hub`` into its cache (offline, with ``HF_HUB_OFFLINE=1``, from the cache alone).
The revision is required, so the same reference always loads the same bytes, and only safetensors files are
accepted: nothing downloaded is ever unpickled.

The weights folder (the checkpoints the page offers and ``spmamba predict`` routes among) is the first of:
``$SPMAMBA_WEIGHTS``; the source checkout's ``weights/``; ``$SPMAMBA_HUB`` (``owner/repo@revision``), a Hub model
repository's snapshot of its ``*.safetensors`` and cards, from the cache or downloaded once.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

CHECKOUT_WEIGHTS = Path(__file__).resolve().parents[1] / "weights"  # present in a source checkout only
HUB_PREFIX = "hf://"
_REF = re.compile(r"^hf://(?P<repo>[\w.-]+/[\w.-]+)/(?P<file>[^@]+)@(?P<revision>[\w./-]+)$")
_REPO = re.compile(r"^(?P<repo>[\w.-]+/[\w.-]+)@(?P<revision>[\w./-]+)$")
NO_WEIGHTS = (
    "no checkpoints found: set SPMAMBA_WEIGHTS to a folder of checkpoints, or SPMAMBA_HUB to a Hub model "
    "repository (owner/repo@revision), or pass --checkpoint PATH or hf://owner/repo/file.safetensors@revision"
)


def is_hub_reference(ref: str | os.PathLike) -> bool:
    return str(ref).startswith(HUB_PREFIX)


def resolve_checkpoint(ref: str | os.PathLike) -> str:
    """A local file path for ``ref``: a path as it is, a Hub reference through the Hub cache."""
    from .checkpoint import CheckpointError  # here, not above: the CLI imports this module before torch

    ref = str(ref)
    if not is_hub_reference(ref):
        return ref
    m = _REF.match(ref)
    if m is None:
        raise CheckpointError(
            f"{ref!r} is not a Hub reference of the form hf://owner/repo/file.safetensors@revision "
            "(the revision, a commit or tag, keeps the checkpoint the same from run to run)"
        )
    if not m["file"].endswith(".safetensors"):
        raise CheckpointError(f"{ref!r}: only .safetensors checkpoints are loaded")
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, HFValidationError, LocalEntryNotFoundError

    try:
        return hf_hub_download(m["repo"], m["file"], revision=m["revision"])
    except LocalEntryNotFoundError as err:
        raise CheckpointError(f"{ref!r} is not in the Hugging Face cache and cannot be downloaded now") from err
    except (EntryNotFoundError, HFValidationError, OSError) as err:  # the Hub's HTTP errors are OSErrors
        raise CheckpointError(
            f"{ref!r} could not be fetched from the Hub: no such repository, file or revision, or no connection"
        ) from err


def weights_dir() -> Path | None:
    """The weights folder by the search order above; None when there is none."""
    from .checkpoint import CheckpointError

    env = os.environ.get("SPMAMBA_WEIGHTS")
    if env:
        if not Path(env).is_dir():
            raise CheckpointError(f"SPMAMBA_WEIGHTS={env!r} is not a folder")
        return Path(env)
    if CHECKOUT_WEIGHTS.is_dir():
        return CHECKOUT_WEIGHTS
    hub = os.environ.get("SPMAMBA_HUB")
    if hub:
        m = _REPO.match(hub)
        if m is None:
            raise CheckpointError(f"SPMAMBA_HUB={hub!r} is not of the form owner/repo@revision")
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(m["repo"], revision=m["revision"], allow_patterns=["*.safetensors", "*.md"]))
    return None
