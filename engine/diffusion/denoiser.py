"""The denoiser: a transformer over weight tokens that predicts clean weights x0.

G.pt / HyperDiffusion design (``METHOD.md`` §4): one token per tensor chunk (``tokens.py``), a
linear map in and out per weight tensor (the chunks of one tensor hold the same kind of numbers
and share it; learned positions tell them apart), pre-LN blocks. A token holds at most ``width``
numbers so that those maps lose nothing (``DenoiserConfig.max_token``), and x̂0 is preconditioned
with a skip from the noisy input (``DenoiserConfig.skip``): the Wiener filter of a Gaussian prior
over the weights (``prior.py``), so the transformer learns only what the prior gets wrong. The
timestep and the condition (the encoder feature ψ of the INR, or nothing for the unconditional
HyperDiffusion baseline) enter every block by adaLN-Zero modulation (DiT), which for a single
condition vector is the cheap equivalent of the official single-token cross-attention. A learned "null" condition stands in for
ψ when it is dropped (classifier-free guidance).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from engine.checks import between, whole
from engine.diffusion.prior import GaussianPrior, wiener
from engine.diffusion.schedule import TRAIN_STEPS, cosine_alphas_cumprod
from engine.diffusion.tokens import TokenLayout
from engine.errors import InputError


@dataclass(frozen=True)
class DenoiserConfig:
    """Sized so that training, adaptation and sampling run on a 2-core CPU."""

    width: int = 192
    depth: int = 4
    heads: int = 4
    mlp_ratio: float = 4.0
    # Numbers per weight token; None: the width. A token of more numbers than the width passes a
    # bottleneck: the 3D model of 1024-number tokens could express only 7,872 of its INRs' 36,737
    # weights and could not return even an almost clean input (x0 error 0.56 RMS at t = 1).
    max_token: int | None = None
    # x̂0 = √ᾱ_t·x_t + √(1−ᾱ_t)·F (EDM's preconditioning for σ_data = 1): near t = 0 the clean
    # weights are the input itself, which a network otherwise has to learn to copy exactly.
    skip: bool = True
    # With the skip: principal directions of the Gaussian prior whose Wiener filter is the skip
    # (``prior.py``); 0: the N(0, I) prior, i.e. EDM's √ᾱ_t·x_t.
    prior_rank: int = 64

    def __post_init__(self):
        # the upper bounds keep a forged model file from building a network that fills the memory
        whole("the denoiser's width", self.width, 1, 4096)
        whole("the denoiser's depth", self.depth, 1, 64)
        whole("the denoiser's attention heads", self.heads, 1, 64)
        if self.width % self.heads:
            raise InputError(f"the denoiser's width {self.width} is not a multiple of its {self.heads} heads")
        between("the denoiser's MLP ratio", self.mlp_ratio, 0.25, 16)
        if self.max_token is not None:
            between("the numbers per weight token", self.max_token, 1, 1 << 16)
        between("the prior's rank", self.prior_rank, 0, 4096)

    @property
    def token_numbers(self) -> int:
        return self.max_token or self.width


def denoiser_config_from_json(text: str) -> DenoiserConfig:
    """A ``DenoiserConfig`` from a model file header; files from before ``skip`` existed stored
    1024-number tokens and predicted x0 without the skip, and those from before ``prior_rank``
    skipped through the N(0, I) prior."""
    fields = json.loads(text)
    if not isinstance(fields, dict):
        raise ValueError("the configuration is not a JSON object")
    fields.setdefault("skip", False)
    fields.setdefault("prior_rank", 0)
    return DenoiserConfig(**fields)


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of integer steps ``(B,)`` → ``(B, dim)``."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)


def conditioning(net: nn.Module, t: torch.Tensor, cond: torch.Tensor | None,
                 drop: torch.Tensor | None) -> torch.Tensor:
    """What every block is modulated by, ``(B, width)``: the timestep's embedding plus the
    condition's, the learned null condition where ``cond`` is None or ``drop`` (B,) is set.
    ``net`` has ``time``, ``config.width``, ``cond_dim`` and, when conditional, ``cond`` and
    ``null_cond`` (both denoisers do)."""
    c = net.time(timestep_embedding(t, net.config.width))
    if not net.cond_dim:
        return c
    if cond is None:
        return c + net.null_cond.expand(len(t), -1)
    e = net.cond(cond)
    if drop is not None:
        e = torch.where(drop[:, None], net.null_cond.to(e.dtype).expand_as(e), e)
    return c + e


class _Block(nn.Module):
    def __init__(self, width: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(width, elementwise_affine=False)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width, elementwise_affine=False)
        hidden = int(width * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, width))
        self.modulation = nn.Linear(width, 6 * width)
        nn.init.zeros_(self.modulation.weight)  # adaLN-Zero: each block starts as the identity
        nn.init.zeros_(self.modulation.bias)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift1, scale1, gate1, shift2, scale2, gate2 = self.modulation(F.silu(c))[:, None].chunk(6, dim=2)
        h = self.norm1(x) * (1 + scale1) + shift1
        b, t, d = h.shape
        q, k, v = self.qkv(h).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, t, d)
        x = x + gate1 * self.proj(a)
        h = self.norm2(x) * (1 + scale2) + shift2
        return x + gate2 * self.mlp(h)


class Denoiser(nn.Module):
    """x0-prediction network: ``(tokens (B, T, E), t (B,), cond (B, C) or None) → (B, T, E)``.

    cond_dim = 0 makes it unconditional. ``drop`` (B,) bool replaces the condition of those
    items by the learned null condition (classifier-free guidance). ``prior_widen`` scales the
    prior's spread beyond its floor for this call only (the diversity control; ``generate.py``).
    """

    def __init__(self, layout: TokenLayout, cond_dim: int, config: DenoiserConfig = DenoiserConfig(),
                 schedule_steps: int = TRAIN_STEPS):
        super().__init__()
        self.config = config
        self.cond_dim = cond_dim
        T, E, d = layout.num_tokens, layout.token_size, config.width
        self.register_buffer("mask", layout.mask.float(), persistent=False)
        owners = list(layout.token_tensor)
        # the token range of each tensor (its chunks are contiguous and in order)
        self.groups = [slice(owners.index(g), len(owners) - owners[::-1].index(g)) for g in range(len(layout.keys))]
        G = len(self.groups)
        self.w_in = nn.Parameter(torch.randn(G, E, d) / math.sqrt(E))
        self.b_in = nn.Parameter(torch.zeros(G, d))
        self.pos = nn.Parameter(torch.randn(T, d) * 0.02)
        self.time = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))
        if cond_dim:
            self.cond = nn.Sequential(nn.LayerNorm(cond_dim), nn.Linear(cond_dim, d), nn.SiLU(), nn.Linear(d, d))
            self.null_cond = nn.Parameter(torch.zeros(d))
        self.blocks = nn.ModuleList([_Block(d, config.heads, config.mlp_ratio) for _ in range(config.depth)])
        self.norm_out = nn.LayerNorm(d, elementwise_affine=False)
        self.mod_out = nn.Linear(d, 2 * d)
        nn.init.zeros_(self.mod_out.weight)
        nn.init.zeros_(self.mod_out.bias)
        self.w_out = nn.Parameter(torch.zeros(G, d, E))  # starts by predicting the mean weights
        self.b_out = nn.Parameter(torch.zeros(G, E))
        if config.skip:
            self.register_buffer("root_abar", cosine_alphas_cumprod(schedule_steps).float().sqrt(), persistent=False)
        if config.skip and config.prior_rank:
            # N(0, I) until ``set_prior``: the Wiener skip then equals the plain one
            self.register_buffer("prior_mean", torch.zeros(T, E))
            self.register_buffer("prior_basis", torch.zeros(config.prior_rank, T, E))
            self.register_buffer("prior_variance", torch.ones(config.prior_rank))
            self.register_buffer("prior_floor", torch.ones(()))

    @property
    def has_prior(self) -> bool:
        return hasattr(self, "prior_basis")

    def set_prior(self, prior: GaussianPrior, layout: TokenLayout) -> None:
        """Make ``prior`` (of rank ``config.prior_rank``) the skip path's Gaussian."""
        if not self.has_prior:
            raise ValueError("this denoiser has no prior path (prior_rank 0 or no skip)")
        mean, basis = prior.tokens(layout)
        if basis.shape != self.prior_basis.shape:
            raise ValueError(f"prior of rank {basis.shape[0]} for a denoiser of rank {self.config.prior_rank}")
        self.prior_mean.copy_(mean)
        self.prior_basis.copy_(basis)
        self.prior_variance.copy_(prior.variance)
        self.prior_floor.fill_(prior.floor)

    def widened_variance(self, factor: float) -> torch.Tensor:
        """The prior's variances ``(k,)`` with their spread beyond the floor ``factor`` times wider."""
        if factor == 1:
            return self.prior_variance
        floor = self.prior_floor
        return floor + (self.prior_variance - floor).clamp_min(0) * factor**2

    def forward(self, tokens: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None,
                drop: torch.Tensor | None = None, prior_widen: float = 1.0) -> torch.Tensor:
        x = torch.cat([tokens[:, idx] @ self.w_in[g] + self.b_in[g] for g, idx in enumerate(self.groups)], 1)
        x = x + self.pos
        c = conditioning(self, t, cond, drop)
        for block in self.blocks:
            x = block(x, c)
        shift, scale = self.mod_out(F.silu(c))[:, None].chunk(2, dim=2)
        x = self.norm_out(x) * (1 + scale) + shift
        out = torch.cat([x[:, idx] @ self.w_out[g] + self.b_out[g] for g, idx in enumerate(self.groups)], 1)
        if self.config.skip:
            a = self.root_abar[t]  # in fp32: the skip carries the input's precision
            if self.has_prior:
                with torch.autocast(tokens.device.type, enabled=False):  # bf16 would blur the prior
                    skip = wiener(tokens.float(), a, self.prior_mean, self.prior_basis,
                                  self.widened_variance(prior_widen), self.prior_floor)
            else:
                skip = a[:, None, None] * tokens.float()
            out = skip + (1 - a * a).clamp_min(0).sqrt()[:, None, None] * out.float()
        return out * self.mask
