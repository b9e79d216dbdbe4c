"""One batched, functional forward for every INR spec.

Weights are a ``Params`` dict: state-dict key -> tensor with a leading batch axis, ``(B, *shape)``.
The same forward serves fitting, decoding, the encoder's tests and the diffusion losses, so B
different networks are evaluated in one call with batched matrix products.
"""

from __future__ import annotations

import hashlib
import math

import torch

from engine.spec import INRSpec

Params = dict[str, torch.Tensor]


def positional_encoding(spec: INRSpec, coords: torch.Tensor) -> torch.Tensor:
    """NeRF encoding as HyperDiffusion's ``Embedder``: ``[x, sin(2^0 x), cos(2^0 x), ...]``.

    coords: ``(..., in_dim)``. Returns ``(..., spec.encoded_dim)``; identity when the spec has no
    encoding.
    """
    if spec.posenc_freqs == 0:
        return coords
    parts = [coords]
    for k in range(spec.posenc_freqs):
        f = 2.0**k
        parts.append(torch.sin(coords * f))
        parts.append(torch.cos(coords * f))
    return torch.cat(parts, dim=-1)


def batch_size(params: Params) -> int:
    return next(iter(params.values())).shape[0]


def forward(spec: INRSpec, params: Params, coords: torch.Tensor) -> torch.Tensor:
    """Evaluate B networks.

    params: key -> ``(B, *shape)``. coords: ``(N, in_dim)`` shared by all networks, or
    ``(B, N, in_dim)`` one set each, in the spec's domain units.
    Returns ``(B, N, out_dim)``: intensities for 2D specs, occupancy logits for 3D ones.
    """
    h = positional_encoding(spec, coords.to(next(iter(params.values())).dtype))
    last = spec.num_layers - 1
    prefix = spec.param_prefix
    for i in range(spec.num_layers):
        w = params[f"{prefix}.{i}.weight"]
        b = params[f"{prefix}.{i}.bias"]
        if h.dim() == 2:  # shared coordinates: broadcast against the batch of weights
            h = torch.matmul(h, w.transpose(1, 2)) + b.unsqueeze(1)
        else:
            h = torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2))
        if i < last:
            h = torch.sin(spec.w0 * h) if spec.activation == "sine" else torch.relu(h)
    if spec.output_offset:
        h = h + spec.output_offset
    return h


def init_params(
    spec: INRSpec, batch: int = 1, generator: torch.Generator | None = None
) -> Params:
    """Random initial weights, ``(batch, *shape)`` per key, float32.

    SIREN specs use SIREN's own scheme: first layer ``U(±1/fan_in)``, later layers
    ``U(±sqrt(6/fan_in)/w0)``. The official EquiGen code never marks the first layer, which leaves
    glyphs near 22 dB after 400 steps (METHOD.md §7). ReLU specs use PyTorch's ``nn.Linear``
    default, as HyperDiffusion does. Biases use ``U(±1/sqrt(fan_in))`` (``nn.Linear``'s default).
    """
    params: Params = {}
    widths = spec.widths
    for i in range(spec.num_layers):
        fan_in, fan_out = widths[i], widths[i + 1]
        if spec.activation == "sine":
            bound = 1.0 / fan_in if i == 0 else math.sqrt(6.0 / fan_in) / spec.w0
        else:
            bound = 1.0 / math.sqrt(fan_in)
        w = (torch.rand(batch, fan_out, fan_in, generator=generator) * 2 - 1) * bound
        b_bound = 1.0 / math.sqrt(fan_in)
        b = (torch.rand(batch, fan_out, generator=generator) * 2 - 1) * b_bound
        params[f"{spec.param_prefix}.{i}.weight"] = w
        params[f"{spec.param_prefix}.{i}.bias"] = b
    return params


def init_from_seed(spec: INRSpec, seed: int, batch: int = 1) -> Params:
    """Initial weights from a seed, the same on every machine (CPU generator)."""
    g = torch.Generator().manual_seed(int(seed))
    return init_params(spec, batch, generator=g)


def repeat_params(params: Params, batch: int) -> Params:
    """Broadcast a single weight set ``(1, *shape)`` to ``(batch, *shape)`` as fresh tensors."""
    return {k: v.expand(batch, *v.shape[1:]).clone() for k, v in params.items()}


def select(params: Params, index) -> Params:
    """Rows ``index`` of every tensor (an int keeps the batch axis)."""
    if isinstance(index, int):
        index = slice(index, index + 1)
    return {k: v[index] for k, v in params.items()}


def concat(parts: list[Params]) -> Params:
    return {k: torch.cat([p[k] for p in parts], dim=0) for k in parts[0]}


def params_digest(params: Params) -> str:
    """A short content hash of weights (keys and fp32 values): tells whether an INR was fitted
    from a given initialisation (fits record their init's digest)."""
    h = hashlib.sha256()
    for k in sorted(params):
        h.update(k.encode())
        h.update(params[k].detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def image_grid(size: int, domain: tuple[float, float] = (-1.0, 1.0)) -> torch.Tensor:
    """Pixel centres of a ``size × size`` image, ``(size*size, 2)`` as ``(x, y)``.

    ``'xy'`` meshgrid order, as MNIST-INRs were fitted: row r, column c holds ``(lin[c], lin[r])``,
    so the forward's output reshapes to ``(size, size)`` in row-major image order.
    """
    lin = torch.linspace(domain[0], domain[1], size)
    x, y = torch.meshgrid(lin, lin, indexing="xy")
    return torch.stack([x, y], dim=-1).reshape(-1, 2)


def volume_grid(res: int, domain: tuple[float, float] = (-0.5, 0.5)) -> torch.Tensor:
    """Lattice points of a ``res³`` grid, ``(res³, 3)``; reshapes to ``(res, res, res)`` as
    ``volume[i, j, k] = f(x_i, y_j, z_k)``."""
    lin = torch.linspace(domain[0], domain[1], res)
    x, y, z = torch.meshgrid(lin, lin, lin, indexing="ij")
    return torch.stack([x, y, z], dim=-1).reshape(-1, 3)
