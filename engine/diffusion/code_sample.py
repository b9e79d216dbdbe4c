"""EquiGen stage 3b in the structured weight space: diverse codes from an adapted model.

A plain loop over ``DiffusionProcess.step`` (DDIM, η = 0) that yields progress after every step.
Conditions, diversity and the baselines are those of the raw-weight sampler (``generate.py``):
``equigen`` conditions sample i on shot i mod K's feature ψ moved within the shots' principal
feature subspace by D; ``equigen-no-perturb`` forces D = 0; ``hyperdiffusion`` samples an
unconditional model adapted alike; ``shots-noise`` adds D · N(0, 1) per normalised code number to
the shots. For ``equigen`` and ``hyperdiffusion`` in 3D, D also widens the adapted prior by 1 + D
(``code_sampling``: each domain's defaults).
"""

from __future__ import annotations


import torch

from engine.diffusion.code_model import CodeDiffusion
from engine.diffusion.generate import GenerateConfig, sampling_conditions
from engine.diffusion.methods import method_named
from engine.domains import domain_of
from engine.progress import Progress, ProgressGen


def sample_codes(model: CodeDiffusion, config: GenerateConfig = GenerateConfig()) -> ProgressGen[torch.Tensor]:
    """``config.n`` codes ``(n, D)`` of ``model.base``; yields ``Progress("sample", i, steps)``."""
    config = config.for_model(model.method, model.shots is not None)
    method = method_named(config.method)
    g = torch.Generator().manual_seed(config.seed)  # noise is drawn on the CPU: one seed, one set of shapes
    d = model.base.code_dim
    device = model.mean.device
    shots = model.shots
    if method.samples is None:  # shots-noise: the shots alone
        k = shots.codes.shape[0]
        x = model.normalise(shots.codes)[torch.arange(config.n, device=device) % k]
        x = x + config.diversity * torch.randn(config.n, d, generator=g).to(device)
        yield Progress("sample", 1, 1)
        return model.denormalise(x)
    cond = sampling_conditions(shots.features if shots is not None else None, model.feature_scale, config, g)
    x = torch.randn(config.n, d, generator=g).to(device)
    if config.blend is not None:
        x = x[:1].expand(config.n, -1).clone()
    defaults = domain_of(model.spec).code_sampling
    widens = defaults.widen_prior and method.widens_prior and config.blend is None and shots is not None
    widen = 1 + config.diversity if widens else 1.0
    guidance = defaults.guidance if config.guidance is None else config.guidance
    guided = cond is not None and guidance != 1.0
    proc, den = model.process, model.denoiser
    ts = proc.timesteps(config.steps)
    with torch.inference_mode():
        for i, t in enumerate(ts):
            tt = torch.full((config.n,), t, dtype=torch.long, device=device)
            if guided:
                drop = torch.arange(2 * config.n, device=device) >= config.n  # the second half unconditioned
                out = den(torch.cat([x, x]), torch.cat([tt, tt]), torch.cat([cond, cond]), drop)
                c, u = out.chunk(2)
                out = u + guidance * (c - u)
            else:
                out = den(x, tt, cond)
            x0_hat = proc.predict_x0(out, x, tt, widen)
            x = proc.step(x, x0_hat, t, ts[i + 1] if i + 1 < len(ts) else None)
            yield Progress("sample", i + 1, len(ts))
    return model.denormalise(x)
