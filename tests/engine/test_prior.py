"""The denoiser's Gaussian prior: the Wiener filter, its fits, and where it lives in a model."""

from __future__ import annotations

import dataclasses

import torch

from engine.diffusion.adapt import AdaptConfig, adapt
from engine.diffusion.denoiser import Denoiser, DenoiserConfig
from engine.diffusion.generate import GenerateConfig, sample
from engine.diffusion.model_file import load_model, save_model
from engine.diffusion.prior import fit_prior, shots_prior, wiener
from engine.diffusion.shots import load_shots
from engine.diffusion.tokens import from_tokens, to_tokens, token_layout
from engine.progress import drive
from engine.spec import MNIST_SIREN


def _covariance(prior) -> torch.Tensor:
    b, v = prior.basis.double(), prior.variance.double()
    p = prior.mean.numel()
    return b.T @ torch.diag(v - prior.floor) @ b + prior.floor * torch.eye(p, dtype=torch.float64)


def _low_rank_data(n: int = 300, p: int = 24) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    mix = 2 * torch.randn(p, 3, generator=g)
    return torch.randn(n, 3, generator=g) @ mix.T + 0.2 * torch.randn(n, p, generator=g) + 1.5


def test_wiener_filter_is_the_gaussian_posterior_mean():
    x = _low_rank_data()
    prior = fit_prior(x, 5)
    cov = _covariance(prior)
    assert float((cov - torch.cov(x.double().T)).abs().max()) < 0.05 * float(cov.abs().max())
    g = torch.Generator().manual_seed(1)
    x_t = torch.randn(3, x.shape[1], generator=g)
    a = torch.tensor([0.1, 0.6, 0.99], dtype=torch.float64)
    eye = torch.eye(x.shape[1], dtype=torch.float64)
    mu = prior.mean.double()
    expected = torch.stack([mu + ai * cov @ torch.linalg.solve(ai**2 * cov + (1 - ai**2) * eye, xi.double() - ai * mu)
                            for ai, xi in zip(a, x_t)])
    got = wiener(x_t[:, None], a.float(), prior.mean[None], prior.basis[:, None], prior.variance,
                 torch.tensor(prior.floor))[:, 0]
    assert torch.allclose(got.double(), expected, atol=1e-4)


def test_fits_pad_to_the_rank_and_a_single_shot_is_its_own_mean():
    x = _low_rank_data(n=4)
    prior = fit_prior(x, 10)  # 4 items span 3 directions: the rest are zero rows
    assert prior.basis.shape == (10, x.shape[1]) and float(prior.basis[3:].abs().max()) == 0
    shots = shots_prior(x, 10, spread=0.5, floor=0.01)
    assert torch.allclose(shots.mean, x.mean(0)) and shots.floor == 0.01
    # spread scales the shots' covariance; the floor adds to every direction
    centred = (x - x.mean(0)).double()
    assert torch.allclose(_covariance(shots), 0.25 * centred.T @ centred / 3 + 0.01 * torch.eye(x.shape[1],
                          dtype=torch.float64), atol=1e-4)
    one = shots_prior(x[:1], 10, spread=0.5, floor=0.01)
    assert torch.equal(one.mean, x[0]) and float(one.basis.abs().max()) == 0


