"""Contact sheets of a corpus: a few decoded INRs per class in a labelled grid.

What is shown is decoded from the stored weights (images, or meshes rendered off-screen), so the
sheet shows what the corpus really holds, fitting errors included.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from engine.data.dataset import INRDataset
from engine.decode import decode_images, mesh_or_none
from engine.inr_io import INR
from engine.progress import Progress, ProgressGen

LABEL_WIDTH = 96


def contact_sheet(
    root: str | os.PathLike, per_class: int = 8, classes: list[str] | None = None,
    tile: int = 96, seed: int = 0, resolution: int = 64, split: str = "all",
    device: torch.device | None = None,
) -> ProgressGen[np.ndarray]:
    """A ``(rows * tile, LABEL_WIDTH + per_class * tile, 3)`` uint8 sheet, one row per class.

    Items are drawn at random (seeded) among each class' first fits and decoded on ``device``
    (None: the CPU). 3D INRs are meshed at ``resolution`` and rendered; an INR with no surface
    shows as an empty tile.
    """
    ds = INRDataset(root, split=split, init_k=0, classes=classes)
    names = sorted({r["class"] for r in ds.rows})
    rng = np.random.default_rng(seed)
    renderer = None
    if ds.spec.is_3d:
        from engine.render import MeshRenderer

        renderer = MeshRenderer(tile)
    rows = []
    try:
        for ci, name in enumerate(names):
            idx = [i for i, r in enumerate(ds.rows) if r["class"] == name]
            pick = sorted(rng.choice(idx, min(per_class, len(idx)), replace=False).tolist())
            tiles = [_tile(ds, i, tile, resolution, renderer, device) for i in pick]
            tiles += [np.zeros((tile, tile, 3), np.uint8)] * (per_class - len(tiles))
            rows.append(np.concatenate([label_tile(name, tile)] + tiles, axis=1))
            yield Progress("sheet", ci + 1, len(names), f"rendered {name}")
    finally:
        if renderer is not None:
            renderer.close()
    return np.concatenate(rows, axis=0)


def _tile(ds: INRDataset, i: int, tile: int, resolution: int, renderer,
          device: torch.device | None) -> np.ndarray:
    params = {k: v[None] for k, v in ds[i]["params"].items()}
    if renderer is None:
        grey = decode_images(ds.spec, params, device=device)[0]
        img = Image.fromarray(np.round(grey * 255).astype(np.uint8)).resize((tile, tile), Image.Resampling.LANCZOS)
        return np.repeat(np.asarray(img)[..., None], 3, axis=2)
    mesh = mesh_or_none(INR.from_batch(ds.spec, params, 0), resolution, device)
    return np.zeros((tile, tile, 3), np.uint8) if mesh is None else renderer.render(mesh)


def label_tile(text: str, tile: int, width: int = LABEL_WIDTH) -> np.ndarray:
    """A dark ``(tile, width, 3)`` uint8 tile with ``text``: the row label of a sheet."""
    img = Image.new("RGB", (width, tile), (24, 24, 28))
    draw = ImageDraw.Draw(img)
    try:
        font = ImageFont.load_default(size=max(10, tile // 6))
    except TypeError:  # Pillow < 10.1 has no sized default font
        font = ImageFont.load_default()
    draw.text((6, tile // 2), text, fill=(230, 230, 230), font=font, anchor="lm")
    return np.asarray(img)
