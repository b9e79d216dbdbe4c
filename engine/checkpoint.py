"""Training checkpoints: modules, optimiser state and step in one atomic safetensors file.

Shared by encoder pre-training and diffusion training, so a stopped run resumes where it was.
A checkpoint records the run's settings and data; resuming with other ones is refused, except
for the settings that only say how this run is carried out (its time limit, how often it saves),
so a run stopped by its time limit can be finished with another limit or none.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from engine.errors import InputError
from engine.tensor_files import read_tensors, write_tensors


# config fields that do not change what the run computes
RUN_ONLY = ("max_minutes", "max_seconds", "checkpoint_every")


def _identity(config: dict | None) -> dict | None:
    return None if config is None else {k: v for k, v in config.items() if k not in RUN_ONLY}


def checkpoint_path(out: Path) -> Path:
    """Where the run that writes ``out`` keeps its checkpoint: ``out + '.ckpt'``."""
    return out.with_name(out.name + ".ckpt")


def save_checkpoint(path: Path, modules: dict[str, torch.nn.Module], opt: torch.optim.Optimizer,
                    step: int, header: dict) -> None:
    """Write every module's state under its name, the optimiser state and ``step``."""
    tensors = {f"{name}.{k}": v for name, m in modules.items() for k, v in m.state_dict().items()}
    state = opt.state_dict()
    for pid, st in state["state"].items():
        for key, v in st.items():
            tensors[f"opt.{pid}.{key}"] = torch.as_tensor(v)
    tensors = {k: v.detach().contiguous().clone() for k, v in tensors.items()}
    meta = dict(header, step=step, param_groups=state["param_groups"])
    write_tensors(path, tensors, {"checkpoint": json.dumps(meta, default=str)})


def load_checkpoint(path: Path, modules: dict[str, torch.nn.Module], opt: torch.optim.Optimizer,
                    header: dict) -> int:
    """Restore what :func:`save_checkpoint` wrote; returns the step. InputError if the checkpoint
    belongs to a run with other data or settings."""
    stored, tensors = read_tensors(path, InputError)
    try:
        meta = json.loads(stored["checkpoint"])
    except (KeyError, json.JSONDecodeError):
        raise InputError(f"{path} is not a training checkpoint; delete it or use another --out") from None
    same_config = _identity(json.loads(json.dumps(meta.get("config"), default=str))) == \
        _identity(json.loads(json.dumps(header["config"], default=str)))
    if not same_config or meta.get("data") != header["data"]:
        raise InputError(f"{path} is a checkpoint of another run (other data or settings); "
                         "delete it or use another --out")
    for name, m in modules.items():
        prefix = name + "."
        m.load_state_dict({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)})
    state: dict = {"state": {}, "param_groups": meta["param_groups"]}
    for k, v in tensors.items():
        if k.startswith("opt."):
            _, pid, key = k.split(".", 2)
            state["state"].setdefault(int(pid), {})[key] = v
    opt.load_state_dict(state)
    return int(meta["step"])