def test_unfitted_prior_is_the_plain_skip_and_a_fitted_one_denoises_its_data():
    layout = token_layout(MNIST_SIREN, 32)
    config = DenoiserConfig(width=32, depth=1, heads=2, prior_rank=8)
    torch.manual_seed(0)
    den = Denoiser(layout, 0, config)
    plain = Denoiser(layout, 0, dataclasses.replace(config, prior_rank=0))
    plain.load_state_dict({k: v for k, v in den.state_dict().items() if not k.startswith("prior_")})
    torch.nn.init.normal_(den.w_out, std=0.1)
    plain.w_out.data.copy_(den.w_out.data)
    x = _low_rank_data(n=200, p=MNIST_SIREN.num_params)
    tokens = to_tokens(layout, x[:4])
    t = torch.tensor([0, 300, 700, 999])
    with torch.no_grad():
        assert torch.allclose(den(tokens, t), plain(tokens, t), atol=1e-5)
        den.set_prior(fit_prior(x, 8), layout)
        torch.nn.init.zeros_(den.w_out)  # the filter alone
        g = torch.Generator().manual_seed(2)
        noise = torch.randn(x[:4].shape, generator=g)
        a = den.root_abar[t][:, None]
        x_t = a * x[:4] + (1 - a * a).sqrt() * noise
        est = from_tokens(layout, den(to_tokens(layout, x_t), t))
    err = (est - x[:4]).pow(2).mean(1).sqrt()
    naive = (a * x_t - x[:4]).pow(2).mean(1).sqrt()  # the N(0, I) skip
    assert err[0] < 0.01 and (err[1:3] < 0.5 * naive[1:3]).all()  # t = 0 still has 0.006 of noise
    spread = (x[3] - x.mean(0)).pow(2).mean().sqrt()  # at pure noise the best guess is the mean
    assert err[3] < 1.02 * spread < naive[3]


def test_prior_survives_a_half_precision_file_and_adaptation_takes_the_shots(tiny2d_prior, tmp_path):
    model = load_model(tiny2d_prior["model"])
    den = model.denoiser
    assert den.has_prior and float(den.prior_basis.abs().max()) > 0  # fitted in training
    path = save_model(tmp_path / "half.safetensors", model, half=True)
    again = load_model(path)
    assert torch.equal(again.denoiser.prior_basis, den.prior_basis)
    shots = drive(load_shots(model, tiny2d_prior["shots"]))
    adapted = drive(adapt(model, shots, AdaptConfig(steps=2)))
    shot_mean = to_tokens(model.layout, model.normalise(shots.params).mean(0, keepdim=True))[0]
    assert torch.allclose(adapted.denoiser.prior_mean, shot_mean, atol=1e-5)
    assert not torch.equal(model.denoiser.prior_mean, adapted.denoiser.prior_mean)  # the base is untouched


def test_diversity_widens_the_shots_prior_without_changing_the_model(tiny2d_prior):
    model = load_model(tiny2d_prior["model"])
    adapted = drive(adapt(model, drive(load_shots(model, tiny2d_prior["shots"])), AdaptConfig(steps=2)))
    den = adapted.denoiser
    before = den.prior_variance.clone()
    floor = den.prior_floor
    assert torch.allclose(den.widened_variance(2.0) - floor, 4 * (before - floor))
    assert den.widened_variance(1.0) is den.prior_variance
    cfg = GenerateConfig(n=8, steps=6, seed=3)
    narrow = model.normalise(drive(sample(adapted, config=dataclasses.replace(cfg, diversity=0.0))))
    broad = model.normalise(drive(sample(adapted, config=dataclasses.replace(cfg, diversity=1.0))))
    assert torch.equal(den.prior_variance, before)  # the model itself is never changed
    assert float(broad.std(0).mean()) > 1.2 * float(narrow.std(0).mean())


def test_diversity_widens_hyperdiffusion_the_same_way(tiny2d_prior):
    # the baseline gets the same widening, so the two methods differ only by the conditioning
    hd = load_model(tiny2d_prior["hd"])
    adapted = drive(adapt(hd, drive(load_shots(hd, tiny2d_prior["shots"])), AdaptConfig(steps=2)))
    cfg = GenerateConfig(n=8, steps=6, seed=3, method="hyperdiffusion")
    narrow = hd.normalise(drive(sample(adapted, config=dataclasses.replace(cfg, diversity=0.0))))
    broad = hd.normalise(drive(sample(adapted, config=dataclasses.replace(cfg, diversity=1.0))))
    assert float(broad.std(0).mean()) > 1.2 * float(narrow.std(0).mean())
