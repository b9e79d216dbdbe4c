"""Changing some fields of a frozen dataclass config: the one way the CLI applies its flags."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

C = TypeVar("C")


def with_fields(config: C, changes: dict[str, Any]) -> C:
    """``config`` with ``changes`` applied; None values (flags the user did not give) are ignored.

    A name ``"sub.field"`` changes a field of the nested config (or key of the nested dict)
    ``config.sub``, keeping its other fields: the recipe stays, only what was asked changes.
    """
    top: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {}
    for name, value in changes.items():
        if value is None:
            continue
        if "." in name:
            sub, field = name.split(".", 1)
            nested.setdefault(sub, {})[field] = value
        else:
            top[name] = value
    for sub, fields in nested.items():
        current = getattr(config, sub)
        top[sub] = dict(current, **fields) if isinstance(current, dict) else dataclasses.replace(current, **fields)
    return dataclasses.replace(config, **top) if top else config
