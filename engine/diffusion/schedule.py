"""The diffusion process: a cosine noise schedule over 1000 training steps and a DDIM sampler.

The denoiser predicts x0 (the clean normalised weights), in training and in sampling alike (the
official code trains on ε but samples as if x0). DDIM with η = 0 is deterministic given the
starting noise, which makes "same seed, same output" hold.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

TRAIN_STEPS = 1000


def cosine_alphas_cumprod(steps: int = TRAIN_STEPS, s: float = 0.008) -> torch.Tensor:
    """ᾱ_t for t = 0..steps-1 (Nichol & Dhariwal), clipped away from 0, ``(steps,)`` float64."""
    t = torch.arange(steps + 1, dtype=torch.float64) / steps
    f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    abar = f[1:] / f[0]
    return abar.clamp(1e-5, 1.0)


class Schedule:
    """q(x_t | x0) and the DDIM reverse step for x0-predicting models."""

    def __init__(self, steps: int = TRAIN_STEPS):
        self.steps = steps
        self.abar = cosine_alphas_cumprod(steps).float()

    def to(self, device: torch.device) -> "Schedule":
        """This schedule with its table on ``device`` (a copy)."""
        moved = Schedule.__new__(Schedule)
        moved.steps, moved.abar = self.steps, self.abar.to(device)
        return moved

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t = √ᾱ_t x0 + √(1−ᾱ_t) ε; x0, noise ``(B, D)``, t ``(B,)`` integer steps."""
        a = self.abar.to(x0.device)[t.to(x0.device)].to(x0)[:, None]
        return a.sqrt() * x0 + (1 - a).sqrt() * noise

    def sample_steps(self, n: int) -> list[int]:
        """``n`` evenly spaced training steps from the last to the first, e.g. 999 … 0."""
        n = max(1, min(n, self.steps))
        return sorted({round(x) for x in torch.linspace(self.steps - 1, 0, n).tolist()}, reverse=True)

    def ddim(self, predict_x0: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
             noise: torch.Tensor, num_steps: int = 50):
        """Deterministic DDIM (η = 0) from ``noise`` ``(B, D)``; a generator that yields
        ``(i, num_steps, x0_estimate)`` after every step and returns the final x0 ``(B, D)``.

        predict_x0(x_t, t) gets t as ``(B,)`` integer steps.
        """
        ts = self.sample_steps(num_steps)
        x = noise
        x0 = noise
        abar = self.abar.to(noise.device)
        for i, t in enumerate(ts):
            tt = torch.full((x.shape[0],), t, dtype=torch.long, device=noise.device)
            x0 = predict_x0(x, tt)
            a_t = abar[t]
            eps = (x - a_t.sqrt() * x0) / (1 - a_t).sqrt()
            if i + 1 < len(ts):
                a_next = abar[ts[i + 1]]
                x = a_next.sqrt() * x0 + (1 - a_next).sqrt() * eps
            else:
                x = x0
            yield i + 1, len(ts), x0
        return x
