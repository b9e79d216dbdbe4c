"""EquiGen stage 3b: diverse generation from shots, and the baselines, in one sampler.

Conditions (``method="equigen"``): sample i starts from shot ``i mod K``'s feature ψ_i and moves
within the equivariant feature space by

    c_i = ψ_i + D · (V diag(σ) z_i + ρ · s ⊙ ε_i),   z_i ~ N(0, I_r), ε_i ~ N(0, I_C),

where V (C × r) holds the principal directions of the shots' features and σ their standard
deviations along them (r ≤ K − 1), s is the per-dimension spread of ψ over the training corpus,
ρ = ``isotropic`` (0.1) a small isotropic part that also gives a single shot somewhere to go, and
D ∈ [0, 1] is the diversity control. D = 0 conditions on the shots themselves. Blending conditions
on ``(1 − α) ψ_a + α ψ_b`` for α evenly spaced in [0, 1].

In a denoiser with a Gaussian prior (``prior.py``), D also widens the shots' Gaussian that
adaptation gave it, for ``equigen`` and for ``hyperdiffusion`` alike (so the two differ only by the
conditioning): its spread beyond the floor grows by 1 + D (``Denoiser.widened_variance``), so with
the default adaptation spread of 0.5, D = 1 samples with the shots' whole covariance (wider still
broke thin 3D parts apart). Measured by ``equigen bench quality`` on 3D held-out mugs and lamps:
from D = 0 to 1, MMD 15.1 → 12.1 and COV 10% → 15% (HyperDiffusion, widened alike: 15.2 → 13.8);
without the widening D moved 3D samples by nothing measurable (MMD 15.4, 14.9, 14.8; COV 10%).

Sampling is DDIM (η = 0, ``steps`` steps) with classifier-free guidance; every step is yielded,
and the same seed gives the same output. Baselines: ``equigen-no-perturb`` (D forced to 0),
``hyperdiffusion`` (an unconditional model adapted to the shots, sampled from noise), and
``shots-noise`` (each shot plus D · N(0, 1) per normalised weight, i.e. D corpus standard
deviations of noise per weight).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch

from engine.checks import seed, whole
from engine.diffusion.methods import GENERATION_METHODS, check_method, method_named
from engine.diffusion.model_file import Shots, WeightDiffusion
from engine.diffusion.schedule import Schedule
from engine.diffusion.tokens import from_tokens, to_tokens
from engine.domains import domain_of
from engine.errors import InputError
from engine.functional import Params
from engine.precision import mixed_precision
from engine.progress import Progress, ProgressGen

__all__ = ["GENERATION_METHODS", "GenerateConfig", "sample", "sampling_conditions"]



@dataclass(frozen=True)
class GenerateConfig:
    n: int = 16
    diversity: float = 0.5
    seed: int = 0
    method: str | None = None  # a name of ``methods.METHODS``; None: the method the model was trained with
    steps: int = 50  # DDIM steps
    guidance: float | None = None  # classifier-free guidance scale (1 = none); None: the model's own
    isotropic: float = 0.1
    blend: tuple[int, int] | None = None  # shot indices to interpolate between
    precision: str = "auto"

    def __post_init__(self):
        if self.method is not None:
            method_named(self.method)
        whole("the number of samples", self.n, 1, 10_000)
        whole("the denoising steps", self.steps, 1, 1000)
        seed("the sampling seed", self.seed)
        if not (math.isfinite(self.diversity) and 0 <= self.diversity <= 1):
            raise InputError(f"diversity must be between 0 and 1, got {self.diversity}")
        if self.guidance is not None and not (math.isfinite(self.guidance) and 0 <= self.guidance <= 20):
            raise InputError(f"the guidance scale must be between 0 and 20 (1 = none), got {self.guidance}")
        if not (math.isfinite(self.isotropic) and self.isotropic >= 0):
            raise InputError(f"the isotropic share of the perturbation must be 0 or more, got {self.isotropic}")

    def for_model(self, model_method: str, has_shots: bool) -> "GenerateConfig":
        """This config with its method named (the model's own when None), after checking that a
        model trained as ``model_method`` can run it."""
        config = replace(self, method=self.method or model_method)
        check_method(config.method, model_method, has_shots, blend=config.blend is not None)
        return config


def perturbed_conditions(features: torch.Tensor, n: int, diversity: float, feature_scale: torch.Tensor | None,
                         isotropic: float, generator: torch.Generator) -> torch.Tensor:
    """``n`` conditions ``(n, C)`` around the shots' features ``(K, C)``; see the module docstring."""
    k, c = features.shape
    device = features.device
    base = features[torch.arange(n, device=device) % k]
    if diversity <= 0:
        return base.clone()
    principal = torch.zeros(n, c, device=device)
    if k > 1:
        centred = features - features.mean(0)
        _, s, vh = torch.linalg.svd(centred, full_matrices=False)
        sigma = s / (k - 1) ** 0.5
        keep = sigma > 1e-6 * max(float(sigma.max()), 1e-12)
        z = torch.randn(n, int(keep.sum()), generator=generator).to(device)  # drawn on the CPU: same on every device
        principal = (z * sigma[keep]) @ vh[keep]
    scale = feature_scale if feature_scale is not None else features.std(0, unbiased=False).clamp_min(1e-6)
    iso = isotropic * scale * torch.randn(n, c, generator=generator).to(device)
    return base + diversity * (principal + iso)


def blended_conditions(features: torch.Tensor, pair: tuple[int, int], n: int) -> torch.Tensor:
    """``n`` conditions evenly spaced from ψ_a to ψ_b (both ends included), ``(n, C)``."""
    a, b = pair
    k = features.shape[0]
    if not (0 <= a < k and 0 <= b < k):
        raise InputError(f"blend needs two shot numbers between 0 and {k - 1}, got {a} and {b}")
    alpha = (torch.linspace(0, 1, n)[:, None] if n > 1 else torch.zeros(1, 1)).to(features.device)
    return (1 - alpha) * features[a] + alpha * features[b]


def sampling_conditions(features: torch.Tensor | None, feature_scale: torch.Tensor | None,
                        config: GenerateConfig, generator: torch.Generator) -> torch.Tensor | None:
    """The conditions ``(n, C)`` of ``config.method`` from the shots' features ``(K, C)``: None for
    the unconditional baseline, a blend, or the shots' features perturbed by the diversity."""
    method = method_named(config.method)
    if not method.conditioned:
        return None
    if features is None:
        raise InputError("the shots carry no encoder features; adapt an EquiGen model to them first")
    if config.blend is not None:
        return blended_conditions(features, config.blend, config.n)
    d = config.diversity if method.uses_diversity else 0.0
    return perturbed_conditions(features, config.n, d, feature_scale, config.isotropic, generator)


def sample(model: WeightDiffusion, shots: Shots | None = None,
           config: GenerateConfig = GenerateConfig()) -> ProgressGen[Params]:
    """Generate ``config.n`` INRs; returns their weights ``{key: (n, *shape)}``.

    shots: defaults to the shots the model was adapted to (features included). Yields
    ``Progress("sample", step, steps)`` after every DDIM step.
    """
    shots = shots if shots is not None else model.shots
    config = config.for_model(model.method, shots is not None)
    g = torch.Generator().manual_seed(config.seed)  # noise is drawn on the CPU: one seed, one set of shapes
    p = model.mean.numel()
    device = model.device
    if method_named(config.method).samples is None:  # shots-noise: the shots alone
        k = next(iter(shots.params.values())).shape[0]
        x = model.normalise({k_: v.to(device) for k_, v in shots.params.items()})[torch.arange(config.n, device=device) % k]
        x = x + config.diversity * torch.randn(config.n, p, generator=g).to(device)
        yield Progress("sample", 1, 1)
        return model.denormalise(x)
    cond = sampling_conditions(shots.features if shots is not None else None, model.feature_scale, config, g)
    noise = torch.randn(config.n, p, generator=g).to(device)
    if config.blend is not None:
        noise = noise[:1].expand(config.n, -1).clone()  # one noise: the blend alone varies
    layout = model.layout
    den = model.denoiser
    widens = method_named(config.method).widens_prior and config.blend is None and model.shots is not None
    widen = 1 + config.diversity if widens else 1.0
    guidance = domain_of(model.spec).raw_guidance if config.guidance is None else config.guidance
    guided = cond is not None and guidance != 1.0

    @torch.inference_mode()
    def predict_x0(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        tokens = to_tokens(layout, x)
        with mixed_precision(config.precision, device):
            if guided:
                drop = torch.arange(2 * len(t), device=device) >= len(t)  # the second half unconditioned
                out = den(torch.cat([tokens, tokens]), torch.cat([t, t]), torch.cat([cond, cond]), drop,
                          prior_widen=widen).float()
                c, u = out.chunk(2)
                out = u + guidance * (c - u)
            else:
                out = den(tokens, t, cond, prior_widen=widen).float()
        return from_tokens(layout, out)

    gen = Schedule().ddim(predict_x0, noise, config.steps)
    try:
        while True:
            i, total, _ = next(gen)
            yield Progress("sample", i, total)
    except StopIteration as stop:
        x = stop.value
    return model.denormalise(x)
