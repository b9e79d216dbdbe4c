"""Contact sheet of few-shot generation: the shots, then samples at several diversities and methods.

Run: ``.venv/bin/python benchmarks/sheet_generator.py --model MODEL --out sheet.png [--n 8]``.
Shots are the benchmark's (ten renders of "9" for 2D models, ten lamps for 3D ones). Rows: the
shots (as fitted into the model's basin), EquiGen at diversity 0, 0.5 and 1, and the shots-noise
baseline at diversity 0.3, all with the same seed.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from engine.bench.speed import glyph_shots, mesh_shots
from engine.decode import decode_images, mesh_or_none
from engine.diffusion.code_model import CodeDiffusion
from engine.diffusion.generate import GenerateConfig
from engine.diffusion.pipeline import adapt_to_files, generate_params, load_generator
from engine.functional import Params
from engine.inr_io import INR
from engine.progress import drive


def tiles(spec, params: Params, size: int) -> list[np.ndarray]:
    n = next(iter(params.values())).shape[0]
    if spec.in_dim == 2:
        imgs = decode_images(spec, params)
        return [np.asarray(Image.fromarray(np.round(i * 255).astype(np.uint8)).resize((size, size))) for i in imgs]
    from engine.render import MeshRenderer

    renderer = MeshRenderer(size)
    out = []
    for i in range(n):
        mesh = mesh_or_none(INR.from_batch(spec, params, i), 96)
        if mesh is None:
            out.append(np.zeros((size, size), np.uint8))
        else:
            out.append(np.asarray(Image.fromarray(renderer.render(mesh)).convert("L")))
    renderer.close()
    return out


def contact_sheet(spec, rows: list[tuple[str, Params]], tile: int, label_width: int) -> Image.Image:
    """One labelled row of decoded tiles per ``(label, params)``."""
    width = max(next(iter(p.values())).shape[0] for _, p in rows)
    sheet = Image.new("L", (label_width + width * (tile + 4), len(rows) * (tile + 4)), 255)
    draw = ImageDraw.Draw(sheet)
    for r, (label, params) in enumerate(rows):
        y = r * (tile + 4)
        draw.text((4, y + tile // 2 - 6), label, fill=0)
        for c, img in enumerate(tiles(spec, params, tile)):
            sheet.paste(Image.fromarray(img), (label_width + c * (tile + 4), y))
    return sheet


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tile", type=int, default=64)
    args = ap.parse_args()
    model = load_generator(args.model)
    with tempfile.TemporaryDirectory() as tmp:
        paths = glyph_shots(Path(tmp)) if model.spec.in_dim == 2 else mesh_shots(Path(tmp))
        adapted = drive(adapt_to_files(model, paths))
    shots = (adapted.base.full_params(adapted.shots.codes) if isinstance(adapted, CodeDiffusion)
             else adapted.shots.params)
    rows = [("shots", {k: v[: args.n] for k, v in shots.items()})]
    for label, method, d in [("EquiGen D=0", "equigen", 0.0), ("EquiGen D=0.5", "equigen", 0.5),
                             ("EquiGen D=1", "equigen", 1.0), ("shots+noise D=0.3", "shots-noise", 0.3)]:
        cfg = GenerateConfig(n=args.n, diversity=d, method=method, seed=args.seed)
        rows.append((label, drive(generate_params(adapted, cfg))))
    contact_sheet(model.spec, rows, args.tile, 130).save(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
