"""Range checks for configs, raised as the engine's one-sentence InputError.

Configs check their own fields in ``__post_init__``, in the engine's words (``adaptation steps``,
not a command-line flag), so the CLI, the studio and the Python API refuse a bad value alike and
before any work starts.
"""

from __future__ import annotations

import math

from engine.errors import InputError, shown


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def at_least(what: str, value: float | int | None, minimum: float | int, *, optional: bool = False) -> None:
    """``value`` must be a finite number ≥ ``minimum`` (or None when ``optional``)."""
    if value is None and optional:
        return
    if not _number(value) or not math.isfinite(value) or value < minimum:
        raise InputError(f"{what} must be at least {minimum}, got {shown(value)}")


def positive(what: str, value: float | int | None, *, optional: bool = False) -> None:
    """``value`` must be a finite number > 0 (or None when ``optional``)."""
    if value is None and optional:
        return
    if not _number(value) or not math.isfinite(value) or value <= 0:
        raise InputError(f"{what} must be a positive number, got {shown(value)}")


def between(what: str, value: float, low: float, high: float) -> None:
    """``low ≤ value ≤ high``, a finite number."""
    if not _number(value) or not math.isfinite(value) or not low <= value <= high:
        raise InputError(f"{what} must be between {low} and {high}, got {shown(value)}")


def whole(what: str, value: int, low: int, high: int) -> None:
    """An integer with ``low ≤ value ≤ high``."""
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise InputError(f"{what} must be a whole number from {low} to {high}, got {shown(value)}")


SEED_MAX = 2**63 - 1  # what torch.manual_seed and numpy's generators take


def seed(what: str, value: int) -> None:
    """A seed: a whole number from 0 to 2⁶³ − 1."""
    whole(what, value, 0, SEED_MAX)


def one_of(what: str, value: str, choices: tuple[str, ...] | list[str]) -> None:
    if value not in choices:
        raise InputError(f"unknown {what} {value!r}; choose one of {', '.join(map(str, choices))}")


def check_training(config) -> None:
    """The fields every generator training config has (raw-weight and structured alike)."""
    at_least("training steps", config.steps, 1)
    at_least("the training batch size", config.batch_size, 1)
    positive("the training learning rate", config.lr)
    at_least("the warm-up steps", config.warmup, 0)
    between("the EMA decay", config.ema_decay, 0, 1)
    between("the condition dropout", config.cond_dropout, 0, 1)
    at_least("the regulariser weight", config.reg_weight, 0)
    at_least("the regularised items per step", config.reg_items, 0)
    at_least("the checkpoint interval", config.checkpoint_every, 1)
    positive("the training time limit", config.max_minutes, optional=True)
    seed("the training seed", config.seed)


def check_adaptation(config) -> None:
    """The fields every adaptation config has (raw-weight and structured alike)."""
    at_least("adaptation steps", config.steps, 1)
    positive("the adaptation learning rate", config.lr)
    at_least("the adaptation batch size", config.batch_size, 1)
    between("the adaptation's condition dropout", config.cond_dropout, 0, 1)
    at_least("the regulariser weight", config.reg_weight, 0)
    at_least("the regularised items per step", config.reg_items, 0)
    positive("the adaptation time limit", config.max_seconds, optional=True)
    at_least("the prior spread", config.prior_spread, 0)
    positive("the prior floor", config.prior_floor)
    seed("the adaptation seed", config.seed)
