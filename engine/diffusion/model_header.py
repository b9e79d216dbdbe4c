"""What both generator file formats check before building anything: the file, its format and
method, the shots' names and each tensor's shape against what the header implies.

Raw-weight models (``model_file.py``) and structured ones (``code_model.py``) differ in their
networks; these checks, and their messages, are the same for both.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from engine.diffusion.methods import TRAINING_METHODS
from engine.errors import InputError, shown
from engine.tensor_files import json_field, read_format_header

Shapes = dict[str, tuple[tuple[int, ...], torch.dtype | None]]


def read_model_header(path: str | os.PathLike, fmt: str, not_it: str) -> tuple[dict[str, str], Shapes, str]:
    """The header, tensor shapes and training method of the model file ``path`` of format
    ``fmt``; InputError naming the file otherwise (``not_it``: what to say when the file is of
    another format)."""
    path = Path(path)
    header, shapes = read_format_header(path, fmt, "model file", not_it)
    method = header.get("method")
    if method not in TRAINING_METHODS:
        raise InputError(f"{path}: damaged model file, unknown method {shown(method)} "
                         f"(one of {', '.join(TRAINING_METHODS)})")
    return header, shapes, method


def shot_names(header: dict[str, str], where: str) -> list[str] | None:
    """The names of the shots an adapted model carries (None for an unadapted one)."""
    if "shots" not in header:
        return None
    names = json_field(header, "shots", where, list, InputError)
    if not names or len(names) > 1000 or not all(isinstance(n, str) and len(n) < 1000 for n in names):
        raise InputError(f"{where}: damaged model file, its shots are not a list of names")
    return names


def expect_shape(shapes: Shapes, key: str, shape: tuple[int, ...], where: str, required: bool = True) -> None:
    """InputError unless tensor ``key`` has ``shape`` (or is absent and not ``required``)."""
    if key not in shapes:
        if required:
            raise InputError(f"{where}: damaged model file, tensor {key!r} is missing")
        return
    if shapes[key][0] != shape:
        raise InputError(f"{where}: damaged model file, tensor {key!r} has shape {shapes[key][0]}, "
                         f"its header implies {shape}")


def prefixed(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The tensors under ``prefix``, with it taken off their names."""
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
