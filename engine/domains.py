"""Each domain's recipe in one place: every default that differs between images and 3D shapes.

Fitting, the structured space's corpus and shot fits, the encoder's pre-training rate, both
generators' designs, adaptation, sampling and the evaluation's sample counts. Code that needs a
default asks ``domain_of(spec)`` for it; a caller that wants something else replaces fields of
the recipe (``dataclasses.replace(domain_of(spec).adapt, steps=50)``), so the rest of the recipe
stays. The CLI's defaults and help text read from here too.

Why each value is what it is, measured: docs/EXPERIMENTS.md (sections named below).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from engine.diffusion.adapt import AdaptConfig
from engine.diffusion.code_denoiser import CodeDenoiserConfig
from engine.diffusion.code_train import CodeAdaptConfig, CodeTrainConfig
from engine.diffusion.denoiser import DenoiserConfig
from engine.errors import InputError
from engine.fit.images import ImageFitConfig
from engine.fit.meshes import MeshFitConfig
from engine.spec import INRSpec
from engine.weightspace.corpus import StructuredRecipe
from engine.weightspace.structured import BaseConfig, CodeFitConfig


@dataclass(frozen=True)
class CodeSampling:
    """How a structured model of a domain samples by default."""

    guidance: float  # classifier-free guidance scale (1 = none)
    widen_prior: bool  # whether D also widens the adapted prior by 1 + D


@dataclass(frozen=True)
class Domain:
    """Every default of one domain (``"2d"`` images, ``"3d"`` occupancy shapes)."""

    name: str
    # fitting: one image or shape (``equigen fit``, the studio), and corpora / raw-weight shots
    image_fit: ImageFitConfig | None
    mesh_fit: MeshFitConfig | None
    corpus_mesh_fit: MeshFitConfig | None
    # the structured space: how its corpus is made, and the samples a user's mesh shot gets
    structured: StructuredRecipe
    shot_samples: MeshFitConfig | None
    # the encoder's pre-training rate
    pretrain_lr: float
    # raw-weight generators: the denoiser, how weights are scaled, adaptation, guidance
    denoiser: DenoiserConfig
    normalisation: str
    adapt: AdaptConfig
    raw_guidance: float
    # structured generators: training, adaptation and sampling
    code_train: CodeTrainConfig
    code_adapt: CodeAdaptConfig
    code_sampling: CodeSampling
    # ``bench quality``: samples per method, diversity and shot set
    bench_samples: int


# Images. Fitting: 28×28 images reach 30 dB in ~70 steps. Structured space ("A shared SIREN holds
# held-out glyphs in a 369-number code"): every pixel is a sample, so a base step draws few of
# them from many glyphs (the codes need ~200 visits each); a new glyph is fitted on all its
# pixels. Pre-training at 2e-3. Raw weights ("The raw-weight 2D generator"): whole-tensor tokens
# and plain x0-prediction, no skip and no prior (the 3D design gave noise on glyphs), the
# official per-element scale and 250 adaptation steps. Structured generator ("The code is far more
# sensitive in some directions than others"; "Guidance and the widened prior leave the glyph
# manifold"): the decoded-image error at weight 100, a 256-wide, 4-deep denoiser trained 24,000
# steps (4× and 16× the steps moved FID 250 → 246 → 245, within a spread), sampled without
# guidance and without widening the prior, so D only moves ψ.
IMAGE_FIELD_WEIGHT = 100.0
IMAGES = Domain(
    name="2d",
    image_fit=ImageFitConfig(),
    mesh_fit=None,
    corpus_mesh_fit=None,
    structured=StructuredRecipe(
        base=BaseConfig(rank=8, steps=30_000, shapes_per_step=128, points_per_shape=256),
        fit=CodeFitConfig(steps=1000, points_per_shape=784)),
    shot_samples=None,
    pretrain_lr=2e-3,
    denoiser=DenoiserConfig(max_token=1024, skip=False, prior_rank=0),
    normalisation="element",
    adapt=AdaptConfig(),
    raw_guidance=2.0,
    code_train=CodeTrainConfig(steps=24_000, field_weight=IMAGE_FIELD_WEIGHT,
                               denoiser=CodeDenoiserConfig(width=256, depth=4)),
    code_adapt=CodeAdaptConfig(field_weight=IMAGE_FIELD_WEIGHT),
    code_sampling=CodeSampling(guidance=1.0, widen_prior=False),
    bench_samples=64,
)

# 3D shapes. Corpora (and raw-weight shots, fitted like the corpus the generator learned from) use
# half the paper's samples, 4096 points a step with bf16 matmuls where native and a slightly lower
# stop: under 2 s a shape at mean IoU above 0.93 (10.5 s in fp32 with 8192 points). Structured
# space: 24k points near the surface, 8k in a tight band for thin parts, 16k uniform, 20k for IoU
# (a user's shot needs only 4k of those). Pre-training at 5e-4: the 16³ probe layer has ~20× the
# 2D fan-in (3D glyphs held-out k-NN 0.83 at 2e-3, 0.93 at 5e-4). Raw weights: tokens of at most
# the width, the Wiener skip with a rank-64 prior, one scale per tensor (per element, held-out
# shots reached 189 standard deviations), and 120 adaptation steps at batch 10 (a 3D item costs
# 280 tokens against 11). Structured generator: guidance 2 and the widened prior, which is where
# its diversity comes from; adaptation 100 steps of 40.
_STRUCTURED_SAMPLES = MeshFitConfig(surface_points=24_000, fine_points=8_000, uniform_points=16_000,
                                    eval_points=20_000)
SHAPES = Domain(
    name="3d",
    image_fit=None,
    mesh_fit=MeshFitConfig(),
    corpus_mesh_fit=MeshFitConfig(surface_points=50_000, uniform_points=50_000, eval_points=20_000,
                                  points_per_step=4096, target_iou=0.935, max_steps=600, batch_size=16),
    structured=StructuredRecipe(samples=_STRUCTURED_SAMPLES, base=BaseConfig(), fit=CodeFitConfig()),
    shot_samples=dataclasses.replace(_STRUCTURED_SAMPLES, eval_points=4_000),
    pretrain_lr=5e-4,
    denoiser=DenoiserConfig(),
    normalisation="tensor",
    adapt=AdaptConfig(steps=120, batch_size=10, reg_items=4),
    raw_guidance=2.0,
    code_train=CodeTrainConfig(),
    code_adapt=CodeAdaptConfig(),
    code_sampling=CodeSampling(guidance=2.0, widen_prior=True),
    bench_samples=24,
)

DOMAINS = {d.name: d for d in (IMAGES, SHAPES)}


def domain_of(what: INRSpec | int | str) -> Domain:
    """The recipe of a spec's domain, of ``in_dim`` 2 or 3, or of ``"2d"`` / ``"3d"``."""
    key = what if isinstance(what, str) else f"{what.in_dim if isinstance(what, INRSpec) else int(what)}d"
    if key not in DOMAINS:
        raise InputError(f"no recipe for domain {key!r}; the engine has {', '.join(DOMAINS)}")
    return DOMAINS[key]
