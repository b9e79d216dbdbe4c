"""EquiGen stage 2: train the weight-space diffusion model on a corpus' source split.

Loss (``METHOD.md`` §4): ``‖x̂0 − x0‖² + λ·‖E_φ(x̂0) − E_φ(x0)‖²`` on per-element normalised weights,
with the pre-trained encoder E_φ frozen (its parameters get no gradient; only x̂0 does) and the
condition ψ(x0) = E_φ(x0) computed once for the whole split. The condition is dropped for a
fraction of the items (classifier-free guidance). The HyperDiffusion baseline (``method=
"hyperdiffusion"``) is the same denoiser without condition, encoder or regulariser.

A progress generator with checkpoints (``OUT.ckpt``: weights, EMA, optimiser, step) and resume,
data-parallel under torchrun (gradients all-reduced; each process draws its own batch).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from engine.checks import at_least, check_training, one_of
from engine.checkpoint import checkpoint_path
from engine.data.dataset import INRDataset
from engine.data.store import CorpusPaths, read_manifest, read_stats
from engine.diffusion.denoiser import Denoiser, DenoiserConfig
from engine.diffusion.methods import TRAINING_METHODS
from engine.diffusion.model_file import WeightDiffusion, save_model
from engine.diffusion.prior import fit_prior
from engine.diffusion.schedule import Schedule
from engine.diffusion.tokens import flatten, to_tokens, from_tokens, token_layout
from engine.encoder.evaluate import embed
from engine.encoder.model import load_encoder
from engine.errors import InputError
from engine.inr_io import load_inr
from engine.precision import mixed_precision
from engine.progress import Progress, ProgressGen
from engine.spec import INRSpec
from engine.training import DENOISER_LR_FLOOR, TrainingRun, ema_update, set_lr, warmup_cosine


@dataclass(frozen=True)
class TrainConfig:
    method: str = "equigen"
    steps: int = 6000
    batch_size: int = 64
    lr: float = 3e-4
    weight_decay: float = 0.0
    warmup: int = 200
    ema_decay: float = 0.999
    cond_dropout: float = 0.1  # share of items trained without condition (for guidance)
    reg_weight: float = 0.1  # λ of the equivariance regulariser
    reg_items: int = 16  # items per step that the regulariser sees (E_φ is the costly part)
    seed: int = 0
    checkpoint_every: int = 250
    max_minutes: float | None = None
    precision: str = "auto"
    normalisation: str = "auto"  # "element", "tensor" or "auto" (see normalisation_scale)
    weighting: str = "edm"  # "edm" or "x0": the loss weight over noise levels (see diffusion_loss)
    # fields of the domain's denoiser (``domain_of(spec).denoiser``) to change, e.g. {"width": 64}
    denoiser: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        one_of("training method", self.method, TRAINING_METHODS)
        check_training(self)
        at_least("the weight decay", self.weight_decay, 0)
        one_of("weight normalisation", self.normalisation, ("auto", "element", "tensor"))
        one_of("loss weighting", self.weighting, ("edm", "x0"))

    def to_dict(self) -> dict:
        return asdict(self)


WEIGHTINGS = ("edm", "x0")


def check_weighting(weighting: str) -> None:
    if weighting not in WEIGHTINGS:
        raise InputError(f"unknown loss weighting {weighting!r}; choose one of {', '.join(WEIGHTINGS)}")


def diffusion_loss(model: WeightDiffusion, denoiser, schedule: Schedule, x0: torch.Tensor,
                   cond: torch.Tensor | None, generator: torch.Generator, cond_dropout: float,
                   reg_weight: float, reg_items: int, precision: str,
                   weighting: str = "edm") -> tuple[torch.Tensor, dict]:
    """One batch's loss: x0 ``(B, P)`` normalised, cond ``(B, C)`` = ψ(x0) or None.

    ``weighting`` "x0" is the plain x0 error. "edm" divides each item's error by c_out², the
    square of the network's share of x̂0 (``Denoiser``: √(1−ᾱ_t) with the skip, 1 without), so
    the network's own output is fitted equally at every noise level (Karras et al. 2022). With
    the skip and plain x0 error, the network's part at t ≤ 100 weighs ≤ 2.5% and 3D denoisers
    learned to remove almost none of x_t's noise there; with "edm" they remove some (docs/EXPERIMENTS.md,
    *Denoiser*). Returns the loss and its parts as floats (``mse`` is the x0 error whatever the
    weighting). The regulariser's gradient reaches x̂0 only.
    """
    layout = model.layout
    b = x0.shape[0]
    device = x0.device  # the draws come from a CPU generator: the same on every device
    t = torch.randint(schedule.steps, (b,), generator=generator).to(device)
    noise = torch.randn(x0.shape, generator=generator).to(device)
    x_t = schedule.q_sample(x0, t, noise)
    drop = (torch.rand(b, generator=generator) < cond_dropout).to(device) if cond is not None else None
    with mixed_precision(precision, device):
        pred = denoiser(to_tokens(layout, x_t), t, cond, drop)
    x0_hat = from_tokens(layout, pred.float())
    err = ((x0_hat - x0) ** 2).mean(1)
    parts = {"mse": float(err.mean().detach())}
    if weighting == "edm" and model.denoiser.config.skip:
        loss = (err / (1 - schedule.abar.to(device)[t])).mean()
        parts["edm"] = float(loss.detach())
    else:
        loss = err.mean()
    if cond is not None and reg_weight > 0 and model.encoder is not None:
        k = min(reg_items, b)
        with mixed_precision(precision, device):
            psi_hat = model.encoder(model.denormalise(x0_hat[:k]))
        reg = ((psi_hat.float() - cond[:k]) ** 2).mean()
        loss = loss + reg_weight * reg
        parts["reg"] = float(reg.detach())
    return loss, parts


# Weights that barely move across the source fits (e.g. of neurons the source shapes never use)
# have a spread near zero; dividing by it turns a new class' ordinary change there into values of
# hundreds of standard deviations. Flooring the spread (STD_FLOOR) cured the worst of it, but
# held-out 3D families still reached 189 (lamps) against 26 for any source shape, and adapted
# lamp samples decoded to nothing. One spread per tensor keeps held-out shots as in-range as source
# shapes (lamps: max 27). 2D keeps the official per-element scheme, measured to work on glyphs.
STD_FLOOR = 0.1  # of the median spread
NORMALISATIONS = ("auto", "element", "tensor")


def resolve_normalisation(mode: str, spec: INRSpec) -> str:
    """``auto`` → the domain's scheme: ``tensor`` for 3D specs, ``element`` (the official one) for 2D."""
    from engine.domains import domain_of  # the recipes import this module

    if mode not in NORMALISATIONS:
        raise InputError(f"unknown normalisation {mode!r}; choose one of {', '.join(NORMALISATIONS)}")
    return domain_of(spec).normalisation if mode == "auto" else mode


