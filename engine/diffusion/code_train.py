"""EquiGen stages 2 and 3a in the structured weight space: train on the source codes, adapt to shots.

Loss (``METHOD.md`` §4) on per-element normalised codes: the EDM-weighted x0 error plus
``λ·‖E_φ(INR(x̂0)) − E_φ(INR(x0))‖²``, where INR(·) is the complete network a code stands for
(``SharedBase.inr_params``, differentiable) and E_φ the frozen equivariant encoder over complete
INRs. The condition ψ(x0) is computed once for the split; it is dropped for a share of the items
(classifier-free guidance). ``method="hyperdiffusion"`` trains the same denoiser without
condition, encoder or regulariser, so the comparison differs only by the conditioning.

Adaptation fine-tunes a copy of the denoiser on the shots with the same loss, after the process'
prior becomes the shots' Gaussian (``prior.py``).
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from engine.checks import at_least, check_adaptation, check_training, one_of
from engine.checkpoint import checkpoint_path
from engine.diffusion.code_denoiser import CodeDenoiser, CodeDenoiserConfig
from engine.diffusion.code_model import CodeDiffusion, CodeShots, save_code_model
from engine.diffusion.methods import TRAINING_METHODS
from engine.diffusion.prior import fit_prior, shots_prior
from engine.diffusion.process import DiffusionProcess, ProcessConfig
from engine.encoder.model import WeightEncoder
from engine.errors import InputError
from engine.functional import image_grid
from engine.progress import Progress, ProgressGen
from engine.training import DENOISER_LR_FLOOR, TrainingRun, ema_update, set_lr, warmup_cosine
from engine.weightspace.structured import SharedBase

STD_FLOOR = 0.1  # of the median spread: codes that barely vary would otherwise blow up


@dataclass(frozen=True)
class CodeTrainConfig:
    method: str = "equigen"
    steps: int = 4000
    batch_size: int = 64
    lr: float = 3e-4
    warmup: int = 200
    ema_decay: float = 0.999
    cond_dropout: float = 0.1
    reg_weight: float = 0.1
    reg_items: int = 4  # items per step through E_φ (the costly part)
    field_weight: float = 0.0  # weight of the decoded error (``code_loss``); 0 for 3D
    seed: int = 0
    checkpoint_every: int = 250
    max_minutes: float | None = None
    denoiser: CodeDenoiserConfig = CodeDenoiserConfig()
    process: ProcessConfig = ProcessConfig()

    def __post_init__(self):
        one_of("training method", self.method, TRAINING_METHODS)
        check_training(self)
        at_least("the decoded-field weight", self.field_weight, 0)


@dataclass(frozen=True)
class CodeAdaptConfig:
    # 100 steps of 40 (every shot 4 times a step): ~20 s on 2 cores, so that fitting 10 meshes
    # (~25 s) and adapting stay inside the 45 s an artist waits for the first samples
    steps: int = 100
    lr: float = 2e-4
    batch_size: int = 40
    cond_dropout: float = 0.1
    reg_weight: float = 0.1
    reg_items: int = 4
    field_weight: float = 0.0
    seed: int = 0
    prior_spread: float = 0.5  # the shots' covariance scaled by spread², plus the floor
    prior_floor: float = 0.01
    max_seconds: float | None = None

    def __post_init__(self):
        check_adaptation(self)
        at_least("the decoded-field weight", self.field_weight, 0)


def code_loss(model: CodeDiffusion, denoiser: CodeDenoiser, x0: torch.Tensor, cond: torch.Tensor | None,
              generator: torch.Generator, cond_dropout: float, reg_weight: float, reg_items: int,
              field_weight: float = 0.0) -> tuple[torch.Tensor, dict]:
    """One batch's loss on normalised codes ``x0 (B, D)`` with conditions ``(B, C)`` or None.

    ``field_weight`` adds the error of what the codes draw: the mean squared difference of the
    decoded images of x̂0 and x0 on the spec's pixel grid, weighted over noise levels as the code
    error is. Code elements differ by orders of magnitude in how much they change the image (a
    0.1 error per normalised element costs a glyph 32 dB through the first layer's biases, 42 dB
    through the readout), and an error uniform over elements is speckle in the image.
    """
    proc = model.process
    b = x0.shape[0]
    device = x0.device  # the draws come from a CPU generator: the same on every device
    t = torch.randint(proc.steps, (b,), generator=generator).to(device)
    x_t = proc.add_noise(x0, t, torch.randn(x0.shape, generator=generator).to(device))
    drop = (torch.rand(b, generator=generator) < cond_dropout).to(device) if cond is not None else None
    x0_hat = proc.predict_x0(denoiser(x_t, t, cond, drop), x_t, t)
    err = ((x0_hat - x0) ** 2).mean(1)
    weight = proc.loss_weight(t)
    loss = (err * weight).mean()
    parts = {"mse": float(err.mean().detach()), "edm": float(loss.detach())}
    if field_weight > 0:
        if model.spec.in_dim != 2:
            raise InputError("the decoded-field loss is defined on the pixel grid of 2D specs")
        grid = image_grid(model.spec.grid_size, model.spec.domain).to(device)
        with torch.no_grad():
            target = model.base.outputs(model.denormalise(x0), grid)
        field = ((model.base.outputs(model.denormalise(x0_hat), grid) - target) ** 2).mean(1)
        loss = loss + field_weight * (field * weight).mean()
        parts["field"] = float(field.mean().detach())
    if cond is not None and reg_weight > 0 and model.encoder is not None:
        k = min(reg_items, b)
        reg = ((model.encoder(model.inr_params(x0_hat[:k])) - cond[:k]) ** 2).mean()
        loss = loss + reg_weight * reg
        parts["reg"] = float(reg.detach())
    return loss, parts


def code_statistics(codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-element mean and floored spread ``(D,)`` of source codes ``(N, D)``."""
    std = codes.std(0)
    return codes.mean(0), std.clamp_min(max(1e-6, STD_FLOOR * float(std.median())))


