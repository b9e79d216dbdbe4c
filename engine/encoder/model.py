"""E_φ: the equivariant weight-space encoder, ψ(w) = head([invariant_pool(layers(lift(w))), probe(w)]).

Works for any MLP spec: the layer stack is sized from the spec's widths. Inputs are normalised
with one mean and std per weight tensor (not per element: per-element statistics differ between
neurons and would break the permutation symmetry the encoder is built to respect).

Probe features (``EncoderConfig.probes``, on by default) are our addition to the paper's encoder:
the INR's own values at a fixed lattice of coordinates (2D: its fitting grid, average-pooled 2×;
3D: occupancy logits clipped to ±10 on a 16³ lattice), through a small MLP. Evaluating the network is
exactly invariant to hidden-neuron permutations (and to everything else that keeps the function),
so ψ stays invariant. Measured on the glyph corpus, the pure weight-space encoder did not beat raw
weights at k-NN class accuracy nor retrieve other-initialisation fits; with probes it does (see
the table in docs/EXPERIMENTS.md; ``--no-probes`` trains the paper's pure version for comparison).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from engine.encoder.layers import (
    EquivariantLayer, PointwiseNorm, add, invariant_dim, invariant_pool, pointwise,
)
from engine.checks import whole
from engine.errors import InputError, SpecError, clipped
from engine.functional import Params, forward, image_grid, volume_grid
from engine.spec import INRSpec
from engine.tensor_files import check_finite, check_module, json_field, read_format_header, read_tensors, write_tensors


PROBE_LATTICE_3D = 16
PROBE_LOGIT_CLIP = 10.0


@dataclass(frozen=True)
class EncoderConfig:
    """Sized to pre-train on ~17k glyph INRs within 30 minutes on 2 CPU cores.

    Width 8 and depth 2 (the lift and one more equivariant layer) were chosen by measurement: in
    2-minute runs on the glyph corpus a 32-wide, 4-deep stack learned far slower (held-out k-NN
    0.69 against 0.93), its noisy pooled features drowning the signal (docs/EXPERIMENTS.md).
    """

    width: int = 8
    depth: int = 2
    feature_dim: int = 256
    proj_dim: int = 128
    probes: bool = True  # add the INR's values at fixed coordinates (exactly invariant)
    probe_dim: int = 256
    # 3D probes: an n³ lattice, read as clipped logits (a soft signed distance) or as occupancy
    # probabilities, which saturate to a coarse voxel grid (files from before these fields: 10³,
    # probabilities; see ``encoder_config_from_json``)
    probe_lattice: int = PROBE_LATTICE_3D
    probe_logits: bool = True

    def __post_init__(self):
        # the upper bounds keep a forged file from building an encoder that fills the memory
        whole("the encoder's width", self.width, 1, 512)
        whole("the encoder's depth", self.depth, 1, 32)
        for name, value in (("feature", self.feature_dim), ("projection", self.proj_dim), ("probe", self.probe_dim)):
            whole(f"the encoder's {name} size", value, 1, 8192)
        whole("the probe lattice", self.probe_lattice, 2, 64)
        for name, value in (("probes", self.probes), ("probe_logits", self.probe_logits)):
            if not isinstance(value, bool):
                raise InputError(f"the encoder's {name} setting must be true or false, not {value!r}")


class WeightEncoder(nn.Module):
    """Maps batched INR weights ``{key: (B, *shape)}`` to invariant features ψ ``(B, feature_dim)``."""

    def __init__(self, spec: INRSpec, config: EncoderConfig = EncoderConfig(),
                 norm_mean: torch.Tensor | None = None, norm_std: torch.Tensor | None = None):
        super().__init__()
        self.spec = spec
        self.config = config
        L = spec.num_layers
        self.keys = [k for k, _ in spec.param_shapes()]
        self.register_buffer("norm_mean", norm_mean if norm_mean is not None else torch.zeros(2 * L))
        self.register_buffer("norm_std", norm_std if norm_std is not None else torch.ones(2 * L))
        c = config.width
        self.lift = EquivariantLayer(L, 1, c)
        self.layers = nn.ModuleList([EquivariantLayer(L, c, c) for _ in range(config.depth - 1)])
        self.norms = nn.ModuleList([PointwiseNorm(L, c) for _ in range(config.depth - 1)])
        d = invariant_dim(spec.widths, c)
        if config.probes:
            self.register_buffer("probe_coords", probe_coordinates(spec, config.probe_lattice), persistent=False)
            n = probe_count(spec, config.probe_lattice)
            self.probe = nn.Sequential(nn.LayerNorm(n), nn.Linear(n, config.probe_dim), nn.GELU(),
                                       nn.Linear(config.probe_dim, config.probe_dim))
            d += config.probe_dim
        self.head = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, config.feature_dim), nn.GELU(),
                                  nn.Linear(config.feature_dim, config.feature_dim))
        self.projection = nn.Sequential(nn.Linear(config.feature_dim, config.feature_dim), nn.GELU(),
                                        nn.Linear(config.feature_dim, config.proj_dim))

    def features(self, params: Params):
        """The equivariant feature maps after the layer stack (for tests of equivariance)."""
        ws, bs = [], []
        for i in range(self.spec.num_layers):
            w = params[self.keys[2 * i]]
            b = params[self.keys[2 * i + 1]]
            ws.append(((w - self.norm_mean[2 * i]) / self.norm_std[2 * i])[..., None])
            bs.append(((b - self.norm_mean[2 * i + 1]) / self.norm_std[2 * i + 1])[..., None])
        x = self.lift((ws, bs))
        for layer, norm in zip(self.layers, self.norms):
            x = add(x, layer(pointwise(nn.functional.gelu, norm(x))))
        return x

    def forward(self, params: Params, project: bool = False) -> torch.Tensor:
        """ψ(w): ``(B, feature_dim)``, invariant to hidden-neuron permutations of ``params``;
        with ``project=True`` the contrastive projection g(ψ(w)) ``(B, proj_dim)`` instead."""
        pooled = invariant_pool(self.features(params))
        if self.config.probes:
            pooled = torch.cat([pooled, self.probe(self.probe_values(params)).to(pooled.dtype)], dim=1)
        psi = self.head(pooled)
        return self.projection(psi) if project else psi

    def probe_values(self, params: Params) -> torch.Tensor:
        """The INRs' values at the probe lattice, ``(B, probe_count)``, computed in fp32 (a SIREN's
        sin(30·x) is meaningless in bf16)."""
        with torch.autocast(self.probe_coords.device.type, enabled=False):
            out = forward(self.spec, {k: v.float() for k, v in params.items()}, self.probe_coords)[..., 0]
        if self.spec.in_dim == 2:
            s = self.spec.grid_size
            return F.avg_pool2d(out.reshape(-1, 1, s, s), 2).flatten(1)
        if self.config.probe_logits:
            # Clipped: far from the surface the exact logit says little and varies most between fits.
            return out.clamp(-PROBE_LOGIT_CLIP, PROBE_LOGIT_CLIP)
        return torch.sigmoid(out)


def probe_coordinates(spec: INRSpec, lattice: int) -> torch.Tensor:
    """Where the probes evaluate an INR: 2D its fitting grid, 3D a ``lattice``³ grid of cell
    centres inside the domain, ``(points, in_dim)``."""
    if spec.in_dim == 2:
        return image_grid(spec.grid_size, spec.domain)
    lo, hi = spec.domain
    margin = (hi - lo) / (2 * lattice)
    return volume_grid(lattice, (lo + margin, hi - margin))


def probe_count(spec: INRSpec, lattice: int) -> int:
    return (spec.grid_size // 2) ** 2 if spec.in_dim == 2 else lattice ** 3


def encoder_config_from_json(text: str) -> EncoderConfig:
    """An ``EncoderConfig`` from a file header; fields added since read as the older behaviour."""
    fields = json.loads(text)
    if not isinstance(fields, dict):
        raise ValueError("the configuration is not a JSON object")
    fields.setdefault("probes", False)  # files from before probe features were pure weight-space
    fields.setdefault("probe_lattice", 10)
    fields.setdefault("probe_logits", False)
    return EncoderConfig(**fields)


def tensor_stats(mean: Params, std: Params, spec: INRSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """One mean and std per weight tensor from per-element corpus statistics, ``(2L,)`` each."""
    means, stds = [], []
    for k, _ in spec.param_shapes():
        m = mean[k].mean()
        var = (std[k] ** 2 + (mean[k] - m) ** 2).mean()
        means.append(m)
        stds.append(var.sqrt().clamp_min(1e-6))
    return torch.stack(means).float(), torch.stack(stds).float()


ENCODER_FORMAT = "equigen-encoder"


def save_encoder(path: str | os.PathLike, encoder: WeightEncoder, meta: dict | None = None) -> Path:
    """Weights, spec, config and training metadata in one sealed safetensors file (atomic)."""
    tensors = {k: v.detach().contiguous() for k, v in encoder.state_dict().items()}
    header = {"format": ENCODER_FORMAT, "spec": encoder.spec.to_json(),
              "config": json.dumps(asdict(encoder.config)), "meta": json.dumps(meta or {}, default=str)}
    return write_tensors(path, tensors, header)


def load_encoder(path: str | os.PathLike) -> tuple[WeightEncoder, dict]:
    """An encoder file back as ``(encoder in eval mode, metadata)``; its header and tensor
    shapes are checked before anything is built."""
    path = Path(path)
    header, shapes = read_format_header(path, ENCODER_FORMAT, "file",
                                        "not an EquiGen encoder file; make one with 'equigen pretrain'")
    try:
        spec = INRSpec.from_json(header.get("spec", ""))
        config = encoder_config_from_json(header["config"])
    except (SpecError, InputError, KeyError, TypeError, ValueError) as e:
        raise InputError(f"{path}: damaged encoder file ({clipped(str(e))})") from None
    check_module(lambda: WeightEncoder(spec, config), shapes, "", str(path), InputError)
    meta = json_field(header, "meta", str(path), dict, InputError, required=False, default={})
    _, tensors = read_tensors(path, InputError)
    check_finite(tensors, str(path), InputError)
    enc = WeightEncoder(spec, config)
    enc.load_state_dict(tensors)
    enc.eval()
    return enc, meta
