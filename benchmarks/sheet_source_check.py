"""Can the trained model make the shapes it was trained on? The check to run before blaming adaptation.

Run: ``.venv/bin/python benchmarks/sheet_source_check.py --model MODEL --data CORPUS --out sheet.png
[--per-class 4] [--seed 0]``.

The model is *not* adapted: it is conditioned (diversity 0) on ψ of a few items of each of its own
source classes, so a good base model returns something close to each item. Rows: the items as
fitted in the corpus, then the samples, per class. Printed per class: the median IoU (3D, occupancy
at 64³) or PSNR (2D) between each sample and the item it was conditioned on. For an unconditional
(HyperDiffusion) model the samples are unconditional and the figure is only a reference.
"""

from __future__ import annotations

import argparse
import dataclasses
import json

import numpy as np
import torch

from engine.data.dataset import INRDataset
from engine.data.store import read_manifest
from engine.diffusion.generate import GenerateConfig, sample
from engine.diffusion.model_file import Shots, load_model
from engine.diffusion.shots import with_features
from engine.functional import forward, image_grid, volume_grid
from engine.progress import drive
from sheet_generator import contact_sheet


def agreement(spec, samples, references, resolution: int = 64) -> np.ndarray:
    """Per pair ``(N,)``: occupancy IoU on a ``resolution``³ grid (3D) or PSNR in dB (2D)."""
    if spec.in_dim == 3:
        grid = volume_grid(resolution, spec.domain)
        a, b = forward(spec, samples, grid)[..., 0] > 0, forward(spec, references, grid)[..., 0] > 0
        return ((a & b).sum(1) / (a | b).sum(1).clamp_min(1)).numpy()
    grid = image_grid(spec.grid_size, spec.domain)
    a, b = forward(spec, samples, grid).clamp(0, 1), forward(spec, references, grid).clamp(0, 1)
    return (10 * torch.log10(1 / ((a - b) ** 2).mean((1, 2)).clamp_min(1e-10))).numpy()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True, help="the corpus the model was trained on")
    ap.add_argument("--out", required=True)
    ap.add_argument("--per-class", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tile", type=int, default=72)
    args = ap.parse_args()
    model = load_model(args.model)
    classes = model.meta.get("classes", {}).get("source") or read_manifest(args.data)["source_classes"]
    rng = np.random.default_rng(args.seed)
    rows, report = [], {}
    for name in classes:
        ds = INRDataset(args.data, split="source", init_k=0, classes=[name])
        ds.rows = [ds.rows[i] for i in sorted(rng.choice(len(ds), min(args.per_class, len(ds)), replace=False))]
        refs = ds.stacked()
        shots = with_features(model, Shots([r["item"] for r in ds.rows], refs, None))
        method = "equigen" if model.encoder is not None else "hyperdiffusion"
        config = GenerateConfig(n=len(ds), diversity=0.0, seed=args.seed, method=method)
        out = drive(sample(dataclasses.replace(model, shots=shots), config=config))
        score = agreement(model.spec, out, refs)
        report[name] = round(float(np.median(score)), 3)
        rows += [(f"{name}", refs), ("  sampled", out)]
    unit = "IoU" if model.spec.in_dim == 3 else "PSNR dB"
    print(json.dumps({"median_" + unit.replace(" ", "_"): report,
                      "overall": round(float(np.median(list(report.values()))), 3)}))
    contact_sheet(model.spec, rows, args.tile, 90).save(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