def untrained_model(base: SharedBase, codes: torch.Tensor, encoder: WeightEncoder | None,
                    config: CodeTrainConfig) -> CodeDiffusion:
    """A model over ``base`` whose statistics, prior and ψ scale come from the source codes."""
    if config.method == "equigen" and encoder is None:
        raise InputError("equigen training needs an encoder (make one with 'equigen pretrain')")
    if encoder is not None and encoder.spec != base.spec:
        raise InputError(f"the encoder is for spec {encoder.spec.name!r}, the base is {base.spec.name!r}")
    mean, std = code_statistics(codes)
    enc = encoder.eval().requires_grad_(False) if config.method == "equigen" else None
    cond_dim = enc.config.feature_dim if enc is not None else 0
    process = DiffusionProcess(base.code_dim, config.process)
    model = CodeDiffusion(base=base.requires_grad_(False), method=config.method, process=process,
                          denoiser=CodeDenoiser(base.code_dim, cond_dim, config.denoiser), encoder=enc,
                          mean=mean, std=std, feature_scale=None)
    if process.prior is not None:
        process.set_prior(fit_prior(model.normalise(codes), config.process.prior_rank))
    return model


def _embed(model: CodeDiffusion, codes: torch.Tensor, batch: int = 64) -> torch.Tensor | None:
    if model.encoder is None:
        return None
    return torch.cat([model.features(codes[i:i + batch]) for i in range(0, len(codes), batch)])


