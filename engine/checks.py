"""Range checks for configs, raised as the engine's one-sentence InputError.

Configs check their own fields in ``__post_init__``, in the engine's words (``adaptation steps``,
not a command-line flag), so the CLI, the studio and the Python API refuse a bad value alike and
before any work starts.
"""

from __future__ import annotations

import math

from engine.errors import InputError


def at_least(what: str, value: float | int | None, minimum: float | int, *, optional: bool = False) -> None:
    """``value`` must be a finite number ≥ ``minimum`` (or None when ``optional``)."""
    if value is None and optional:
        return
    if value is None or not math.isfinite(value) or value < minimum:
        raise InputError(f"{what} must be at least {minimum}, got {value!r}")


def positive(what: str, value: float | int | None, *, optional: bool = False) -> None:
    """``value`` must be a finite number > 0 (or None when ``optional``)."""
    if value is None and optional:
        return
    if value is None or not math.isfinite(value) or value <= 0:
        raise InputError(f"{what} must be a positive number, got {value!r}")


def between(what: str, value: float, low: float, high: float) -> None:
    """``low ≤ value ≤ high``, finite."""
    if value is None or not math.isfinite(value) or not low <= value <= high:
        raise InputError(f"{what} must be between {low} and {high}, got {value!r}")


def one_of(what: str, value: str, choices: tuple[str, ...] | list[str]) -> None:
    if value not in choices:
        raise InputError(f"unknown {what} {value!r}; choose one of {', '.join(map(str, choices))}")
