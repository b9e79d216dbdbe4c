"""The denoiser of the structured weight space: a residual MLP over a shape's code.

A code (``weightspace/structured.py``) is a few hundred numbers with no symmetry left, so the
network is a stack of pre-LN residual MLP blocks over the whole vector, modulated by the timestep
and the condition through adaLN-Zero (DiT): each block starts as the identity. The condition is
the encoder feature ψ of a shape, or nothing for the unconditional HyperDiffusion baseline; a
learned null condition stands in for ψ when it is dropped (classifier-free guidance).

The network returns its raw output only: the skip, the output scaling and the prior belong to the
process (``process.py``).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from engine.checks import between, whole
from engine.diffusion.denoiser import conditioning


@dataclass(frozen=True)
class CodeDenoiserConfig:
    # 384 wide and 6 deep: 10.9M parameters, 22 MB in float16, so the bundled 3D model and the 2D
    # one fit resources/models/'s 40 MB together (512 wide would be 34 MB alone)
    width: int = 384
    depth: int = 6
    mlp_ratio: float = 2.0

    def __post_init__(self):
        # the upper bounds keep a forged model file from building a network that fills the memory
        whole("the denoiser's width", self.width, 1, 4096)
        whole("the denoiser's depth", self.depth, 1, 64)
        between("the denoiser's MLP ratio", self.mlp_ratio, 0.25, 16)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> CodeDenoiserConfig:
        return cls(**json.loads(text))


class _Block(nn.Module):
    def __init__(self, width: int, mlp_ratio: float):
        super().__init__()
        self.norm = nn.LayerNorm(width, elementwise_affine=False)
        hidden = int(width * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, width))
        self.modulation = nn.Linear(width, 3 * width)
        nn.init.zeros_(self.modulation.weight)
        nn.init.zeros_(self.modulation.bias)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale, gate = self.modulation(F.silu(c)).chunk(3, dim=1)
        return x + gate * self.mlp(self.norm(x) * (1 + scale) + shift)


class CodeDenoiser(nn.Module):
    """``(x_t (B, D), t (B,), cond (B, C) or None, drop (B,) bool or None) → (B, D)``.

    cond_dim = 0 makes it unconditional.
    """

    def __init__(self, dim: int, cond_dim: int, config: CodeDenoiserConfig = CodeDenoiserConfig()):
        super().__init__()
        self.dim = dim
        self.cond_dim = cond_dim
        self.config = config
        w = config.width
        self.inp = nn.Linear(dim, w)
        self.time = nn.Sequential(nn.Linear(w, w), nn.SiLU(), nn.Linear(w, w))
        if cond_dim:
            self.cond = nn.Sequential(nn.LayerNorm(cond_dim), nn.Linear(cond_dim, w), nn.SiLU(), nn.Linear(w, w))
            self.null_cond = nn.Parameter(torch.zeros(w))
        self.blocks = nn.ModuleList([_Block(w, config.mlp_ratio) for _ in range(config.depth)])
        self.norm_out = nn.LayerNorm(w, elementwise_affine=False)
        self.mod_out = nn.Linear(w, 2 * w)
        nn.init.zeros_(self.mod_out.weight)
        nn.init.zeros_(self.mod_out.bias)
        self.out = nn.Linear(w, dim)
        nn.init.zeros_(self.out.weight)  # starts by predicting the prior's answer
        nn.init.zeros_(self.out.bias)
        nn.init.normal_(self.inp.weight, std=1 / math.sqrt(dim))

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None,
                drop: torch.Tensor | None = None) -> torch.Tensor:
        h = self.inp(x)
        c = conditioning(self, t, cond, drop)
        for block in self.blocks:
            h = block(h, c)
        shift, scale = self.mod_out(F.silu(c)).chunk(2, dim=1)
        return self.out(self.norm_out(h) * (1 + scale) + shift)
