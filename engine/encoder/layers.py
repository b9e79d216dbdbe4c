"""Permutation-equivariant layers on MLP weight space (DWSNets / NFN "NP" style).

A weight-space feature holds, for each layer l of the INR, a weight tensor ``(B, n_l, n_{l-1}, C)``
and a bias tensor ``(B, n_l, C)`` with C channels. Hidden sizes n_1 .. n_{L-1} may be permuted;
the input and output sizes are fixed. Every term below pools over an axis and broadcasts back
along the same axis (or along the axis that a neighbouring layer shares), followed by a linear map
over channels, so permuting hidden neurons of the input permutes the output the same way
(equivariance), and pooling over all permutable axes gives invariant features.

Blocks (each a channel-mixing linear map of the pooled tensor):

- weight l ← W_l itself; W_l pooled over rows, over columns, over both; b_l along its rows;
  b_{l-1} along its columns; W_{l+1} pooled over its rows (indexed by n_l) along W_l's rows;
  W_{l-1} pooled over its columns (indexed by n_{l-1}) along W_l's columns.
- bias l ← b_l itself; b_l pooled; W_l pooled over columns; W_{l+1} pooled over rows; W_l pooled.
"""

from __future__ import annotations

import torch
from torch import nn

WSFeature = tuple[list[torch.Tensor], list[torch.Tensor]]  # (weights, biases), channel-last


class EquivariantLayer(nn.Module):
    """One equivariant linear map of weight-space features, C_in → C_out channels.

    The pooled terms that broadcast along the same axis are concatenated and mapped by one linear
    layer, so each weight tensor costs one full-size channel mix and two broadcast additions.
    """

    def __init__(self, num_layers: int, c_in: int, c_out: int):
        super().__init__()
        self.num_layers = num_layers
        L = num_layers
        # Along W_l's rows (indexed by n_l, broadcast over columns): pooled-over-columns W_l, b_l,
        # W_{l+1} pooled over its rows, and W_l pooled over everything.
        n_row = [3 + (l < L - 1) for l in range(L)]
        # Along W_l's columns (indexed by n_{l-1}, broadcast over rows): pooled-over-rows W_l,
        # and for l > 0 b_{l-1} and W_{l-1} pooled over its columns.
        n_col = [1 + 2 * (l > 0) for l in range(L)]
        # Bias terms: pooled-over-columns W_l, pooled b_l, pooled W_l, W_{l+1} pooled over rows.
        n_bias = [3 + (l < L - 1) for l in range(L)]
        self.w_self = nn.ModuleList([nn.Linear(c_in, c_out) for _ in range(L)])
        self.w_row = nn.ModuleList([nn.Linear(k * c_in, c_out, bias=False) for k in n_row])
        self.w_col = nn.ModuleList([nn.Linear(k * c_in, c_out, bias=False) for k in n_col])
        self.b_self = nn.ModuleList([nn.Linear(c_in, c_out) for _ in range(L)])
        self.b_other = nn.ModuleList([nn.Linear(k * c_in, c_out, bias=False) for k in n_bias])

    def forward(self, x: WSFeature) -> WSFeature:
        ws, bs = x
        L = self.num_layers
        row_mean = [w.mean(dim=1) for w in ws]  # (B, n_{l-1}, C): pooled over n_l
        col_mean = [w.mean(dim=2) for w in ws]  # (B, n_l, C): pooled over n_{l-1}
        all_mean = [m.mean(dim=1) for m in col_mean]  # (B, C)
        out_w, out_b = [], []
        for l in range(L):
            w, b = ws[l], bs[l]
            n_l = w.shape[1]
            glob = all_mean[l][:, None, :].expand(-1, n_l, -1)
            row_in = [col_mean[l], b, glob] + ([row_mean[l + 1]] if l < L - 1 else [])
            col_in = [row_mean[l]] + ([bs[l - 1], col_mean[l - 1]] if l > 0 else [])
            y = self.w_self[l](w)
            y = y + self.w_row[l](torch.cat(row_in, -1))[:, :, None, :]
            y = y + self.w_col[l](torch.cat(col_in, -1))[:, None, :, :]
            out_w.append(y)
            pooled_b = b.mean(dim=1, keepdim=True).expand(-1, n_l, -1)
            bias_in = [col_mean[l], pooled_b, glob] + ([row_mean[l + 1]] if l < L - 1 else [])
            out_b.append(self.b_self[l](b) + self.b_other[l](torch.cat(bias_in, -1)))
        return out_w, out_b


class PointwiseNorm(nn.Module):
    """LayerNorm over channels of every entry: equivariant because it is per entry."""

    def __init__(self, num_layers: int, channels: int):
        super().__init__()
        self.w = nn.ModuleList([nn.LayerNorm(channels) for _ in range(num_layers)])
        self.b = nn.ModuleList([nn.LayerNorm(channels) for _ in range(num_layers)])

    def forward(self, x: WSFeature) -> WSFeature:
        ws, bs = x
        return [n(w) for n, w in zip(self.w, ws)], [n(b) for n, b in zip(self.b, bs)]


def pointwise(fn, x: WSFeature) -> WSFeature:
    ws, bs = x
    return [fn(w) for w in ws], [fn(b) for b in bs]


def add(x: WSFeature, y: WSFeature) -> WSFeature:
    return [a + b for a, b in zip(x[0], y[0])], [a + b for a, b in zip(x[1], y[1])]


def invariant_pool(x: WSFeature) -> torch.Tensor:
    """Features invariant to hidden permutations, ``(B, D)``.

    Per layer: mean and max of its weights and of its biases over all entries. Along the fixed
    axes (the input and output neurons) index information is kept: the first layer's weights
    pooled over hidden rows, the last layer's weights pooled over hidden columns, and the
    output biases.
    """
    ws, bs = x
    parts = []
    for w, b in zip(ws, bs):
        parts += [w.mean(dim=(1, 2)), w.amax(dim=(1, 2)), b.mean(dim=1), b.amax(dim=1)]
    parts.append(ws[0].mean(dim=1).flatten(1))  # (B, n_0 * C): per input coordinate
    parts.append(ws[-1].mean(dim=2).flatten(1))  # (B, n_L * C): per output
    parts.append(bs[-1].flatten(1))
    return torch.cat(parts, dim=1)


def invariant_dim(widths: tuple[int, ...], channels: int) -> int:
    """Size of invariant_pool's output for an MLP with layer widths ``(n_0, ..., n_L)``."""
    num_layers = len(widths) - 1
    return channels * (4 * num_layers + widths[0] + 2 * widths[-1])
