"""Where the bundled models and examples are: ``importlib.resources`` over the
``equigen_resources`` package (the checkout's ``resources/`` folder), so a checkout, an editable
install and an installed wheel resolve alike."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def resources_dir() -> Path:
    """The bundled data's folder (``resources/`` in a checkout)."""
    return Path(str(files("equigen_resources")))


def models_dir() -> Path:
    return resources_dir() / "models"


def examples_dir() -> Path:
    return resources_dir() / "examples"


def bundled_model(name: str) -> Path:
    """``models/NAME.safetensors`` (it may be missing in a trimmed checkout)."""
    return models_dir() / f"{name}.safetensors"
