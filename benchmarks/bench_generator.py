"""Generator benchmark: few-shot adaptation and generation speed, medians of repeats.

Run: ``.venv/bin/python benchmarks/bench_generator.py --model-2d M2 --model-3d M3 [--repeats N]
[--json]`` with models made by ``equigen train``. Targets on a 2-core CPU, default-sized models:
adapt on 10 shots ≤ 60 s (fitting the shots included); generate 16 2D samples ≤ 2 s (written as
PNG); generate 16 3D samples with 128³ meshes ≤ 20 s (written as OBJ).

Shots are made here: ten renders of the glyph "9" from installed fonts (2D) and ten lamps from
the shapes3d generator (3D), both classes the default corpora hold out.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from engine.data.glyphs import find_fonts, font_chars, load_font, render_glyph
from engine.data.shapes3d import make_shape
from engine.diffusion.adapt import adapt, adapt_recipe
from engine.diffusion.generate import GenerateConfig, sample
from engine.diffusion.model_file import load_model
from engine.diffusion.outputs import write_samples
from engine.diffusion.shots import load_shots
from engine.progress import drive


def glyph_shots(folder: Path, char: str = "9", count: int = 10) -> list[Path]:
    paths = []
    for font in find_fonts():
        if char not in font_chars(font):
            continue
        img = render_glyph(load_font(font), char)
        if img is None:
            continue
        paths.append(folder / f"{char}-{len(paths)}.png")
        Image.fromarray(np.round(img * 255).astype(np.uint8)).save(paths[-1])
        if len(paths) == count:
            return paths
    raise SystemExit(f"found only {len(paths)} fonts with {char!r}; install fonts-dejavu-core fonts-liberation")


def mesh_shots(folder: Path, family: str = "lamp", count: int = 10) -> list[Path]:
    paths = []
    for i in range(count):
        paths.append(folder / f"{family}-{i}.obj")
        make_shape(family, 10_000 + i).export(paths[-1])
    return paths


def bench_model(model_path: str, shots: list[Path], fmt: str, repeats: int, work: Path) -> dict:
    model = load_model(model_path)
    adapt_s, fit_s, gen_s, sample_s = [], [], [], []
    records = []
    adapted = None
    for r in range(repeats):
        t = time.perf_counter()
        fitted = drive(load_shots(model, shots))
        t_fit = time.perf_counter() - t
        adapted = drive(adapt(model, fitted, dataclasses.replace(adapt_recipe(model.spec), seed=r)))
        adapt_s.append(time.perf_counter() - t)
        fit_s.append(t_fit)
    for r in range(repeats):
        t = time.perf_counter()
        params = drive(sample(adapted, config=GenerateConfig(n=16, seed=r)))
        sample_s.append(time.perf_counter() - t)
        metas = [{"seed": r, "index": i} for i in range(16)]
        records = drive(write_samples(model.spec, params, work / f"{model.spec.name}-{r}", fmt, metas, 128))
        gen_s.append(time.perf_counter() - t)
    out = {
        "model": Path(model_path).name, "spec": model.spec.name,
        "denoiser_parameters": sum(p.numel() for p in model.denoiser.parameters()),
        "adapt_10_shots_seconds": statistics.median(adapt_s), "adapt_runs": adapt_s,
        "of_which_fitting_shots_seconds": statistics.median(fit_s),
        "generate_16_seconds": statistics.median(gen_s), "generate_runs": gen_s,
        "of_which_sampling_seconds": statistics.median(sample_s),
    }
    if model.spec.in_dim == 3:
        out["watertight_single_meshes_last_run"] = sum(1 for x in records if x.get("watertight") and x.get("pieces") == 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model-2d", default=None)
    ap.add_argument("--model-3d", default=None)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    result = {"machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                          "torch_threads": torch.get_num_threads(), "torch": torch.__version__}}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.model_2d:
            result["2d"] = bench_model(args.model_2d, glyph_shots(work), "png", args.repeats, work)
        if args.model_3d:
            result["3d"] = bench_model(args.model_3d, mesh_shots(work), "obj", args.repeats, work)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    for key, r in result.items():
        if key == "machine":
            continue
        print(f"{key}: {r['model']} ({r['spec']}, {r['denoiser_parameters']:,} denoiser parameters)")
        print(f"  adapt on 10 shots: {r['adapt_10_shots_seconds']:.1f} s "
              f"(fitting the shots {r['of_which_fitting_shots_seconds']:.1f} s)")
        print(f"  generate 16:       {r['generate_16_seconds']:.2f} s (sampling {r['of_which_sampling_seconds']:.2f} s)")


if __name__ == "__main__":
    main()