def train_codes(base: SharedBase, codes: torch.Tensor, out: str | Path, encoder: WeightEncoder | None = None,
                config: CodeTrainConfig = CodeTrainConfig(), meta: dict | None = None,
                data_id: str = "", device: torch.device | None = None) -> ProgressGen[CodeDiffusion]:
    """Train a model on source codes ``(N, D)`` of ``base`` on ``device`` (the CPU by default)
    and write it to ``out`` (from the CPU: the file is device-free).

    Resumes from ``out + '.ckpt'`` (same settings and ``data_id``; a checkpoint made on one
    device resumes on another).
    """
    t0 = time.perf_counter()
    out = Path(out)
    torch.manual_seed(config.seed)
    model = untrained_model(base, codes, encoder, config).to(device or torch.device("cpu"))
    codes = codes.to(model.device)
    x_all = model.normalise(codes)
    yield Progress("encode", 0, 1, "computing ψ of the source split")
    cond_all = _embed(model, codes)
    if cond_all is not None:
        model.feature_scale = cond_all.std(0)
    denoiser = model.denoiser.train()
    ema = copy.deepcopy(denoiser).eval().requires_grad_(False)
    opt = torch.optim.AdamW(denoiser.parameters(), lr=config.lr, weight_decay=0.0)
    max_seconds = None if config.max_minutes is None else config.max_minutes * 60
    run = TrainingRun(config.steps, {"model": denoiser, "ema": ema}, opt, checkpoint=checkpoint_path(out),
                      header={"config": asdict(config), "data": data_id},
                      checkpoint_every=config.checkpoint_every, max_seconds=max_seconds, started=t0)
    n = len(x_all)
    while run.running:
        step = run.step
        g = torch.Generator().manual_seed(config.seed * 1_000_003 + step)
        set_lr(opt, config.lr * warmup_cosine(step, config.steps, config.warmup, DENOISER_LR_FLOOR))
        idx = torch.randint(n, (config.batch_size,), generator=g).to(model.device)
        loss, parts = code_loss(model, denoiser, x_all[idx], None if cond_all is None else cond_all[idx], g,
                                config.cond_dropout, config.reg_weight, config.reg_items, config.field_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(denoiser.parameters(), 1.0)
        opt.step()
        ema_update(ema, denoiser, config.ema_decay, step)
        metrics = run.end_step(parts)
        yield Progress("train", run.step, config.steps, metrics=metrics)
    model.denoiser = ema
    model.meta = dict(meta or {}) | {"train": {"recipe": asdict(config), "steps": run.step, "source_codes": n,
                                              "seconds": round(time.perf_counter() - t0, 1),
                                              "stopped_by_time_limit": run.stopped_by_time_limit}}
    save_code_model(out, model)
    run.finish()
    return model


def adapt_codes(model: CodeDiffusion, names: list[str], codes: torch.Tensor,
                config: CodeAdaptConfig = CodeAdaptConfig()) -> ProgressGen[CodeDiffusion]:
    """Fine-tune ``model`` on shots given as codes ``(K, D)`` of its base; returns a new model
    that carries them. Closing the generator cancels and leaves ``model`` untouched."""
    k = codes.shape[0]
    if k == 0:
        raise InputError("no shots to adapt to; give 1 to 20 examples of the new class")
    t0 = time.perf_counter()
    codes = codes.to(model.device)
    x_shots = model.normalise(codes)
    features = _embed(model, codes)
    process = copy.deepcopy(model.process)
    if process.prior is not None:
        process.set_prior(shots_prior(x_shots, process.config.prior_rank, config.prior_spread, config.prior_floor))
    denoiser = copy.deepcopy(model.denoiser).train().requires_grad_(True)
    adapted = replace(model, process=process, denoiser=denoiser, shots=CodeShots(list(names), codes, features))
    opt = torch.optim.AdamW(denoiser.parameters(), lr=config.lr, weight_decay=0.0)
    idx = torch.arange(k, device=codes.device).repeat(max(1, config.batch_size // k))
    run = TrainingRun(config.steps, {}, opt, max_seconds=config.max_seconds, window=20, started=t0)
    while run.running:
        g = torch.Generator().manual_seed(config.seed * 7919 + run.step + 1)
        loss, parts = code_loss(adapted, denoiser, x_shots[idx], None if features is None else features[idx], g,
                                config.cond_dropout, config.reg_weight, config.reg_items, config.field_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(denoiser.parameters(), 1.0)
        opt.step()
        metrics = run.end_step(parts)
        yield Progress("adapt", run.step, config.steps, metrics=metrics)
    denoiser.eval().requires_grad_(False)
    adapted.meta = dict(model.meta) | {"adapt": {"recipe": asdict(config), "steps": run.step, "shots": list(names),
                                                 "seconds": round(time.perf_counter() - t0, 2)}}
    return adapted
