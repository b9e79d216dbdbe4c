"""Contrastive pre-training of E_φ (EquiGen stage 1): NT-Xent over two views of each INR, with
same-class items as extra positives by default (``positives="class"``).

Views of an item are weight-space augmentations (random hidden permutations and noise by default;
weight dropout and, for raw-coordinate specs, exact translations and rotations when configured)
of one of its fits; where
the corpus holds fits from other initialisations (``--inits K``), the second view comes from
another fit with probability ``other_init``: functionally equal, differently initialised networks
are the positives EquiGen's motivation is about.

The loop is a progress generator; it checkpoints (atomic safetensors) so that a stopped run
resumes from its last checkpoint, and runs data-parallel under torchrun (gradients all-reduced by
DistributedDataParallel; each process draws its own part of every global batch).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from engine.checks import at_least, one_of, positive, seed
from engine.checkpoint import checkpoint_path
from engine.data.dataset import INRDataset
from engine.data.store import read_stats
from engine.domains import domain_of
from engine.encoder.model import EncoderConfig, WeightEncoder, save_encoder, tensor_stats
from engine.errors import InputError
from engine.functional import Params
from engine.precision import mixed_precision
from engine.progress import Progress, ProgressGen
from engine.spec import INRSpec
from engine.training import TrainingRun, set_lr, warmup_cosine
from engine.weightspace import symmetry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AugmentConfig:
    """Views of an INR. The defaults are what measured best on the glyph corpus (docs/EXPERIMENTS.md): the
    official ±0.2 translations and ±30° rotations, and 2% weight dropout, made held-out k-NN
    worse there (0.88 against 0.95 without them in 2-minute runs), so they are off by default."""

    permute: bool = True
    noise: float = 0.01  # Gaussian noise, in units of each tensor's std
    dropout: float = 0.0  # probability of zeroing a weight
    translate: float = 0.0  # max shift, fraction of the domain's half-width (raw-coordinate specs)
    rotate_degrees: float = 0.0  # max in-plane rotation (2D raw-coordinate specs)
    other_init: float = 0.5  # probability that the second view is another init's fit


@dataclass(frozen=True)
class PretrainConfig:
    epochs: int = 12
    batch_size: int = 256
    # None: the domain's rate (``domain_of(spec).pretrain_lr``)
    lr: float | None = None
    # steps over which the learning rate rises linearly: a tenth of the 804 steps of the glyph
    # recipe (17,400 source items, 12 epochs of 256); the recipes set their own tenth
    warmup: int = 80
    weight_decay: float = 5e-4
    temperature: float = 0.1
    # "class": items of the same source class are positives as well (supervised contrastive);
    # "instance": only views of the same item (the paper's NT-Xent). See the table in docs/EXPERIMENTS.md.
    positives: str = "class"
    # With class positives, each batch is made of groups of this many items of one class, so that
    # every anchor has same-class positives even in small batches (a 3D batch of 32 drawn from 58
    # classes has almost none). 1 = plain shuffling. Measured gain small: 3D glyphs held-out k-NN
    # 0.925 against 0.888 with plain shuffling (one seed each; docs/EXPERIMENTS.md).
    class_group: int = 4
    seed: int = 0
    max_minutes: float | None = None  # stop (and save) after this long
    checkpoint_every: int = 100  # steps
    precision: str = "auto"  # "auto": bf16 autocast where the CPU does bf16 natively
    encoder: EncoderConfig = EncoderConfig()
    augment: AugmentConfig = AugmentConfig()

    def __post_init__(self):
        at_least("pre-training epochs", self.epochs, 1)
        at_least("the pre-training batch size", self.batch_size, 2)
        positive("the pre-training learning rate", self.lr, optional=True)
        at_least("the warm-up steps", self.warmup, 0)
        at_least("the weight decay", self.weight_decay, 0)
        positive("the contrastive temperature", self.temperature)
        one_of("kind of positives", self.positives, ("class", "instance"))
        at_least("the class group size", self.class_group, 1)
        positive("the pre-training time limit", self.max_minutes, optional=True)
        at_least("the checkpoint interval", self.checkpoint_every, 1)
        seed("the pre-training seed", self.seed)

    def to_dict(self) -> dict:
        return asdict(self)


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float,
            groups: torch.Tensor | None = None) -> torch.Tensor:
    """NT-Xent (InfoNCE) over 2N views with cosine similarity; views i and i+N are positives.

    groups ``(N,)``: with it, every other view of the same group is a positive too (supervised
    contrastive, Khosla et al. 2020: the mean log-probability over an anchor's positives). With
    one group per item it is exactly NT-Xent.
    """
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    n = z1.shape[0]
    sim = z @ z.T / temperature
    sim.fill_diagonal_(float("-inf"))
    if groups is None:
        target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
        return F.cross_entropy(sim, target)
    g = torch.cat([groups, groups]).to(z.device)
    positive = (g[:, None] == g[None, :]).fill_diagonal_(False)
    log_prob = F.log_softmax(sim, dim=1).masked_fill(~positive, 0.0)
    return -(log_prob.sum(1) / positive.sum(1)).mean()


class Augmenter:
    """Batched random views of INR weights for one spec."""

    def __init__(self, spec: INRSpec, config: AugmentConfig, tensor_std: torch.Tensor):
        self.spec = spec
        self.config = config
        self.scale = {k: tensor_std[i] for i, (k, _) in enumerate(spec.param_shapes())}
        self.geometric = spec.posenc_freqs == 0

    def __call__(self, params: Params, generator: torch.Generator) -> Params:
        c = self.config
        b = next(iter(params.values())).shape[0]
        out = params
        if self.geometric and c.translate > 0:
            half = (self.spec.domain[1] - self.spec.domain[0]) / 2
            shift = (torch.rand(b, self.spec.in_dim, generator=generator) * 2 - 1) * c.translate * half
            out = symmetry.translate_input(self.spec, out, shift)
        if self.geometric and self.spec.in_dim == 2 and c.rotate_degrees > 0:
            angle = (torch.rand(b, generator=generator) * 2 - 1) * math.radians(c.rotate_degrees)
            out = symmetry.rotate_input(self.spec, out, symmetry.rotation_2d(angle))
        if c.permute:
            out = symmetry.permute_hidden(self.spec, out, symmetry.random_permutations(self.spec, b, generator))
        if c.noise > 0:
            out = symmetry.add_noise(out, self.scale, c.noise, generator)
        if c.dropout > 0:
            out = symmetry.drop_weights(out, c.dropout, generator)
        return out


def epoch_order(item_class: torch.Tensor, group: int, generator: torch.Generator) -> torch.Tensor:
    """A permutation of all items ``(N,)`` made of runs of ``group`` items of one class, the runs
    in random order, then each class's shorter remainder: so every batch from the front whose
    size is a multiple of ``group`` holds whole same-class groups. ``group`` 1 is a plain shuffle."""
    if group <= 1:
        return torch.randperm(len(item_class), generator=generator)
    full, rest = [], []
    for c in torch.unique(item_class).tolist():
        members = torch.nonzero(item_class == c).flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        for run in members.split(group):
            (full if len(run) == group else rest).append(run)
    runs = [full[i] for i in torch.randperm(len(full), generator=generator).tolist()] + rest
    return torch.cat(runs)


def _items_and_fits(ds: INRDataset) -> list[list[int]]:
    """Row indices of each item's fits, first fit first."""
    by_item: dict[str, list[tuple[int, int]]] = {}
    for i, r in enumerate(ds.rows):
        by_item.setdefault(r["item"], []).append((r["init_k"], i))
    return [[i for _, i in sorted(v)] for _, v in sorted(by_item.items())]


def pretrain(
    data: str | os.PathLike, out: str | os.PathLike, config: PretrainConfig = PretrainConfig(),
    rank: int = 0, world: int = 1, device: torch.device | None = None,
) -> ProgressGen[dict]:
    """Pre-train an encoder on a corpus' source split on ``device`` (the CPU by default); writes
    ``out`` (from the CPU) and returns a summary. The random views are made on the CPU (the
    same views on every device) and moved for the forward pass.

    Resumes from ``out + '.ckpt'`` when it exists (same data and settings).
    """
    device = device or torch.device("cpu")
    t0 = time.perf_counter()
    out = Path(out)
    ds = INRDataset(data, split="source")
    if len(ds) < 2:
        raise InputError(f"{data}: the source split has fewer than 2 INRs to learn from")
    spec = ds.spec
    weights = ds.stacked()
    items = _items_and_fits(ds)
    item_class = torch.tensor([ds.class_index(ds.rows[fits[0]]["class"]) for fits in items])
    mean, std = read_stats(data)
    t_mean, t_std = tensor_stats(mean, std, spec)
    torch.manual_seed(config.seed)
    model = WeightEncoder(spec, config.encoder, t_mean, t_std).to(device)
    ddp = model
    if world > 1:
        ddp = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    lr = config.lr if config.lr is not None else domain_of(spec).pretrain_lr
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=config.weight_decay, amsgrad=True)
    per_step = config.batch_size
    local = max(2, per_step // world)
    steps_per_epoch = max(1, len(items) // per_step)
    total = steps_per_epoch * config.epochs
    header = {"config": json.loads(json.dumps(config.to_dict())), "data": str(Path(data).resolve())}
    max_seconds = None if config.max_minutes is None else config.max_minutes * 60
    run = TrainingRun(total, {"model": model}, opt, checkpoint=checkpoint_path(out), header=header,
                      checkpoint_every=config.checkpoint_every, max_seconds=max_seconds, rank=rank, window=20,
                      started=t0)
    if run.resumed_from:
        log.info("resuming pre-training at step %d of %d", run.step, total)
    augment = Augmenter(spec, config.augment, t_std)
    n_items = len(items)
    while run.running:
        step = run.step
        epoch, in_epoch = divmod(step, steps_per_epoch)
        order = epoch_order(item_class, config.class_group if config.positives == "class" else 1,
                            torch.Generator().manual_seed(config.seed * 7919 + epoch))
        start = in_epoch * per_step + rank * local
        idx = order[start : start + local].tolist()
        g = torch.Generator().manual_seed(hash((config.seed, step, rank)) % (2**62))
        first = torch.tensor([items[i][0] for i in idx])
        second = []
        for i in idx:
            fits = items[i]
            if len(fits) > 1 and float(torch.rand(1, generator=g)) < config.augment.other_init:
                second.append(fits[1 + int(torch.randint(len(fits) - 1, (1,), generator=g))])
            else:
                second.append(fits[0])
        second = torch.tensor(second)
        view1 = augment({k: v[first] for k, v in weights.items()}, g)
        view2 = augment({k: v[second] for k, v in weights.items()}, g)
        # Without the warm-up, the first steps at the full rate set the probe MLP on features
        # that fit the source classes only (3D glyphs held-out k-NN 0.61 without, 0.83 with, docs/EXPERIMENTS.md).
        set_lr(opt, lr * warmup_cosine(step, total, config.warmup))
        # One forward over both views: DDP expects one forward per backward.
        with mixed_precision(config.precision, device):
            z = ddp({k: torch.cat([view1[k], view2[k]]).to(device) for k in view1}, project=True)
        z = z.float()
        z1, z2 = z[: len(idx)], z[len(idx) :]
        groups = item_class[idx] if config.positives == "class" else None
        loss = nt_xent(z1, z2, config.temperature, groups)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        metrics = run.end_step({"loss": float(loss.detach())})
        yield Progress("pretrain", run.step, total, metrics={"loss": metrics["loss"], "epoch": float(epoch)})
    summary = {
        "steps": run.step, "steps_planned": total, "epochs": run.step / steps_per_epoch,
        "final_loss": run.metrics().get("loss"),
        "seconds": round(time.perf_counter() - t0, 1), "stopped_by_time_limit": run.stopped_by_time_limit,
        "train_items": n_items, "train_inrs": len(ds), "world_size": world, "lr": lr,
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    if rank == 0:
        save_encoder(out, model, {"pretrain": summary, "config": config.to_dict(), "data": str(data)})
    run.finish()
    return summary

