"""Shared fixtures: the shipped checkpoint, a tiny model configuration, synthetic images, the app served once
per session."""

import numpy as np
import pytest
import torch
from PIL import Image

from spmamba.model import SPMamba, SPMambaConfig
from spmamba.zoo import WEIGHTS_DIR

SHIPPED = WEIGHTS_DIR / "zhanglab128-clahe-efficientnet_lite0.safetensors"  # the default chest X-ray checkpoint
needs_checkpoint = pytest.mark.skipif(not SHIPPED.is_file(), reason=f"shipped checkpoint {SHIPPED.name} not present")


def tiny_config(**kw) -> SPMambaConfig:
    """A 128x128 model small enough to run in well under a second."""
    base = dict(
        encoder="efficientnet_lite0",
        image_size=128,
        bottleneck_dim=64,
        depths=(1, 1, 2, 1),
        d_state=4,
        prototype_banks=3,
    )
    base.update(kw)
    return SPMambaConfig(**base)


def write_synthetic(path, rng, abnormal):
    """A 64x64 textured grey PNG; an abnormal one gets a bright disc, whose mask is returned."""
    yy, xx = np.mgrid[:64, :64]
    img = 0.4 + 0.2 * np.sin(xx / 9 + rng.random() * 6) * np.cos(yy / 11) + 0.03 * rng.standard_normal((64, 64))
    mask = np.zeros((64, 64), bool)
    if abnormal:
        cy, cx = rng.integers(16, 48, 2)
        mask = (yy - cy) ** 2 + (xx - cx) ** 2 < 64
        img[mask] = 1.0
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8)).save(path)
    return mask


@pytest.fixture(scope="session")
def tiny_model() -> SPMamba:
    torch.manual_seed(0)
    return SPMamba(tiny_config(), encoder_weights="imagenet").eval()


def serve(demo, attempts: int = 3, **options) -> str:
    """Launch ``demo`` on a free local port and return its URL. Gradio's start-up probe gives up after a single
    3-second HEAD timeout, which a machine busy with a training run can exceed; retrying the launch retries only
    that probe, not anything a test asserts."""
    options = {"prevent_thread_lock": True, "server_name": "127.0.0.1", "quiet": True, **options}
    for _ in range(attempts - 1):
        try:
            demo.queue().launch(**options)
            return demo.local_url
        except ValueError as e:
            if "localhost is not accessible" not in str(e):
                raise
            demo.close()
    demo.queue().launch(**options)
    return demo.local_url


@pytest.fixture(scope="session")
def app_url(tmp_path_factory):
    """The demo app served on a free local port for the whole session, examples cached in a temp folder."""
    from spmamba.demo.app import PAGE_HEAD, allowed_paths, build_demo
    from spmamba.demo.canvas import OVERLAY_CSS
    from spmamba.demo.examples import build_examples, build_seg_examples
    from spmamba.zoo import list_seg_checkpoints

    cache = tmp_path_factory.mktemp("examples")
    examples, seg_examples = build_examples(cache=cache), build_seg_examples(list_seg_checkpoints(), cache)
    demo = build_demo(examples, seg_examples=seg_examples)
    yield serve(demo, allowed_paths=allowed_paths(examples + seg_examples), head=PAGE_HEAD, css=OVERLAY_CSS)
    demo.close()
