"""Command-line overrides of frozen dataclass configs that nest one sub-config."""

from __future__ import annotations

import dataclasses
from typing import TypeVar

C = TypeVar("C")


def with_overrides(config: C, nested: str, **kw) -> C:
    """Replace fields of ``config`` or of its sub-config ``config.<nested>`` by name; None values
    (flags the user did not give) are ignored."""
    sub = getattr(config, nested)
    sub_fields = {f.name for f in dataclasses.fields(sub)}
    inner = {k: v for k, v in kw.items() if k in sub_fields and v is not None}
    top = {k: v for k, v in kw.items() if k not in sub_fields and v is not None}
    return dataclasses.replace(config, **{nested: dataclasses.replace(sub, **inner)}, **top)
