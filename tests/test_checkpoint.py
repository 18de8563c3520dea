import json
import pickle

import pytest
import torch
from safetensors.torch import save_file

from spmamba.checkpoint import CheckpointError, load_checkpoint, read_metadata, save_checkpoint
from spmamba.scoring import ScoreWeights


def test_round_trip_keeps_outputs_and_metadata(tiny_model, tmp_path):
    path = tmp_path / "m.safetensors"
    save_checkpoint(
        path,
        tiny_model,
        ScoreWeights(alpha=0.5),
        calibration={"threshold": 1.5},
        training={"epochs": 3},
        summary="tiny test model",
    )
    model, meta = load_checkpoint(path)
    x = torch.rand(2, 3, 128, 128)
    with torch.no_grad():
        a, b = tiny_model(x), model(x)
    for r1, r2 in zip(a.reconstructions, b.reconstructions, strict=True):
        assert torch.equal(r1, r2)
    assert torch.equal(a.prototype_distance, b.prototype_distance)
    assert meta["score_weights"]["alpha"] == 0.5 and meta["calibration"]["threshold"] == 1.5
    assert read_metadata(path)["summary"] == "tiny test model"
    assert meta["encoder"]["fingerprint"] == tiny_model.encoder.fingerprint()


def test_checkpoint_with_encoder_included_loads_without_weights(tiny_model, tmp_path):
    path = tmp_path / "full.safetensors"
    save_checkpoint(path, tiny_model, include_encoder=True)
    model, _ = load_checkpoint(path, encoder_weights=None)
    assert model.encoder.fingerprint() == tiny_model.encoder.fingerprint()


class _Boom:
    def __reduce__(self):
        import os

        return (os.system, ("touch /tmp/spmamba_pickle_ran",))


def test_pickle_files_are_refused_without_running_them(tmp_path):
    marker = "/tmp/spmamba_pickle_ran"
    import os

    if os.path.exists(marker):
        os.remove(marker)
    raw = tmp_path / "evil.safetensors"
    raw.write_bytes(pickle.dumps(_Boom()))
    zipped = tmp_path / "evil.pt"
    torch.save({"x": _Boom()}, zipped)
    for p in (raw, zipped):
        with pytest.raises(CheckpointError, match="pickle"):
            load_checkpoint(p)
    assert not os.path.exists(marker)


def test_wrong_shape_names_key_and_shapes(tiny_model, tmp_path):
    path = tmp_path / "m.safetensors"
    meta = save_checkpoint(path, tiny_model)
    state = {k: v for k, v in tiny_model.state_dict().items() if not k.startswith("encoder.")}
    key = "prototype.prototypes"
    state[key] = torch.zeros(1, 2, 3)
    save_file(state, str(path), metadata={"spmamba": json.dumps(meta)})
    with pytest.raises(CheckpointError, match=r"prototype\.prototypes has shape \(1, 2, 3\), the model expects"):
        load_checkpoint(path)


def test_missing_tensor_and_metadata(tiny_model, tmp_path):
    meta = save_checkpoint(tmp_path / "a.safetensors", tiny_model)
    state = {k: v for k, v in tiny_model.state_dict().items() if not k.startswith("encoder.")}
    state.pop("prototype.prototypes")
    save_file(state, str(tmp_path / "b.safetensors"), metadata={"spmamba": json.dumps(meta)})
    with pytest.raises(CheckpointError, match="missing 1 tensors, e.g. prototype.prototypes"):
        load_checkpoint(tmp_path / "b.safetensors")
    save_file({"w": torch.zeros(2)}, str(tmp_path / "c.safetensors"))
    with pytest.raises(CheckpointError, match="no SP-Mamba metadata"):
        load_checkpoint(tmp_path / "c.safetensors")
    del meta["score_weights"]
    save_file({"w": torch.zeros(2)}, str(tmp_path / "d.safetensors"), metadata={"spmamba": json.dumps(meta)})
    with pytest.raises(CheckpointError, match="lacks 'score_weights'"):
        load_checkpoint(tmp_path / "d.safetensors")
    (tmp_path / "e.safetensors").write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="not a safetensors file"):
        load_checkpoint(tmp_path / "e.safetensors")


def test_other_encoder_weights_are_detected(tiny_model, tmp_path):
    path = tmp_path / "m.safetensors"
    meta = save_checkpoint(path, tiny_model)
    meta["encoder"]["fingerprint"] = "0000000000000000"
    state = {k: v for k, v in tiny_model.state_dict().items() if not k.startswith("encoder.")}
    save_file(state, str(path), metadata={"spmamba": json.dumps(meta)})
    with pytest.raises(CheckpointError, match="trained on encoder weights 0000000000000000"):
        load_checkpoint(path)


def test_a_checkpoint_scoring_normalised_maps_applies_them_on_every_predictor_path(tmp_path):
    """Stored training-normal statistics are applied by Predictor.maps and maps_for_samples alike when the
    checkpoint says they are in use, and ignored (but kept) when it does not; the model still loads."""
    import numpy as np
    from PIL import Image

    from spmamba.checkpoint import add_to_checkpoint, save_checkpoint
    from spmamba.data import Sample
    from spmamba.inference import Predictor
    from spmamba.model import SPMamba
    from spmamba.scoring import ComponentMaps, MapNorm
    from tests.conftest import tiny_config

    torch.manual_seed(0)
    path = tmp_path / "n.safetensors"
    save_checkpoint(path, SPMamba(tiny_config(), encoder_weights="imagenet"))
    g = torch.Generator().manual_seed(1)
    norm = MapNorm(
        torch.rand(3, 128, 128, generator=g),
        torch.rand(3, 128, 128, generator=g) + 0.5,
        torch.rand(128, 128, generator=g),
        torch.rand(128, 128, generator=g) + 0.5,
    )
    grey = np.random.default_rng(0).random((96, 96)).astype(np.float32)
    Image.fromarray((grey * 255).astype(np.uint8)).save(tmp_path / "x.png")
    add_to_checkpoint(path, norm.tensors(), {"map_norm": {"in_use": False, "n_train": 5}})
    raw = Predictor(path).maps([grey])
    add_to_checkpoint(path, norm.tensors(), {"map_norm": {"in_use": True, "n_train": 5}})
    p = Predictor(path)
    want = norm.apply(ComponentMaps(raw.per_scale, raw.prototype))
    torch.testing.assert_close(p.maps([grey]).per_scale, want.per_scale, rtol=1e-4, atol=1e-4)
    batch = p.maps_for_samples([Sample(tmp_path / "x.png", 0)])
    assert batch.per_scale.shape == want.per_scale.shape and torch.isfinite(batch.prototype).all()
