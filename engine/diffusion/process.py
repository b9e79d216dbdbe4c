"""The diffusion process over flat vectors, apart from the network that denoises them.

The network returns its raw output F(x_t, t, c); this module owns everything else (diffusers'
scheduler split): the cosine schedule, the x0 parametrisation with its skip and output scaling,
the Gaussian prior the skip filters through, the loss weight per noise level, and the DDIM step.

    x̂0 = skip(x_t, t) + c_out(t) · F,   skip = E_prior[x0 | x_t] (Wiener filter),
    c_out = √(1 − ᾱ_t)  (with the skip; EDM's preconditioning for unit-variance data), else 1.

Without a skip F is x̂0 itself. The prior is the training set's principal-component Gaussian, or
the shots' after adaptation (``prior.py``). ``widen`` scales the prior's spread beyond its floor
for one call: the diversity control (``generate``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from engine.checks import between
from engine.diffusion.prior import GaussianPrior
from engine.diffusion.schedule import TRAIN_STEPS, Schedule


@dataclass(frozen=True)
class ProcessConfig:
    skip: bool = True
    prior_rank: int = 32  # 0: the skip goes through N(0, I), i.e. √ᾱ_t·x_t
    steps: int = TRAIN_STEPS

    def __post_init__(self):
        between("the prior's rank", self.prior_rank, 0, 4096)
        between("the diffusion steps", self.steps, 1, 100_000)


class DiffusionProcess:
    """Schedule, skip, output scaling, prior and DDIM step for ``dim``-number vectors."""

    def __init__(self, dim: int, config: ProcessConfig = ProcessConfig()):
        self.dim = dim
        self.config = config
        self.schedule = Schedule(config.steps)
        self.prior: GaussianPrior | None = None
        if config.skip and config.prior_rank:
            k = config.prior_rank
            self.prior = GaussianPrior(torch.zeros(dim), torch.zeros(k, dim), torch.ones(k), 1.0)

    @property
    def steps(self) -> int:
        return self.config.steps

    def to(self, device: torch.device) -> "DiffusionProcess":
        """This process with its schedule and prior on ``device`` (a copy; the original stays)."""
        moved = DiffusionProcess.__new__(DiffusionProcess)
        moved.dim, moved.config, moved.schedule = self.dim, self.config, self.schedule.to(device)
        p = self.prior
        moved.prior = None if p is None else GaussianPrior(p.mean.to(device), p.basis.to(device),
                                                           p.variance.to(device), p.floor)
        return moved

    def set_prior(self, prior: GaussianPrior) -> None:
        if self.prior is None:
            raise ValueError("this process has no prior (no skip, or prior_rank 0)")
        if prior.basis.shape != self.prior.basis.shape:
            raise ValueError(f"prior of shape {tuple(prior.basis.shape)} for a process of rank "
                             f"{self.config.prior_rank} over {self.dim} numbers")
        self.prior = prior

    def add_noise(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t ``(B, D)`` from x0 and noise ``(B, D)`` at integer steps t ``(B,)``."""
        return self.schedule.q_sample(x0, t, noise)

    def root_abar(self, t: torch.Tensor) -> torch.Tensor:
        return self.schedule.abar[t].sqrt()

    def output_scale(self, t: torch.Tensor) -> torch.Tensor:
        """c_out ``(B,)``: the network's share of x̂0."""
        if not self.config.skip:
            return torch.ones(t.shape[0], device=t.device)
        a = self.root_abar(t)
        return (1 - a * a).clamp_min(0).sqrt()

    def skip(self, x_t: torch.Tensor, t: torch.Tensor, widen: float = 1.0) -> torch.Tensor:
        """The linear part of x̂0 ``(B, D)``: E[x0 | x_t] under the prior (0 without a skip)."""
        if not self.config.skip:
            return torch.zeros_like(x_t)
        a = self.root_abar(t)[:, None]
        if self.prior is None:
            return a * x_t
        p = self.prior
        var = p.variance if widen == 1 else p.floor + (p.variance - p.floor).clamp_min(0) * widen**2
        gain = lambda v: a * v / (a * a * v + 1 - a * a)  # noqa: E731 - √ᾱ·v / (ᾱ·v + 1 − ᾱ)
        r = x_t - a * p.mean
        coef = r @ p.basis.T  # (B, k)
        g0 = gain(torch.tensor(p.floor, device=x_t.device))
        return p.mean + g0 * r + ((gain(var[None]) - g0) * coef) @ p.basis

    def predict_x0(self, output: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor,
                   widen: float = 1.0) -> torch.Tensor:
        """x̂0 ``(B, D)`` from the network's output and its input."""
        return self.skip(x_t, t, widen) + self.output_scale(t)[:, None] * output

    def loss_weight(self, t: torch.Tensor) -> torch.Tensor:
        """EDM weight ``(B,)`` of each item's x0 error: 1 / c_out², so the network's own output is
        fitted equally at every noise level."""
        return 1.0 / self.output_scale(t).clamp_min(1e-3) ** 2

    def timesteps(self, n: int) -> list[int]:
        """``n`` sampling steps from the noisiest to 0."""
        return self.schedule.sample_steps(n)

    def step(self, x_t: torch.Tensor, x0_hat: torch.Tensor, t: int, t_next: int | None) -> torch.Tensor:
        """One deterministic DDIM step (η = 0) from step t to ``t_next`` (None: the end)."""
        if t_next is None:
            return x0_hat
        abar = self.schedule.abar
        eps = (x_t - abar[t].sqrt() * x0_hat) / (1 - abar[t]).sqrt()
        return abar[t_next].sqrt() * x0_hat + (1 - abar[t_next]).sqrt() * eps

    def prior_tensors(self) -> dict[str, torch.Tensor]:
        if self.prior is None:
            return {}
        p = self.prior
        return {"prior.mean": p.mean.cpu(), "prior.basis": p.basis.cpu(), "prior.variance": p.variance.cpu(),
                "prior.floor": torch.tensor(p.floor)}

    def load_prior_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        if self.prior is None:
            return
        self.set_prior(GaussianPrior(tensors["prior.mean"].float(), tensors["prior.basis"].float(),
                                     tensors["prior.variance"].float(), float(tensors["prior.floor"])))
