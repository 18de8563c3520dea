import pytest
import torch

from spmamba.model import SPMamba, SPMambaConfig


def tiny_config(**kw) -> SPMambaConfig:
    """A 128x128 model small enough to run in well under a second."""
    base = dict(encoder="efficientnet_lite0", image_size=128, bottleneck_dim=64, depths=(1, 1, 2, 1),
                d_state=4, prototype_banks=3)
    base.update(kw)
    return SPMambaConfig(**base)


@pytest.fixture(scope="session")
def tiny_model() -> SPMamba:
    torch.manual_seed(0)
    return SPMamba(tiny_config(), encoder_weights="imagenet").eval()
