"""What every training loop of the engine shares around its own step.

Encoder pre-training, weight-space training, code training, the shared part's training and
adaptation each compute their own loss; the learning-rate schedule (warm-up in steps, then a
cosine), resuming from a checkpoint, the time limit, the EMA copy, the running mean of the
losses and saving from rank 0 only are here, once, so the five loops cannot drift apart.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch

from engine.checkpoint import load_checkpoint, save_checkpoint

# where the denoisers' cosine ends, as a share of the peak rate (the shipped models' schedule)
DENOISER_LR_FLOOR = 0.1


def warmup_cosine(step: int, total: int, warmup: int = 0, floor: float = 0.0) -> float:
    """The learning rate's factor of its peak at ``step`` (0-based) of a ``total``-step run.

    A linear rise over the first ``warmup`` steps, then a cosine (over the whole run, so it
    joins the rise where it is still close to 1) down to ``floor`` at step ``total`` and after.
    ``warmup`` 0: no rise.
    """
    if step < warmup:
        return (step + 1) / warmup
    t = min(1.0, step / max(1, total))
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * t))


def set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    """Give every parameter group of ``opt`` the learning rate ``lr``."""
    for group in opt.param_groups:
        group["lr"] = lr


@torch.no_grad()
def ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float, step: int) -> None:
    """Move ``ema``'s parameters towards ``model``'s after 0-based ``step``.

    The decay ramps up as ``(1 + step) / (10 + step)`` to ``decay``, so the copy does not keep
    the random initialisation for thousands of steps.
    """
    d = min(decay, (1 + step) / (10 + step))
    for pe, p in zip(ema.parameters(), model.parameters()):
        pe.lerp_(p, 1 - d)


class TrainingRun:
    """Step count, checkpoints, time limit and running losses of one run of ``total`` steps.

    With ``checkpoint`` the run resumes from it when it exists (``header`` must match: same
    data and settings), saves every ``checkpoint_every`` steps, at the end and when the time
    limit stops it; only rank 0 writes. Without it (adaptation) nothing is saved or resumed.
    ``max_seconds`` stops the run after the step that takes it past that long since ``started``
    (a ``time.perf_counter()`` value; default: now); the caller keeps what was learned.

    The loop::

        run = TrainingRun(total, {"model": m}, opt, checkpoint=path, header=h)
        while run.running:
            ...one step at 0-based run.step...
            metrics = run.end_step(parts)
        ...save the result...
        run.finish()
    """

    def __init__(self, total: int, modules: dict[str, torch.nn.Module], opt: torch.optim.Optimizer, *,
                 checkpoint: Path | None = None, header: dict | None = None, checkpoint_every: int = 250,
                 max_seconds: float | None = None, rank: int = 0, window: int = 50,
                 started: float | None = None):
        self.t0 = time.perf_counter() if started is None else started
        self.total, self.modules, self.opt = total, modules, opt
        self.checkpoint, self.header = checkpoint, header or {}
        self.checkpoint_every, self.max_seconds, self.rank, self.window = checkpoint_every, max_seconds, rank, window
        self.step = 0
        self.resumed_from = 0
        self.stopped_by_time_limit = False
        self.recent: list[dict[str, float]] = []
        if checkpoint is not None and checkpoint.exists():
            self.step = self.resumed_from = load_checkpoint(checkpoint, modules, opt, self.header)

    @property
    def running(self) -> bool:
        """Whether another step is to be taken."""
        return self.step < self.total and not self.stopped_by_time_limit

    @property
    def seconds(self) -> float:
        """Wall seconds since the run (this process' part of it) started."""
        return time.perf_counter() - self.t0

    def metrics(self) -> dict[str, float]:
        """Each loss part's mean over the last ``window`` steps (empty before the first)."""
        keys = {k for r in self.recent for k in r}
        return {k: sum(r.get(k, 0.0) for r in self.recent) / len(self.recent) for k in sorted(keys)}

    def end_step(self, parts: dict[str, float]) -> dict[str, float]:
        """Count the step that just ran with its loss ``parts``; save and check the time limit.
        Returns the running means of the parts."""
        self.step += 1
        self.recent = (self.recent + [parts])[-self.window:]
        if self.step % self.checkpoint_every == 0 or self.step == self.total:
            self._save()
        if self.max_seconds is not None and self.seconds >= self.max_seconds and self.step < self.total:
            self.stopped_by_time_limit = True
            self._save()
        return self.metrics()

    def finish(self) -> None:
        """After the result is saved: a finished run's checkpoint is no longer needed."""
        if self.rank == 0 and self.checkpoint is not None and not self.stopped_by_time_limit:
            self.checkpoint.unlink(missing_ok=True)

    def _save(self) -> None:
        if self.rank == 0 and self.checkpoint is not None:
            save_checkpoint(self.checkpoint, self.modules, self.opt, self.step, self.header)
