"""Weight tokens: one token per weight or bias tensor, large tensors split into chunks of neurons.

This is the G.pt / HyperDiffusion layout. A token holds whole rows (neurons) of one tensor, at most
``max_token`` numbers; tokens are padded to the longest one so a batch of INRs becomes one dense
``(B, T, E)`` tensor, and the padding is dropped on the way back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from engine.functional import Params
from engine.spec import INRSpec


@dataclass(frozen=True)
class TokenLayout:
    """Where each token's numbers sit in the flattened weight vector of an INR."""

    keys: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    token_tensor: tuple[int, ...]  # index into keys, per token
    index: torch.Tensor  # (T, E) flat positions, padded with num_params (a zero slot)
    mask: torch.Tensor  # (T, E) bool, True where a number is real

    @property
    def num_tokens(self) -> int:
        return self.index.shape[0]

    @property
    def token_size(self) -> int:
        return self.index.shape[1]

    @property
    def num_params(self) -> int:
        return sum(math.prod(s) for s in self.shapes)


def token_layout(spec: INRSpec, max_token: int = 1024) -> TokenLayout:
    """Split every tensor of ``spec`` into row chunks of at most ``max_token`` numbers."""
    keys, shapes, chunks, owners = [], [], [], []
    offset = 0
    for ti, (k, shape) in enumerate(spec.param_shapes()):
        keys.append(k)
        shapes.append(tuple(shape))
        rows = shape[0]
        row_len = math.prod(shape[1:])  # 1 for a bias
        per = max(1, max_token // row_len)
        for r0 in range(0, rows, per):
            r1 = min(rows, r0 + per)
            chunks.append(list(range(offset + r0 * row_len, offset + r1 * row_len)))
            owners.append(ti)
        offset += rows * row_len
    size = max(len(c) for c in chunks)
    index = torch.full((len(chunks), size), offset, dtype=torch.long)
    mask = torch.zeros((len(chunks), size), dtype=torch.bool)
    for i, c in enumerate(chunks):
        index[i, : len(c)] = torch.tensor(c)
        mask[i, : len(c)] = True
    return TokenLayout(tuple(keys), tuple(shapes), tuple(owners), index, mask)


def flatten(layout: TokenLayout, params: Params) -> torch.Tensor:
    """``{key: (B, *shape)}`` → ``(B, num_params)`` in the spec's key order."""
    return torch.cat([params[k].reshape(params[k].shape[0], -1) for k in layout.keys], dim=1)


def unflatten(layout: TokenLayout, flat: torch.Tensor) -> Params:
    """``(B, num_params)`` → ``{key: (B, *shape)}``."""
    out, o = {}, 0
    for k, s in zip(layout.keys, layout.shapes):
        n = math.prod(s)
        out[k] = flat[:, o : o + n].reshape(flat.shape[0], *s)
        o += n
    return out


def to_tokens(layout: TokenLayout, flat: torch.Tensor) -> torch.Tensor:
    """``(B, num_params)`` → ``(B, T, E)`` with zeros in the padding."""
    padded = torch.cat([flat, flat.new_zeros(flat.shape[0], 1)], dim=1)
    return padded[:, layout.index]


def from_tokens(layout: TokenLayout, tokens: torch.Tensor) -> torch.Tensor:
    """``(B, T, E)`` → ``(B, num_params)``, dropping the padding."""
    flat = tokens.new_zeros(tokens.shape[0], layout.num_params + 1)
    flat[:, layout.index[layout.mask]] = tokens[:, layout.mask]
    return flat[:, :-1]
