import numpy as np
import pytest
import skimage.data
import timm
import torch
import torch.nn.functional as F

from spmamba.model import ENCODERS, Encoder, SPMamba, SPMambaConfig
from spmamba.model.decoder import group_sizes
from spmamba.model.encoders import map_in_order
from spmamba.model.prototype import MedicalPrototype, prototype_distance_loop
from spmamba.model.ss2d import SS2D
from spmamba.profiling import forward_macs
from spmamba.ssm import reference_backend
from tests.conftest import tiny_config


@pytest.mark.parametrize("name, expected", [("chelsea", 285), ("coffee", 967)])  # Egyptian cat, espresso
def test_lite0_package_weights_really_load(name, expected):
    net = timm.create_model("efficientnet_lite0").eval()
    net.load_state_dict(map_in_order(ENCODERS["efficientnet_lite0"].imagenet_weights(), net.state_dict()))
    img = torch.from_numpy(getattr(skimage.data, name)()).permute(2, 0, 1).float()[None] / 255
    img = F.interpolate(img, size=(224, 224), mode="bilinear", antialias=True)
    with torch.no_grad():
        logits = net((img - 0.5) / 0.5)
    assert logits.argmax().item() == expected


def test_map_in_order_checks_shapes():
    dst = {"a.weight": torch.zeros(3, 2), "b.weight": torch.zeros(4)}
    with pytest.raises(ValueError, match="does not fit"):
        map_in_order({"x": torch.zeros(2, 3), "y": torch.zeros(4)}, dst)
    with pytest.raises(ValueError, match="has 1 tensors"):
        map_in_order({"x": torch.zeros(3, 2)}, dst)


def test_encoder_is_frozen_and_stays_in_eval():
    enc = Encoder("efficientnet_lite0", weights=None)
    enc.train()
    assert not enc.training and not any(m.training for m in enc.modules())
    assert not any(p.requires_grad for p in enc.parameters())
    feats = enc(torch.rand(1, 1, 128, 128))  # grey input expands to 3 channels
    assert [f.shape[1] for f in feats] == list(enc.channels)
    assert [f.shape[-1] for f in feats] == [32, 16, 8]


def test_unknown_encoder():
    with pytest.raises(ValueError, match="unknown encoder"):
        Encoder("vgg11", weights=None)


def test_paper_config_matches_the_paper():
    cfg = SPMambaConfig.paper()
    assert (cfg.encoder, cfg.prototype_banks, cfg.prototype_window, cfg.depths, cfg.d_state) == (
        "resnet34",
        10,
        3,
        (3, 4, 6, 3),
        16,
    )
    assert (cfg.scan_order, cfg.num_directions, cfg.image_size) == ("circular_hilbert", 8, 256)
    model = SPMamba(cfg, encoder_weights=None)
    total = sum(p.numel() for p in model.parameters())
    assert abs(total / 25.8e6 - 1) < 0.02  # the paper's 25.8 M
    assert all(isinstance(h, torch.nn.Identity) for h in model.heads)
    with torch.no_grad():
        out = model.eval()(torch.rand(1, 3, 256, 256))
    assert [tuple(r.shape) for r in out.reconstructions] == [(1, 64, 64, 64), (1, 128, 32, 32), (1, 256, 16, 16)]
    assert out.prototype_distance.shape == (1, 8, 8)


def test_the_multiply_add_count_does_not_depend_on_where_the_step_projection_runs():
    """On the CPU kernels SS2D's dt projection runs inside the scan, where torch's counter cannot see it; the
    count (and so every floor in BENCHMARKS.md) must equal the reference backend's, where it is an einsum."""
    torch.manual_seed(0)
    # every dt rank >= 2: torch runs a rank-1 einsum as a broadcast multiply, which its counter does not count
    model = SPMamba(tiny_config(bottleneck_dim=256), encoder_weights=None)
    assert min(m.dt_rank for m in model.modules() if isinstance(m, SS2D)) >= 2
    x = torch.rand(1, 3, 128, 128)
    inside = forward_macs(model, x)
    with reference_backend():
        outside = forward_macs(model, x)
    assert sum(inside) == sum(outside)
    assert inside[1] > outside[1]  # the projection counted with the scans, not with torch's dense layers


def test_group_sizes():
    assert [group_sizes(d) for d in (3, 4, 6, 2, 5)] == [[3], [2, 2], [3, 3], [2], [2, 2, 1]]


def test_training_step_updates_only_trainable_parts():
    torch.manual_seed(0)
    model = SPMamba(tiny_config(num_directions=16), encoder_weights=None)
    model.train()
    assert not model.encoder.training
    out = model(torch.rand(2, 3, 128, 128))
    loss = model.loss(out)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is None for p in model.encoder.parameters())
    trainable = list(model.named_parameters())
    with_grad = [
        n for n, p in trainable if not n.startswith("encoder.") and p.grad is not None and p.grad.abs().sum() > 0
    ]
    assert any("A_log" in n for n in with_grad) and any("prototypes" in n for n in with_grad)
    assert any("x_proj_weight" in n for n in with_grad) and any("dt_proj_bias" in n for n in with_grad)


def test_config_validation_and_round_trip():
    cfg = tiny_config()
    assert SPMambaConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="image_size"):
        SPMambaConfig(image_size=200)
    with pytest.raises(ValueError, match="unknown model config"):
        SPMambaConfig.from_dict({"colour": "red"})
    with pytest.raises(ValueError, match="unknown config"):
        SPMambaConfig.preset("huge")


def test_wrong_input_size_is_named(tiny_model):
    with pytest.raises(ValueError, match="expects 128x128"):
        tiny_model(torch.rand(1, 3, 64, 64))


@pytest.mark.parametrize("window", [1, 3, 5])
def test_vectorised_prototypes_match_the_loop(window):
    torch.manual_seed(window)
    mod = MedicalPrototype(16, 6, banks=3, window=window)
    x = torch.randn(2, 16, 6, 6)
    np.testing.assert_allclose(
        mod(x).detach().numpy(), prototype_distance_loop(x, mod.prototypes.detach(), window).numpy(), atol=1e-5
    )


def test_prototype_windows_are_clipped_at_borders():
    """A prototype equal to a corner feature finds it only if the window reaches it."""
    mod = MedicalPrototype(8, 4, banks=1, window=3)
    x = torch.randn(1, 8, 4, 4)
    with torch.no_grad():
        mod.prototypes.copy_(torch.randn(16, 1, 8))
        mod.prototypes[5, 0] = x[0, :, 0, 0]  # position (1,1): its window holds (0,0)
        mod.prototypes[10, 0] = x[0, :, 0, 0]  # position (2,2): its window does not
    d = mod(x)[0]
    assert d[1, 1].abs() < 1e-6
    assert d[2, 2] > 1e-3
    with pytest.raises(ValueError, match="odd"):
        MedicalPrototype(8, 4, window=2)


def test_resnet34_from_a_local_safetensors_file(tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(1)
    src = timm.create_model("resnet34").state_dict()  # torchvision parameter names
    path = tmp_path / "resnet34.safetensors"
    save_file({k: v.contiguous() for k, v in src.items()}, str(path))
    enc = Encoder("resnet34", weights=path)
    assert torch.equal(enc.net.state_dict()["layer3.0.conv1.weight"], src["layer3.0.conv1.weight"])
    assert enc.weights_source == "file resnet34.safetensors"