def normalisation_scale(std: torch.Tensor, tensor_of: torch.Tensor | None = None,
                        mode: str = "element") -> torch.Tensor:
    """The per-element scale ``(P,)`` the denoiser works in, from the corpus spread ``std (P,)``.

    ``element``: each element's spread, floored at ``STD_FLOOR`` times the median spread.
    ``tensor``: every element of a tensor shares its root-mean-square spread; ``tensor_of (P,)``
    says which tensor each element belongs to.
    """
    if mode == "element":
        return std.clamp_min(max(1e-5, STD_FLOOR * float(std.median())))
    if mode != "tensor":
        raise ValueError(f"unknown normalisation {mode!r}; resolve 'auto' with resolve_normalisation")
    if tensor_of is None:
        raise ValueError("tensor normalisation needs tensor_of, the tensor index of each element")
    sums = torch.zeros(int(tensor_of.max()) + 1, dtype=std.dtype).index_add_(0, tensor_of, std**2)
    counts = torch.bincount(tensor_of).to(std.dtype)
    return (sums / counts).sqrt().clamp_min(1e-5)[tensor_of]


def load_corpus_for_training(data: str | os.PathLike, encoder_path: str | os.PathLike | None,
                             method: str, denoiser: dict | None = None,
                             normalisation: str = "auto") -> tuple[WeightDiffusion, torch.Tensor, dict]:
    """An untrained model for ``data``, the normalised source-split weights ``(N, P)`` and the
    raw weights ``{key: (N, *shape)}``. ``denoiser``: fields of the domain's denoiser to change."""
    from engine.domains import domain_of  # the recipes import this module

    if method not in TRAINING_METHODS:
        raise InputError(f"unknown training method {method!r}; choose one of {', '.join(TRAINING_METHODS)}")
    manifest = read_manifest(data)
    recipe = domain_of(int(manifest["spec"]["in_dim"])).denoiser
    unknown = set(denoiser or {}) - {f.name for f in dataclasses.fields(DenoiserConfig)}
    if unknown:
        raise InputError(f"the denoiser has no setting {', '.join(sorted(unknown))}")
    config = dataclasses.replace(recipe, **(denoiser or {}))
    if config.prior_rank < 0:
        raise InputError(f"the prior's rank must be 0 (no prior) or more, got {config.prior_rank}")
    paths = CorpusPaths(Path(data))
    if manifest.get("init_mode") != "shared" or not paths.init.exists():
        raise InputError(f"{data}: weight diffusion needs a corpus fitted from one shared init "
                         "(build it with the default --init-mode shared)")
    ds = INRDataset(data, split="source", init_k=0)
    if len(ds) < 2:
        raise InputError(f"{data}: the source split has fewer than 2 INRs to learn from")
    spec = ds.spec
    encoder = None
    if method == "equigen":
        if encoder_path is None:
            raise InputError("equigen training needs --encoder (make one with 'equigen pretrain')")
        encoder, _ = load_encoder(encoder_path)
        if encoder.spec != spec:
            raise InputError(f"{encoder_path}: the encoder is for spec {encoder.spec.name!r}, "
                             f"the corpus holds {spec.name!r}")
        encoder.requires_grad_(False)
    layout = token_layout(spec, config.token_numbers)
    mean, std = read_stats(data)
    flat_mean = flatten(layout, {k: v[None] for k, v in mean.items()})[0]
    scheme = resolve_normalisation(normalisation, spec)
    tensor_of = flatten(layout, {k: torch.full((1, *v.shape), float(j)) for j, (k, v) in enumerate(std.items())})[0]
    flat_std = normalisation_scale(flatten(layout, {k: v[None] for k, v in std.items()})[0],
                                   tensor_of.long(), scheme)
    cond_dim = encoder.config.feature_dim if encoder is not None else 0
    model = WeightDiffusion(
        spec=spec, method=method, denoiser=Denoiser(layout, cond_dim, config), encoder=encoder,
        mean=flat_mean, std=flat_std, init=load_inr(paths.init).batched(), feature_scale=None,
        meta={"classes": {"source": manifest["source_classes"], "target": manifest["target_classes"]},
              "corpus": str(data), "corpus_kind": manifest["kind"], "normalisation": scheme},
    )
    params = ds.stacked()
    x = model.normalise(params)
    if model.denoiser.has_prior:
        model.denoiser.set_prior(fit_prior(x, config.prior_rank), layout)
    return model, x, params


