"""Foundation benchmark: fitting speed (2D, 3D) and 128³ mesh extraction, medians of repeats.

Run: ``.venv/bin/python benchmarks/bench_foundation.py [--repeats N] [--json]``. Targets on a
2-core CPU: 2D ≥ 50 INRs/s to 30 dB on 256 Fashion-MNIST images; 3D ≤ 6 s per shape to IoU
0.95; 128³ extraction ≤ 1.5 s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch
import trimesh

from engine.data.idx import fashion_mnist
from engine.decode import dense_occupancy_grid, extract_mesh, occupancy_grid
from engine.fit.images import fit_images
from engine.fit.meshes import fit_occupancy, normalise_mesh, sample_occupancy
from engine.functional import init_from_seed
from engine.inr_io import load_inr
from engine.progress import drive
from engine.spec import HD_OCCUPANCY, MNIST_SIREN

EXAMPLES = Path(__file__).resolve().parents[1] / "resources" / "examples"


def bench_2d(repeats: int) -> dict:
    images, _ = fashion_mnist("test")
    frames = images[:256].astype(np.float32) / 255.0
    init = init_from_seed(MNIST_SIREN, 0)
    rates, reached, steps = [], [], []
    for _ in range(repeats):
        t = time.perf_counter()
        out = drive(fit_images(frames, init))
        rates.append(len(frames) / (time.perf_counter() - t))
        reached.append(float(out.reached.float().mean()))
        steps.append(float(out.steps.float().mean()))
    return {"inrs_per_second": statistics.median(rates), "runs": rates,
            "share_reaching_30db": min(reached), "mean_steps": statistics.median(steps)}


def test_shapes() -> list[trimesh.Trimesh]:
    c = trimesh.creation
    union = lambda parts: trimesh.boolean.union(parts, engine="manifold")  # noqa: E731
    return [
        c.box((0.6, 0.3, 0.8)), c.icosphere(3), c.capsule(0.5, 0.2), c.annulus(0.2, 0.4, 0.3),
        c.cylinder(0.1, 0.9), c.cone(0.3, 0.6), c.torus(0.3, 0.08),
        union([c.box((0.8, 0.1, 0.1)), c.box((0.1, 0.8, 0.1)), c.icosphere(2, radius=0.2)]),
    ]


def bench_3d(repeats: int) -> dict:
    meshes = [normalise_mesh(m) for m in test_shapes()]
    init = init_from_seed(HD_OCCUPANCY, 0)
    per_shape, ious = [], []
    for r in range(repeats):
        t = time.perf_counter()
        samples = [sample_occupancy(m, seed=r * 100 + i) for i, m in enumerate(meshes)]
        out = drive(fit_occupancy(samples, init))
        per_shape.append((time.perf_counter() - t) / len(meshes))
        ious.append(float(out.quality.mean()))
    return {"seconds_per_shape": statistics.median(per_shape), "runs": per_shape,
            "shapes": len(meshes), "mean_iou": statistics.median(ious),
            "includes": "sampling + winding numbers + batched fit"}


def bench_extraction(repeats: int) -> dict:
    inrs = [load_inr(p) for p in sorted(EXAMPLES.glob("shape_*.safetensors"))]
    fractions = [occupancy_grid(inr.spec, inr.batched(), 128)[1].fraction for inr in inrs]
    single = []
    for inr in inrs:
        for _ in range(repeats):
            t = time.perf_counter()
            extract_mesh(inr, 128)
            single.append(time.perf_counter() - t)
    t = time.perf_counter()
    dense_occupancy_grid(inrs[0].spec, inrs[0].batched(), 128)
    dense = time.perf_counter() - t
    return {"seconds_128": statistics.median(single), "runs": single,
            "evaluated_fraction": statistics.median(fractions), "dense_grid_seconds": dense}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    result = {
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "torch_threads": torch.get_num_threads(), "torch": torch.__version__},
        "fit_2d": bench_2d(args.repeats),
        "fit_3d": bench_3d(max(1, args.repeats // 2)),
        "extract_128": bench_extraction(args.repeats),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    f2, f3, ex = result["fit_2d"], result["fit_3d"], result["extract_128"]
    print(f"2D fit: {f2['inrs_per_second']:.0f} INRs/s to 30 dB (median of {args.repeats}; "
          f"{f2['share_reaching_30db']:.0%} reached, {f2['mean_steps']:.0f} steps mean)")
    print(f"3D fit: {f3['seconds_per_shape']:.2f} s/shape to IoU 0.95 (mean IoU {f3['mean_iou']:.3f})")
    print(f"128³ mesh: {ex['seconds_128']:.2f} s (network on {ex['evaluated_fraction']:.0%} of the "
          f"grid; dense grid alone {ex['dense_grid_seconds']:.2f} s)")


if __name__ == "__main__":
    main()
