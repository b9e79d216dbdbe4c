"""How precisely does a trained weight denoiser recover clean weights, and how precise must it be?

Run: ``.venv/bin/python benchmarks/denoiser_precision.py --model MODEL --data CORPUS [--items 16]``.

Prints, in the model's normalised weight units (RMS over all weights) and as the IoU (3D, at 48³)
or PSNR (2D) of the decoded result against the true INR:
- ``noise``: the true weights plus isotropic Gaussian noise of a given RMS: how much error a
  decoded shape tolerates;
- ``denoiser``: the model's x̂0 from x_t at several t, conditioned on each item's own ψ, on source
  items it was trained on;
- ``linear``: the Wiener filter on the principal components of the source split's normalised
  weights, the best *linear* denoiser for them, on the same items and noise;
- ``held-out span``: target-split items projected onto that span: how much of a new class the
  source weights can express at all.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from engine.data.dataset import INRDataset
from engine.diffusion.model_file import load_model
from engine.diffusion.schedule import Schedule
from engine.diffusion.tokens import from_tokens, to_tokens
from engine.encoder.evaluate import embed
from sheet_source_check import agreement as pair_agreement

STEPS = (1, 10, 50, 200, 500, 900)


def agreement(spec, params, truth) -> float:
    """Median IoU at 48³ (3D) or PSNR in dB (2D) of decoded ``params`` against ``truth``."""
    return float(np.median(pair_agreement(spec, params, truth, resolution=48)))


def rms(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(((a - b) ** 2).mean().sqrt())


def pick(data: str, split: str, n: int, seed: int) -> INRDataset:
    ds = INRDataset(data, split=split, init_k=0)
    rng = np.random.default_rng(seed)
    ds.rows = [ds.rows[i] for i in sorted(rng.choice(len(ds), min(n, len(ds)), replace=False))]
    return ds


@torch.inference_mode()
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True, help="the corpus the model was trained on")
    ap.add_argument("--items", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    m = load_model(args.model)
    unit = "IoU" if m.spec.in_dim == 3 else "PSNR dB"
    g = torch.Generator().manual_seed(args.seed)
    items = pick(args.data, "source", args.items, args.seed)
    p = items.stacked()
    x0 = m.normalise(p)

    for level in (0.01, 0.03, 0.1, 0.3, 1.0):
        noisy = m.denormalise(x0 + level * torch.randn(x0.shape, generator=g))
        print(f"noise     rms {level:5.2f}                      {unit} {agreement(m.spec, noisy, p):.3f}")

    source = m.normalise(INRDataset(args.data, split="source", init_k=0).stacked()).double()
    mean = source.mean(0)
    basis, sv, _ = torch.linalg.svd((source - mean).T, full_matrices=False)  # (P, N)
    variance = sv ** 2 / source.shape[0]
    cond = embed(m.encoder, p) if m.encoder is not None else None
    schedule = Schedule()
    for t in STEPS:
        a = float(schedule.abar[t])
        x_t = a ** 0.5 * x0 + (1 - a) ** 0.5 * torch.randn(x0.shape, generator=g)
        steps = torch.full((len(x0),), t)
        pred = m.denoiser(to_tokens(m.layout, x_t), steps, cond, None)
        x_hat = from_tokens(m.layout, pred.float())
        # Wiener: x_t/√ᾱ = x0 + σ ε with σ² = (1−ᾱ)/ᾱ; shrink each principal direction by λ/(λ+σ²).
        y = x_t.double() / a ** 0.5 - mean
        linear = (mean + ((y @ basis) * (variance / (variance + (1 - a) / a))) @ basis.T).float()
        print(f"t={t:4d}  input rms {rms(x_t, x0):6.3f}   denoiser rms {rms(x_hat, x0):6.3f} "
              f"{unit} {agreement(m.spec, m.denormalise(x_hat), p):.3f}   linear rms {rms(linear, x0):6.3f} "
              f"{unit} {agreement(m.spec, m.denormalise(linear), p):.3f}")

    held = pick(args.data, "target", args.items, args.seed)
    if len(held):
        pt = held.stacked()
        xt = m.normalise(pt).double()
        projected = (mean + ((xt - mean) @ basis) @ basis.T).float()
        print(f"held-out span: projection rms {rms(projected, xt.float()):.3f} "
              f"{unit} {agreement(m.spec, m.denormalise(projected), pt):.3f}")


if __name__ == "__main__":
    main()
