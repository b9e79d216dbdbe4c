"""A structured weight space: one shared MLP, a compact code per shape (3D occupancy or 2D image).

Raw per-shape weights are not a shape space: the midpoint of two fitted chairs tears, the
shots' Gaussian makes blobs (shared/docs/METHOD.md §8). Here every shape is a variation of one
shared MLP learned over the source corpus, and what varies is a code of a few thousand numbers:

    W_l(i) = W_l + B_l C_l(i)      (hidden layers: B_l (out, r) shared, C_l(i) (r, in) per shape)
    b_l(i) = per shape              (every bias, the output layer's weights and its bias)

the instance-pattern-composer split of IPC (Kim et al., CVPR 2023) applied to every hidden
layer: each shape composes its own low-rank change of the shared weights from shared patterns.
Measured on held-out families (docs/EXPERIMENTS.md): with the biases and the readout alone a new
family fits to IoU 0.35; low-rank factors per layer take it to 0.85-0.93, near a fine-tune of
every weight.

Each shape is still a complete INR of the base's spec (``full_params``): the same keys and shapes
as any other INR file of that spec, exported and decoded like one. A code is linear in its INR's
weights, so a straight line between two codes is the straight line between their INRs, all of
them variations of one trained network. The code has no neuron-permutation symmetry left (the
shared weights fix the neuron order, and the shared factors B_l fix the basis of C_l).

The shared part is learned as an auto-decoder (DeepSDF): codes and shared weights are optimised
together on the corpus, with a Gaussian penalty on the codes. A new shape is fitted by optimising
its code alone, from the mean code, for a few hundred steps (``fit_codes``).
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from engine.training import TrainingRun, set_lr, warmup_cosine
from engine.errors import InputError, SpecError, clipped
from engine.functional import Params, positional_encoding
from engine.progress import Progress, ProgressGen
from engine.spec import INRSpec
from engine.tensor_files import check_finite, check_module, json_field, read_format_header, read_tensors, write_tensors


@dataclass(frozen=True)
class BaseConfig:
    """Learning the shared part over a corpus; the defaults are the shapes3d recipe, ~50 minutes
    on 2 cores for 2,000 shapes (each code is updated ~300 times)."""

    rank: int = 16  # of each shape's factors C_l (SharedBase)
    steps: int = 20_000
    shapes_per_step: int = 32
    points_per_shape: int = 1024
    lr: float = 1e-3  # shared weights; 1e-2 (a single fit's rate) learned slower on 280 shapes
    code_lr: float = 1e-2  # per-shape codes: the rate a single INR is fitted at
    lr_final: float = 1e-4
    warmup: int = 200
    code_penalty: float = 1e-4  # weight of mean(z²): DeepSDF's zero-mean Gaussian prior on codes
    seed: int = 0


@dataclass(frozen=True)
class CodeFitConfig:
    """Fitting new shapes into a base: codes only. Many small steps beat few large ones at equal
    cost: on held-out lamps and mugs 1,000 steps of 512 points reach IoU 0.94/0.95 in 1.6 s a
    shape, 300 steps of 2,048 points 0.84/0.69 in 2 s (docs/EXPERIMENTS.md).

    ``fit_together`` spends ``together_share`` of the steps on each shape alone from the prior
    mean, then restarts every shape from the group's mean code for the rest at ``together_lr``.
    """

    steps: int = 1000
    points_per_shape: int = 512
    lr: float = 3e-2
    lr_final: float = 1e-3
    code_penalty: float = 1e-4
    seed: int = 0
    together_share: float = 0.4
    together_lr: float = 1e-2


MAX_RANK = 512  # per-layer factors; the recipes use 8 (2D) and 16 (3D)


class SharedBase(torch.nn.Module):
    """The shared part: the hidden layers' weights ``W_l`` and patterns ``B_l``, and the mean code.

    A code ``(N, code_dim)`` holds, as offsets from ``mean_code``: the biases of every hidden
    layer, the output layer's weights and bias, then each hidden layer's factor ``C_l (r, in_l)``
    flattened. ``rank`` r = 0 leaves the hidden weights shared as they are.
    """

    def __init__(self, spec: INRSpec, rank: int = 16, generator: torch.Generator | None = None):
        super().__init__()
        if spec.out_dim != 1 or (spec.activation, spec.output) not in (("relu", "occupancy_logit"), ("sine", "intensity")):
            raise ValueError("the structured space is built for ReLU occupancy and SIREN intensity specs with one output")
        if not 0 < rank <= MAX_RANK:
            raise ValueError(f"the shared part's rank must be 1 to {MAX_RANK}, not {rank}")
        self.spec = spec
        self.rank = rank
        widths = spec.widths
        self.weights = torch.nn.ParameterList()
        self.patterns = torch.nn.ParameterList()
        parts = []
        for i in range(spec.num_layers - 1):
            fan_in, fan_out = widths[i], widths[i + 1]
            if spec.activation == "sine":  # SIREN's scheme, as ``functional.init_params``
                bound = 1.0 / fan_in if i == 0 else math.sqrt(6.0 / fan_in) / spec.w0
            else:
                bound = math.sqrt(6.0 / fan_in)
            w = (torch.rand(fan_out, fan_in, generator=generator) * 2 - 1) * bound
            self.weights.append(torch.nn.Parameter(w))
            self.patterns.append(torch.nn.Parameter(torch.randn(fan_out, rank, generator=generator) / math.sqrt(max(1, rank))))
            parts.append((torch.rand(fan_out, generator=generator) * 2 - 1) / math.sqrt(fan_in))
        last = widths[-2]
        parts.append((torch.rand(last, generator=generator) * 2 - 1) / math.sqrt(last) * 0.1)
        parts.append(torch.zeros(1))
        parts += [torch.zeros(rank * widths[i]) for i in range(spec.num_layers - 1)]
        self.sizes = [p.numel() for p in parts]
        self.mean_code = torch.nn.Parameter(torch.cat(parts))

    @property
    def code_dim(self) -> int:
        return self.mean_code.numel()

    def unpack(self, codes: torch.Tensor):
        """Offsets ``(N, code_dim)`` → hidden biases ``[(N, out_l)]``, readout ``(N, last)``,
        output bias ``(N, 1)`` and factors ``[(N, r, in_l)]``."""
        parts = list((self.mean_code + codes).split(self.sizes, dim=1))
        hidden = self.spec.num_layers - 1
        factors = [c.view(c.shape[0], self.rank, -1) for c in parts[hidden + 2:]]
        return parts[:hidden], parts[hidden], parts[hidden + 1], factors

    def outputs(self, codes: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        """The field at points, as ``functional.forward`` of ``inr_params`` (occupancy logits or
        intensities): codes ``(N, code_dim)``, points ``(N, P, in_dim)`` or ``(P, in_dim)`` → ``(N, P)``."""
        h = positional_encoding(self.spec, points)
        if h.dim() == 2:
            h = h.expand(codes.shape[0], -1, -1)
        biases, readout, out_bias, factors = self.unpack(codes)
        sine = self.spec.activation == "sine"
        for w, pattern, c, b in zip(self.weights, self.patterns, factors, biases):
            pre = h @ w.T + b[:, None]
            if self.rank:
                pre = pre + (h @ c.transpose(1, 2)) @ pattern.T  # h (W + B C)ᵀ without forming B C
            h = torch.sin(self.spec.w0 * pre) if sine else torch.relu(pre)
        return (h @ readout[:, :, None])[..., 0] + out_bias + self.spec.output_offset

    def field_loss(self, codes: torch.Tensor, points: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Per-shape loss ``(N,)`` against targets ``(N, P)``: BCE on occupancy (1 inside), MSE
        on intensities in [0, 1]."""
        out = self.outputs(codes, points)
        if self.spec.output == "occupancy_logit":
            return torch.nn.functional.binary_cross_entropy_with_logits(out, targets, reduction="none").mean(1)
        return ((out - targets) ** 2).mean(1)

    def inr_params(self, codes: torch.Tensor) -> Params:
        """Complete INRs of ``spec`` for ``codes (N, code_dim)``, differentiable in the codes:
        ``{key: (N, *shape)}``."""
        prefix = self.spec.param_prefix
        biases, readout, out_bias, factors = self.unpack(codes)
        out: Params = {}
        for i, (w, pattern, c, b) in enumerate(zip(self.weights, self.patterns, factors, biases)):
            out[f"{prefix}.{i}.weight"] = w + pattern @ c
            out[f"{prefix}.{i}.bias"] = b
        last = self.spec.num_layers - 1
        out[f"{prefix}.{last}.weight"] = readout[:, None, :]
        out[f"{prefix}.{last}.bias"] = out_bias
        return out

    @torch.no_grad()
    def full_params(self, codes: torch.Tensor) -> Params:
        """``inr_params`` as plain tensors, to store, export or decode."""
        return {k: v.detach().clone() for k, v in self.inr_params(codes).items()}

    @torch.no_grad()
    def codes_of(self, params: Params) -> torch.Tensor:
        """The codes ``(N, code_dim)`` of INRs made by this base (the inverse of ``full_params``);
        a weight change outside the patterns' span is projected onto it."""
        prefix = self.spec.param_prefix
        last = self.spec.num_layers - 1
        parts = [params[f"{prefix}.{i}.bias"] for i in range(last)]
        parts += [params[f"{prefix}.{last}.weight"][:, 0, :], params[f"{prefix}.{last}.bias"]]
        for i in range(last):
            delta = params[f"{prefix}.{i}.weight"] - self.weights[i]
            parts.append((torch.linalg.pinv(self.patterns[i]) @ delta).flatten(1))
        return torch.cat(parts, dim=1) - self.mean_code

    def state(self) -> dict[str, torch.Tensor]:
        """The shared part as named tensors on the CPU (for a model file)."""
        return {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}


