"""Batched fitting of many INRs at once, each stopping at its own quality target.

All B networks are stacked along a batch axis and optimised with one Adam over the stacked
tensors. Adam is element-wise and the loss is a sum of per-network means, so every network follows
exactly the trajectory it would follow alone; when one reaches its target it leaves the batch
(its weights as they were when measured), which keeps the work proportional to what is left.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from engine.checks import at_least, positive
from engine.functional import Params
from engine.progress import Progress, ProgressGen
from engine.training import warmup_cosine

# loss(params_active, active_indices, step) -> (per-item loss (A,), per-item quality (A,) or None).
# The quality, when given, must describe the weights *before* this step's update.
LossFn = Callable[[Params, torch.Tensor, int], tuple[torch.Tensor, torch.Tensor | None]]
# quality(params_active, active_indices) -> per-item quality (A,), higher is better.
QualityFn = Callable[[Params, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class LoopConfig:
    """Optimiser and stopping rule shared by image and mesh fitting."""

    lr: float
    max_steps: int
    target: float
    check_every: int = 1
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    progress_every: int = 10
    lr_final: float | None = None  # cosine decay from lr to lr_final over max_steps when set

    def __post_init__(self):
        positive("the fitting learning rate", self.lr)
        at_least("fitting steps", self.max_steps, 1)
        at_least("the quality check interval", self.check_every, 1)
        positive("the final fitting learning rate", self.lr_final, optional=True)


@dataclass
class FitOutcome:
    """Fitted weights ``(B, *shape)``; per-item quality, steps taken, whether the target was met."""

    params: Params
    quality: torch.Tensor
    steps: torch.Tensor
    reached: torch.Tensor
    seconds: float


def fit_loop(
    init: Params, loss_fn: LossFn, quality_fn: QualityFn, config: LoopConfig, stage: str = "fit"
) -> ProgressGen[FitOutcome]:
    """Optimise B weight sets from ``init`` until each reaches ``config.target`` or the budget.

    Yields Progress every ``progress_every`` steps (metrics: items done, mean quality); closing
    the generator stops it within one step.
    """
    t0 = time.perf_counter()
    n = next(iter(init.values())).shape[0]
    device = next(iter(init.values())).device  # the weights compute there; the bookkeeping stays on the CPU
    result = {k: v.detach().cpu().clone() for k, v in init.items()}
    quality = torch.full((n,), float("-inf"))
    steps = torch.zeros(n, dtype=torch.long)
    reached = torch.zeros(n, dtype=torch.bool)

    active = torch.arange(n)
    params = {k: v.detach().clone().requires_grad_(True) for k, v in init.items()}
    m = {k: torch.zeros_like(v) for k, v in params.items()}
    v2 = {k: torch.zeros_like(v) for k, v in params.items()}
    b1, b2 = config.betas

    step = 0
    for step in range(1, config.max_steps + 1):
        loss, q = loss_fn(params, active, step)
        if q is None and (step % config.check_every == 0):
            with torch.no_grad():
                q = quality_fn(params, active)
        done = None
        if q is not None:
            q = q.detach().cpu()
            quality[active] = q
            steps[active] = step - 1
            done = q >= config.target
            if bool(done.any()):
                idx = active[done]
                for k in result:
                    result[k][idx] = params[k].detach()[done.to(device)].cpu()
                reached[idx] = True
            else:
                done = None
        for p in params.values():
            p.grad = None
        loss.sum().backward()
        with torch.no_grad():
            bc1 = 1 - b1**step
            bc2 = 1 - b2**step
            lr = config.lr
            if config.lr_final is not None:  # reaches lr_final on the last step
                lr *= warmup_cosine(step - 1, config.max_steps - 1, 0, config.lr_final / config.lr)
            for k, p in params.items():
                g = p.grad
                m[k].mul_(b1).add_(g, alpha=1 - b1)
                v2[k].mul_(b2).addcmul_(g, g, value=1 - b2)
                denom = (v2[k] / bc2).sqrt_().add_(config.eps)
                p.addcdiv_(m[k], denom, value=-lr / bc1)
        if done is not None:
            # Finished items leave the batch; their weights were saved before this update.
            keep = ~done
            active = active[keep]
            params, m, v2 = _compact(params, m, v2, keep.to(device))
            if active.numel() == 0:
                break
        if step % config.progress_every == 0:
            yield Progress(
                stage, int(reached.sum()), n,
                metrics={"step": step, "mean_quality": float(quality[torch.isfinite(quality)].mean())
                         if torch.isfinite(quality).any() else float("nan")},
            )

    if active.numel():
        with torch.no_grad():
            q = quality_fn(params, active).cpu()
        quality[active] = q
        steps[active] = step
        hit = q >= config.target
        reached[active[hit]] = True
        for k in result:
            result[k][active] = params[k].detach().cpu()
    yield Progress(stage, n, n, metrics={"mean_quality": float(quality.mean())})
    return FitOutcome(result, quality, steps, reached, time.perf_counter() - t0)


def _compact(params: Params, m: Params, v2: Params, keep: torch.Tensor):
    new_p, new_m, new_v = {}, {}, {}
    for k in params:
        new_p[k] = params[k].detach()[keep].clone().requires_grad_(True)
        new_m[k] = m[k][keep]
        new_v[k] = v2[k][keep]
    return new_p, new_m, new_v
