"""Checkpoints from a Hugging Face Hub reference, resolved offline from a cache folder built here, and the weights
folder's search order."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from spmamba.checkpoint import CheckpointError
from spmamba.hub import CHECKOUT_WEIGHTS, resolve_checkpoint, weights_dir
from spmamba.zoo import list_checkpoints
from tests.conftest import SHIPPED

REVISION = "0123456789abcdef0123456789abcdef01234567"
SMALL = CHECKOUT_WEIGHTS / "zhanglab128-efficientnet_lite0.safetensors"


def _cache(root: Path, files: dict[str, Path]) -> Path:
    """A Hub cache as huggingface_hub lays it out: models--owner--repo/snapshots/<commit>/<file>."""
    snap = root / "models--acme--spmamba-weights" / "snapshots" / REVISION
    for name, source in files.items():
        (snap / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, snap / name)
    return root


@pytest.fixture
def offline_cache(tmp_path, monkeypatch):
    from huggingface_hub import constants

    root = tmp_path / "hub"
    root.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(root))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return root


@pytest.mark.skipif(not SMALL.is_file(), reason="shipped checkpoint not present")
def test_a_hub_reference_resolves_from_the_cache_offline(offline_cache):
    _cache(offline_cache, {"anomaly/chest.safetensors": SMALL})
    path = resolve_checkpoint(f"hf://acme/spmamba-weights/anomaly/chest.safetensors@{REVISION}")
    assert Path(path).is_file() and Path(path).read_bytes() == SMALL.read_bytes()
    assert resolve_checkpoint(str(SMALL)) == str(SMALL)  # a local path is a local path


@pytest.mark.parametrize(
    "ref, reason",
    [
        ("hf://acme/spmamba-weights/chest.safetensors", "revision"),  # unpinned: refused before any lookup
        (f"hf://acme/spmamba-weights/chest.pt@{REVISION}", "only .safetensors"),  # a pickle is never fetched
        (f"hf://acme/spmamba-weights/missing.safetensors@{REVISION}", "not in the Hugging Face cache"),
    ],
)
def test_a_bad_hub_reference_is_refused_in_words(offline_cache, ref, reason):
    with pytest.raises(CheckpointError, match=reason):
        resolve_checkpoint(ref)


@pytest.mark.skipif(not SMALL.is_file(), reason="shipped checkpoint not present")
def test_the_weights_folder_search_order(tmp_path, monkeypatch, offline_cache):
    mine = tmp_path / "mine"
    mine.mkdir()
    shutil.copy(SMALL, mine / SMALL.name)
    monkeypatch.setenv("SPMAMBA_WEIGHTS", str(mine))
    assert weights_dir() == mine and [Path(p).name for p in list_checkpoints().values()] == [SMALL.name]
    monkeypatch.setenv("SPMAMBA_WEIGHTS", str(tmp_path / "nowhere"))
    with pytest.raises(CheckpointError, match="is not a folder"):
        weights_dir()
    monkeypatch.delenv("SPMAMBA_WEIGHTS")
    assert weights_dir() == CHECKOUT_WEIGHTS  # a source checkout
    monkeypatch.setattr("spmamba.hub.CHECKOUT_WEIGHTS", tmp_path / "not-a-checkout")
    assert weights_dir() is None and list_checkpoints() == {}  # an installed wheel with nothing configured
    _cache(offline_cache, {SMALL.name: SMALL})
    monkeypatch.setenv("SPMAMBA_HUB", f"acme/spmamba-weights@{REVISION}")
    assert [Path(p).name for p in list_checkpoints().values()] == [SMALL.name]  # the Hub snapshot, from the cache


@pytest.mark.skipif(not SHIPPED.is_file(), reason="shipped checkpoint not present")
def test_predict_takes_a_hub_reference_from_another_folder(tmp_path):
    cache = _cache(tmp_path / "hub", {"chest.safetensors": SMALL})
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(60, 200, (96, 96), dtype=np.uint8)).save(tmp_path / "film.png")
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}
    ref = f"hf://acme/spmamba-weights/chest.safetensors@{REVISION}"
    done = subprocess.run(
        [sys.executable, "-m", "spmamba.cli", "predict", "film.png", "--checkpoint", ref, "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (report,) = json.loads(done.stdout)
    assert report["checkpoint"] == "chest" and np.isfinite(report["scores"]["total"])
    bad = subprocess.run(
        [sys.executable, "-m", "spmamba.cli", "predict", "film.png", "--checkpoint", ref.replace("chest", "lung")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert bad.returncode == 2 and "not in the Hugging Face cache" in bad.stderr and "Traceback" not in bad.stderr
