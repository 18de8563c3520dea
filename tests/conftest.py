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


@pytest.fixture(scope="session")
def app_url(tmp_path_factory):
    """The demo app served on a free local port for the whole session, examples cached in a temp folder."""
    from demo.app import allowed_paths, build_demo
    from demo.examples import build_examples

    examples = build_examples(cache=tmp_path_factory.mktemp("examples"))
    demo = build_demo(examples)
    demo.queue().launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=None, quiet=True,
                        allowed_paths=allowed_paths(examples))
    yield demo.local_url
    demo.close()
