"""Does the trained 3D model make its source families before any adaptation?

Run: ``.venv/bin/python benchmarks/source_families.py --model MODEL --data CORPUS --out
docs/source_families [--families chair,airplane,...] [--samples 8] [--resolution 96]``.

Per source family: ψ of 10 of its items conditions ``--samples`` codes (the ``equigen`` method at
D = 0.5, the model unadapted, the training prior); each sample is meshed and counted "like its
family" when it is watertight and has no more pieces than the family's items typically have (the
median over 40 of them, their fits meshed alike).
MMD-CD against 40 other items of the family, next to the MMD of as many real items (what the
family itself scores at that count). Writes ``report.json`` and ``samples.png`` (per family: two
real items, then the samples).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from engine.diffusion.code_model import CodeShots, load_code_model
from engine.diffusion.code_sample import sample_codes
from engine.diffusion.generate import GenerateConfig
from engine.metrics.shapes import chamfer_matrix, mmd_cov_1nna, surface_points
from engine.progress import drive
from engine.render import MeshRenderer
from engine.weightspace.corpus import load_structured
from structured_space import like_source, mesh_of  # this folder's sibling benchmark


def meshes_of(base, codes: torch.Tensor, resolution: int) -> list:
    return [mesh_of(base, c, resolution) for c in codes]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--families", default=None, help="comma-separated; default: every source family")
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--resolution", type=int, default=96)
    ap.add_argument("--tile", type=int, default=96)
    args = ap.parse_args()
    torch.set_num_threads(2)
    model = load_code_model(args.model)
    base, codes, rows = load_structured(args.data, "source")
    families = args.families.split(",") if args.families else sorted({r["class"] for r in rows})
    renderer = MeshRenderer(args.tile)
    report, sheet = {"model": Path(args.model).name, "corpus": Path(args.data).name, "families": {}}, []
    for fi, fam in enumerate(families):
        members = torch.tensor([i for i, r in enumerate(rows) if r["class"] == fam])
        shots, ref = codes[members[:10]], codes[members[10:50]]
        conditioned = dataclasses.replace(model, shots=CodeShots([f"{fam}-{i}" for i in range(10)], shots,
                                                                 model.features(shots)))
        sampled = drive(sample_codes(conditioned, GenerateConfig(n=args.samples, seed=fi, diversity=0.5)))
        samples = meshes_of(base, sampled, args.resolution)
        reals = meshes_of(base, ref, args.resolution)
        pieces = int(np.ceil(np.median([m.body_count for m in reals if m is not None])))
        s_pts = np.stack([surface_points(m, seed=i) for i, m in enumerate(samples)])
        r_pts = np.stack([surface_points(m, seed=i) for i, m in enumerate(reals)])
        probe, rest = r_pts[: args.samples], r_pts[args.samples:]
        rr = chamfer_matrix(rest, rest)
        gen = mmd_cov_1nna(chamfer_matrix(s_pts, rest), chamfer_matrix(s_pts, s_pts), rr)
        real = mmd_cov_1nna(chamfer_matrix(probe, rest), chamfer_matrix(probe, probe), rr)
        report["families"][fam] = {
            "like_family": float(np.mean([like_source(m, pieces) for m in samples])),
            "reals_like_family": float(np.mean([like_source(m, pieces) for m in reals])),
            "mmd": gen["mmd"], "mmd_real": real["mmd"], "cov": gen["cov"], "cov_real": real["cov"]}
        print(fam, report["families"][fam], flush=True)
        blank = np.zeros((args.tile, args.tile, 3), np.uint8)
        tiles = [renderer.render(m) if m is not None else blank for m in reals[:2] + samples]
        sheet.append(np.concatenate(tiles, axis=1))
    fams = report["families"].values()
    report["mean"] = {k: float(np.mean([f[k] for f in fams])) for k in next(iter(fams))}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(sheet, axis=0)).save(out / "samples.png")
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report["mean"], indent=2))


if __name__ == "__main__":
    main()