def train(data: str | os.PathLike, out: str | os.PathLike, encoder_path: str | os.PathLike | None = None,
          config: TrainConfig = TrainConfig(), rank: int = 0, world: int = 1,
          device: torch.device | None = None) -> ProgressGen[dict]:
    """Train a model on the source split of ``data`` on ``device`` (the CPU by default) and write
    it to ``out`` (from the CPU); returns a summary.

    Resumes from ``out + '.ckpt'`` when it exists (same data and settings).
    """
    t0 = time.perf_counter()
    out = Path(out)
    check_weighting(config.weighting)
    torch.manual_seed(config.seed)
    model, x_all, params = load_corpus_for_training(data, encoder_path, config.method, config.denoiser,
                                                     config.normalisation)
    config = dataclasses.replace(config, denoiser=dataclasses.asdict(model.denoiser.config))  # resolved
    cond_all = None
    if model.encoder is not None:
        yield Progress("encode", 0, 1, "computing ψ of the source split")
        cond_all = embed(model.encoder, params)
        model.feature_scale = cond_all.std(0)
    del params
    model = model.to(device or torch.device("cpu"))
    x_all = x_all.to(model.device)
    cond_all = None if cond_all is None else cond_all.to(model.device)
    denoiser = model.denoiser.train()
    ema = copy.deepcopy(denoiser).eval().requires_grad_(False)
    ddp = denoiser
    if world > 1:
        ddp = torch.nn.parallel.DistributedDataParallel(
            denoiser, device_ids=[model.device.index] if model.device.type == "cuda" else None)
    opt = torch.optim.AdamW(denoiser.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    header = {"config": json.loads(json.dumps(config.to_dict())), "data": str(Path(data).resolve()),
              "encoder": str(encoder_path)}
    max_seconds = None if config.max_minutes is None else config.max_minutes * 60
    run = TrainingRun(config.steps, {"model": denoiser, "ema": ema}, opt, checkpoint=checkpoint_path(out),
                      header=header, checkpoint_every=config.checkpoint_every, max_seconds=max_seconds,
                      rank=rank, started=t0)
    schedule = Schedule()
    n = x_all.shape[0]
    local = max(1, config.batch_size // world)
    while run.running:
        step = run.step
        g = torch.Generator().manual_seed(config.seed * 1_000_003 + step * 131 + rank)
        idx = torch.randint(n, (local,), generator=g).to(model.device)
        set_lr(opt, config.lr * warmup_cosine(step, config.steps, config.warmup, DENOISER_LR_FLOOR))
        loss, parts = diffusion_loss(model, ddp, schedule, x_all[idx], None if cond_all is None else cond_all[idx],
                                     g, config.cond_dropout, config.reg_weight, config.reg_items, config.precision,
                                     config.weighting)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(denoiser.parameters(), 1.0)
        opt.step()
        ema_update(ema, denoiser, config.ema_decay, step)
        metrics = run.end_step(parts)
        yield Progress("train", run.step, config.steps, metrics=metrics)
    summary = {
        "method": config.method, "steps": run.step, "steps_planned": config.steps,
        "seconds": round(time.perf_counter() - t0, 1), "stopped_by_time_limit": run.stopped_by_time_limit,
        "train_inrs": n, "world_size": world, "final": run.metrics(),
        "parameters": sum(p.numel() for p in denoiser.parameters()),
    }
    if rank == 0:
        model.denoiser = ema
        model.meta["train"] = {"recipe": config.to_dict(), "summary": summary,
                               "encoder_file": str(encoder_path) if encoder_path else None}
        save_model(out, model)
    run.finish()
    return summary

