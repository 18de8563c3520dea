"""The skeleton both trainers share (SP-Mamba's ``spmamba train`` and Mamba-MIS's ``spmamba seg train``):
options declared once with their help, seeding, where a run keeps its files, the resumable train state
(safetensors, no pickles), the per-epoch record and the machine it ran on."""

from __future__ import annotations

import json
import random
import time
from dataclasses import field
from pathlib import Path

import numba
import numpy as np
import torch
from llvmlite import binding
from safetensors.torch import load_file, save_file

from .checkpoint import BEST_EPOCH_SUFFIX, TRAIN_STATE_SUFFIX


def opt_field(default, help: str, **extra):
    """An options-dataclass field whose help text (and any CLI flag override) the command's parser reads."""
    return field(default=default, metadata={"help": help, **extra})


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def machine_record() -> dict:
    """Where a run trained. The numba scan kernels are compiled for this CPU with fast-math, so one command
    reproduces bit for bit on the same CPU type but rounds differently on another, and the runs drift apart."""
    cpu = numba.config.CPU_NAME or binding.get_host_cpu_name()
    return {"threads": torch.get_num_threads(), "cpu": cpu, "torch": torch.__version__, "numba": numba.__version__}


def run_paths(out: str) -> tuple[Path, Path, Path]:
    """The checkpoint, its train state and its best-epoch file, which stay beside it so a run can be resumed or
    extended. The folder is made now: were it missing, the run would only fail when the first epoch is saved."""
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path, path.with_name(path.stem + TRAIN_STATE_SUFFIX), path.with_name(path.stem + BEST_EPOCH_SUFFIX)


def end_epoch(
    sched: torch.optim.lr_scheduler.LRScheduler, info: dict, epoch: int, losses: list[float], n_images: int, t0: float
) -> dict:
    """Steps the schedule, adds the epoch's time to the run's and starts the epoch's history record,
    the same for every trainer so that their logs read alike."""
    sched.step()
    secs = time.perf_counter() - t0
    info["train_seconds"] += secs
    return {"epoch": epoch, "loss": float(np.mean(losses)), "images_per_s": n_images / secs}


def _frozen_prefixes(model: torch.nn.Module) -> tuple[str, ...]:
    """Top-level modules whose parameters are all frozen (SP-Mamba's pretrained encoder): their weights come
    from the encoder registry, so a train state leaves them out; everything else must be saved."""
    frozen = [
        name
        for name, module in model.named_modules()
        if name and any(True for _ in module.parameters()) and not any(p.requires_grad for p in module.parameters())
    ]
    return tuple(f"{n}." for n in frozen if not any(n.startswith(f"{o}.") for o in frozen if o != n))


def save_state(path: Path, model: torch.nn.Module, opt: torch.optim.Optimizer, sched, info: dict) -> None:
    """Everything needed to resume: trainable weights, AdamW moments, schedule, history (no pickles). Written
    beside the file and renamed into place, so a copy taken while a run trains is never half an epoch."""
    frozen = _frozen_prefixes(model)
    tensors = {f"model.{k}": v.detach().contiguous() for k, v in model.state_dict().items() if not k.startswith(frozen)}
    osd = opt.state_dict()
    for i, st in osd["state"].items():
        for k, v in st.items():
            tensors[f"optim.{i}.{k}"] = torch.as_tensor(v).detach().contiguous()
    meta = dict(info, param_groups=osd["param_groups"], scheduler=sched.state_dict())
    partial = path.with_name(path.name + ".partial")
    save_file(tensors, str(partial), metadata={"train_state": json.dumps(meta, default=list)})
    partial.replace(path)


def load_state(path: Path, model: torch.nn.Module, opt: torch.optim.Optimizer, sched) -> dict:
    """Restores what `save_state` wrote; a state that leaves out trainable weights (or names others) is
    refused rather than resumed from freshly initialised layers."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = json.loads(f.metadata()["train_state"])
    tensors = load_file(str(path))
    result = model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")}, strict=False)
    missing = [k for k in result.missing_keys if not k.startswith(_frozen_prefixes(model))]
    if missing or result.unexpected_keys:
        raise ValueError(
            f"{path.name} does not match this model ({len(missing)} weights missing, "
            f"{len(result.unexpected_keys)} unexpected, e.g. {(missing + result.unexpected_keys)[0]}); "
            "start without --resume or delete the train-state file"
        )
    state: dict[int, dict] = {}
    for k, v in tensors.items():
        if k.startswith("optim."):
            _, i, name = k.split(".", 2)
            state.setdefault(int(i), {})[name] = v
    opt.load_state_dict({"state": state, "param_groups": meta.pop("param_groups")})
    sched.load_state_dict(meta.pop("scheduler"))
    return meta