def _draw(points: torch.Tensor, labels: torch.Tensor, rows: torch.Tensor, n: int,
          generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    idx = torch.randint(0, points.shape[1], (len(rows), n), generator=generator).to(points.device)
    at = rows[:, None].to(points.device)  # index both dimensions at once: no copy of the drawn shapes' samples
    return points[at, idx].float(), labels[at, idx].float()


class CodeTable(torch.nn.Module):
    """One code per corpus shape with a row-wise Adam: only the shapes drawn in a step have a
    gradient, and a dense Adam would keep moving every other code along its stale momentum.
    Buffers only, so a checkpoint stores it like any module."""

    def __init__(self, n: int, dim: int, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        super().__init__()
        self.betas, self.eps = betas, eps
        for name in ("codes", "m", "v"):
            self.register_buffer(name, torch.zeros(n, dim))
        self.register_buffer("visits", torch.zeros(n))

    @torch.no_grad()
    def update(self, rows: torch.Tensor, grad: torch.Tensor, lr: float) -> None:
        b1, b2 = self.betas
        self.visits[rows] += 1
        self.m[rows] = b1 * self.m[rows] + (1 - b1) * grad
        self.v[rows] = b2 * self.v[rows] + (1 - b2) * grad**2
        k = self.visits[rows][:, None]
        step = (self.m[rows] / (1 - b1**k)) / ((self.v[rows] / (1 - b2**k)).sqrt() + self.eps)
        self.codes[rows] -= lr * step


def train_base(spec: INRSpec, points: torch.Tensor, labels: torch.Tensor,
               config: BaseConfig = BaseConfig(), checkpoint: Path | None = None,
               checkpoint_every: int = 500, data_id: str = "", device: torch.device | None = None,
               ) -> ProgressGen[tuple[SharedBase, torch.Tensor, dict]]:
    """Learn the shared part and one code per shape of a corpus (an auto-decoder).

    points ``(N, P, in_dim)`` and labels ``(N, P)`` (occupancy, 1 inside; or pixel values) are
    each shape's training samples in the spec's domain. Returns the base, the codes ``(N, code_dim)`` and a summary. With
    ``checkpoint`` the run saves itself every ``checkpoint_every`` steps and resumes from it
    (same config and ``data_id`` only, on any ``device``: the samples stay on the CPU and each
    step's draw moves there); every step draws from its own seeded generator, so a
    resumed run equals an uninterrupted one.
    """
    t0 = time.perf_counter()
    device = device or torch.device("cpu")
    base = SharedBase(spec, config.rank, torch.Generator().manual_seed(config.seed)).to(device)
    n = points.shape[0]
    table = CodeTable(n, base.code_dim).to(device)
    opt = torch.optim.Adam(base.parameters(), lr=config.lr)
    header = {"config": asdict(config) | {"spec": spec.to_dict()}, "data": data_id}
    run = TrainingRun(config.steps, {"base": base, "codes": table}, opt, checkpoint=checkpoint, header=header,
                      checkpoint_every=checkpoint_every, started=t0)
    floor = config.lr_final / config.lr
    while run.running:
        step = run.step
        g = torch.Generator().manual_seed(config.seed * 1_000_003 + step)
        # the cosine reaches its floor on the last step
        factor = warmup_cosine(step, config.steps - 1, config.warmup, floor)
        set_lr(opt, config.lr * factor)
        code_lr = config.code_lr * warmup_cosine(step, config.steps - 1, 0, floor)
        rows = torch.randperm(n, generator=g)[: config.shapes_per_step]
        p, y = _draw(points, labels, rows, config.points_per_shape, g)  # the corpus' samples stay on the CPU
        p, y, rows = p.to(device), y.to(device), rows.to(device)
        z = table.codes[rows].clone().requires_grad_(True)
        fit_loss = base.field_loss(z, p, y).mean()
        loss = fit_loss + config.code_penalty * (z**2).sum(1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        table.update(rows, z.grad * len(rows), code_lr)  # each code's own loss, not its share
        metrics = run.end_step({"loss": float(fit_loss.detach())})
        if run.step % 25 == 0 or run.step == config.steps:
            yield Progress("train base", run.step, config.steps, metrics=metrics)
    summary = {"config": asdict(config), "shapes": n, "seconds": round(time.perf_counter() - t0, 1),
               "final_loss": run.metrics().get("loss")}
    return base, table.codes.cpu().clone(), summary


def fit_codes(base: SharedBase, points: torch.Tensor, labels: torch.Tensor,
              config: CodeFitConfig = CodeFitConfig(), start: torch.Tensor | None = None,
              ) -> ProgressGen[torch.Tensor]:
    """Codes ``(B, k)`` of new shapes, the shared part frozen.

    points ``(B, P, 3)``, labels ``(B, P)``; ``start (k,)`` or ``(B, k)`` (default zeros, the
    codes' prior mean). Every shape follows its own trajectory (Adam is element-wise).
    """
    g = torch.Generator().manual_seed(config.seed)  # draws on the CPU: the same fit on every device
    device = base.mean_code.device
    points, labels = points.to(device), labels.to(device)
    b = points.shape[0]
    z = torch.zeros(b, base.code_dim, device=device) if start is None else start.to(device).expand(b, -1).clone()
    z.requires_grad_(True)
    opt = torch.optim.Adam([z], lr=config.lr)
    base.requires_grad_(False)
    rows = torch.arange(b, device=device)
    try:
        for step in range(config.steps):
            set_lr(opt, config.lr * warmup_cosine(step, config.steps - 1, 0, config.lr_final / config.lr))
            p, y = _draw(points, labels, rows, config.points_per_shape, g)
            fit_loss = base.field_loss(z, p, y)
            loss = (fit_loss + config.code_penalty * (z**2).sum(1)).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if (step + 1) % 25 == 0:
                yield Progress("fit codes", step + 1, config.steps, metrics={"loss": float(fit_loss.detach().mean())})
    finally:
        base.requires_grad_(True)
    return z.detach().clone()


def fit_together(base: SharedBase, points: torch.Tensor, labels: torch.Tensor,
                 config: CodeFitConfig = CodeFitConfig()) -> ProgressGen[torch.Tensor]:
    """Codes ``(B, k)`` of shapes of one kind (a user's shots, one held-out family), fitted so
    that they share a neighbourhood of the space.

    Fitted alone from the prior mean, two mugs end in distant codes whose midpoint is a torn
    shell; restarted from the group's mean code, they stay near each other and the straight line
    between them stays a mug (held-out mugs: 4 of 4 midpoint pairs one watertight piece against
    2 of 4, at the same fit IoU and cost; docs/EXPERIMENTS.md). points ``(B, P, 3)``, labels
    ``(B, P)``; a single shape is simply fitted.
    """
    alone_steps = max(1, round(config.steps * config.together_share))
    alone = replace(config, steps=alone_steps if points.shape[0] > 1 else config.steps)
    z = yield from fit_codes(base, points, labels, alone)
    if points.shape[0] == 1:
        return z
    rest = replace(config, steps=config.steps - alone_steps, lr=config.together_lr, seed=config.seed + 1)
    return (yield from fit_codes(base, points, labels, rest, start=z.mean(0)))


@torch.no_grad()
def code_iou(base: SharedBase, codes: torch.Tensor, points: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    """Volumetric IoU ``(B,)`` of coded shapes on evaluation points ``(B, E, 3)``, labels ``(B, E)``."""
    pred = base.outputs(codes, points) > 0
    gt = labels > 0.5
    inter = (pred & gt).sum(1).float()
    union = (pred | gt).sum(1).float()
    return torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(inter)).cpu().numpy()


@torch.no_grad()
def code_quality(base: SharedBase, codes: torch.Tensor, points: torch.Tensor, targets: torch.Tensor,
                 ) -> tuple[np.ndarray, str]:
    """How well codes ``(B, k)`` hold their shapes: IoU on occupancy samples, PSNR in dB on image
    pixels (values in [0, 1]); points ``(B, E, in_dim)``, targets ``(B, E)``. Returns the values
    ``(B,)`` and the metric's name as corpora record it ("iou" or "psnr_db")."""
    points, targets = points.to(codes.device), targets.to(codes.device)
    if base.spec.output == "occupancy_logit":
        return code_iou(base, codes, points, targets), "iou"
    mse = ((base.outputs(codes, points).clamp(0, 1) - targets.float()) ** 2).mean(1)
    return (10 * torch.log10(1 / mse.clamp_min(1e-10))).cpu().numpy(), "psnr_db"


BASE_FORMAT = "equigen-shape-base"


def save_base(path: str | os.PathLike, base: SharedBase, meta: dict | None = None) -> Path:
    """Write the shared part to a safetensors file atomically (spec and sizes in the header)."""
    header = {"format": BASE_FORMAT, "spec": base.spec.to_json(), "meta": json.dumps(meta or {}, default=str)}
    return write_tensors(path, base.state(), header)


def base_from_tensors(spec: INRSpec, tensors: dict[str, torch.Tensor]) -> SharedBase:
    """A base of ``spec`` holding ``tensors`` (``SharedBase.state()``'s names); ValueError if
    they do not fit the spec."""
    if "patterns.0" not in tensors or tensors["patterns.0"].dim() != 2:
        raise ValueError("the file holds no shared patterns (patterns.0)")
    base = SharedBase(spec, int(tensors["patterns.0"].shape[1]))
    try:
        base.load_state_dict({k: v.float() for k, v in tensors.items()})
    except RuntimeError as e:
        raise ValueError(f"the base's tensors do not fit spec {spec.name!r}: {str(e).splitlines()[0]}") from None
    return base.requires_grad_(False)


def load_base(path: str | os.PathLike) -> tuple[SharedBase, dict]:
    """A base file back, with its meta; InputError with a hint for anything else."""
    path = Path(path)
    header, shapes = read_format_header(path, BASE_FORMAT, "shape-base file", "not a shape-base file")
    try:
        spec = INRSpec.from_json(header.get("spec", ""))
        rank = shapes["patterns.0"][0][1]
        check_module(lambda: SharedBase(spec, rank), shapes, "", str(path), InputError)
    except (SpecError, KeyError, IndexError, ValueError) as e:
        raise InputError(f"{path}: damaged shape-base file ({clipped(str(e))})") from None
    meta = json_field(header, "meta", str(path), dict, InputError, required=False, default={})
    _, tensors = read_tensors(path, InputError)
    check_finite(tensors, str(path), InputError)
    return base_from_tensors(spec, tensors), meta