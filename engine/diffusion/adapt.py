"""EquiGen stage 3a: few-shot adaptation of a trained model to the shots of a new class.

The denoiser (from its EMA weights) is fine-tuned on the shots with the same loss as in training,
regulariser included (``METHOD.md`` §5; official: 250 steps at lr 2e-4). Each step sees every shot
at several noise levels. A denoiser with a prior path first takes the shots' Gaussian as its prior
(``prior.py``), since a new class lies mostly outside the span of the source weights. The result
is a new model that carries the shots and their features, so ``generate`` can condition on them
later without the original files.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from dataclasses import asdict, dataclass

import torch

from engine.checks import check_adaptation
from engine.diffusion.model_file import Shots, WeightDiffusion
from engine.diffusion.prior import shots_prior
from engine.diffusion.schedule import Schedule
from engine.diffusion.shots import with_features
from engine.diffusion.train import check_weighting, diffusion_loss
from engine.errors import InputError
from engine.progress import Progress, ProgressGen
from engine.training import TrainingRun


@dataclass(frozen=True)
class AdaptConfig:
    steps: int = 250
    lr: float = 2e-4
    batch_size: int = 40  # shots repeated (at different noise levels) to fill a batch
    cond_dropout: float = 0.1
    reg_weight: float = 0.1
    reg_items: int = 10
    seed: int = 0
    max_seconds: float | None = None  # stop early (and keep what was learned) after this long
    precision: str = "auto"
    # The denoiser's Gaussian prior becomes the shots' (``prior.py``): their covariance scaled by
    # prior_spread² plus prior_floor in every direction (normalised units; 0.01 is 0.1 RMS, which
    # decoded 3D shapes tolerate at IoU 0.96).
    prior_spread: float = 0.5
    prior_floor: float = 0.01
    # the loss' weighting over noise levels (``diffusion_loss``); None: the one the model was trained with
    weighting: str | None = None

    def __post_init__(self):
        check_adaptation(self)


def trained_weighting(model: WeightDiffusion) -> str:
    """The loss weighting ``model`` was trained with; files from before it was recorded used x0."""
    return model.meta.get("train", {}).get("recipe", {}).get("weighting", "x0")


def adapt(model: WeightDiffusion, shots: Shots, config: AdaptConfig = AdaptConfig()) -> ProgressGen[WeightDiffusion]:
    """Fine-tune ``model`` on ``shots`` (already in its basin); returns the adapted model.

    Yields ``Progress("adapt", step, steps)``; closing the generator cancels and leaves
    ``model`` untouched.
    """
    k = next(iter(shots.params.values())).shape[0]
    if k == 0:
        raise InputError("no shots to adapt to; give 1 to 20 examples of the new class")
    config = dataclasses.replace(config, weighting=config.weighting or trained_weighting(model))
    check_weighting(config.weighting)
    t0 = time.perf_counter()
    shots = with_features(model, shots)  # the shots' weights and features on the model's device
    x_shots = model.normalise(shots.params)
    cond_shots = shots.features
    denoiser = copy.deepcopy(model.denoiser).train().requires_grad_(True)
    if denoiser.has_prior:
        denoiser.set_prior(shots_prior(x_shots, denoiser.config.prior_rank, config.prior_spread,
                                       config.prior_floor), model.layout)
    opt = torch.optim.AdamW(denoiser.parameters(), lr=config.lr, weight_decay=0.0)
    schedule = Schedule()
    reps = max(1, config.batch_size // k)
    idx = torch.arange(k, device=model.device).repeat(reps)
    run = TrainingRun(config.steps, {}, opt, max_seconds=config.max_seconds, window=20, started=t0)
    while run.running:
        g = torch.Generator().manual_seed(config.seed * 7919 + run.step + 1)
        loss, parts = diffusion_loss(model, denoiser, schedule, x_shots[idx],
                                     None if cond_shots is None else cond_shots[idx], g,
                                     config.cond_dropout, config.reg_weight, config.reg_items, config.precision,
                                     config.weighting)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(denoiser.parameters(), 1.0)
        opt.step()
        metrics = run.end_step(parts)
        yield Progress("adapt", run.step, config.steps, metrics=metrics)
    denoiser.eval().requires_grad_(False)
    meta = dict(model.meta)
    meta["adapt"] = {"recipe": asdict(config), "steps": run.step, "shots": shots.names,
                     "seconds": round(time.perf_counter() - t0, 2), "final": run.metrics()}
    return WeightDiffusion(spec=model.spec, method=model.method, denoiser=denoiser, encoder=model.encoder,
                           mean=model.mean, std=model.std, init=model.init,
                           feature_scale=model.feature_scale, meta=meta, shots=shots)
