"""The one device choice of the engine: where fitting, training, adaptation and sampling compute.

``"auto"`` is CUDA when ``torch.cuda.is_available()``, else the CPU; ``"cpu"``, ``"cuda"`` and
``"cuda:N"`` name one. Files never hold device tensors: everything is saved from the CPU and
loaded onto the chosen device by the code that computes. A GPU out of memory, or a GPU asked
for where there is none, ends in one message that says what to do.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator

import torch

from engine.errors import InputError

_NAME = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def resolve(name: str | torch.device | None = "auto") -> torch.device:
    """The ``torch.device`` for ``name`` (``auto``, ``cpu``, ``cuda``, ``cuda:N``; None = auto).
    Under torchrun, ``cuda`` means this rank's GPU (``LOCAL_RANK``). InputError when the device
    is not there."""
    if isinstance(name, torch.device):
        name = str(name)
    name = (name or "auto").strip().lower()
    if not _NAME.match(name):
        raise InputError(f"unknown device {name!r}; choose auto, cpu, cuda or cuda:N")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise InputError(f"device {name!r} was asked for, but this machine has no CUDA GPU that torch can "
                         f"use (torch {torch.__version__}); use --device cpu")
    index = int(name.split(":")[1]) if ":" in name else int(os.environ.get("LOCAL_RANK", "0"))
    if index >= torch.cuda.device_count():
        raise InputError(f"device cuda:{index} does not exist; this machine has {torch.cuda.device_count()} "
                         "GPU(s): cuda:0 …")
    return torch.device("cuda", index)


def describe(device: torch.device) -> str:
    """What a person reads in a status bar or a report: ``CPU (2 threads)``, ``CUDA 0 (NVIDIA …)``."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"CUDA {index} ({torch.cuda.get_device_name(index)})"
    return f"CPU ({torch.get_num_threads()} threads)"


@contextlib.contextmanager
def gpu_errors(device: torch.device) -> Iterator[None]:
    """Turn a GPU's out-of-memory error into the engine's one-line message, and give the memory
    back when the work ends (finished, failed or cancelled)."""
    try:
        yield
    except torch.cuda.OutOfMemoryError:
        raise InputError(f"the GPU ({describe(device)}) ran out of memory; lower --batch-size or the "
                         "number of samples, or use --device cpu") from None
    finally:
        if device.type == "cuda":
            torch.cuda.empty_cache()
