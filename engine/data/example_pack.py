"""Example packs: shots of a held-out class as the user would give them, and as INR files.

A pack holds ``count`` items of one of a corpus' target classes, each twice: the mesh (normalised
into the unit cube, as the studio reads any mesh) or image (the 28×28 frame the corpus was
fitted to) that an artist would drop in, and the item's complete INR from the corpus, which a
model trained on that corpus reads back as its own code, without fitting.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from engine.atomic import atomic_path
from engine.data.build import BuildConfig, make_source
from engine.data.dataset import INRDataset
from engine.data.sources import Item
from engine.data.store import CorpusPaths, read_jsonl, read_manifest
from engine.errors import InputError
from engine.export import export_mesh
from engine.fit.meshes import normalise_mesh
from engine.inr_io import INR, save_inr


def write_example_pack(corpus: str | os.PathLike, family: str, out: str | os.PathLike, count: int = 10) -> list[Path]:
    """Write ``count`` held-out items of class ``family`` to ``out`` as ``FAMILY-NN.png|obj`` and
    ``FAMILY-NN.safetensors``; returns the INR files' paths."""
    paths = CorpusPaths(Path(corpus))
    manifest = read_manifest(paths.root)
    if family not in manifest["target_classes"]:
        raise InputError(f"{family!r} is not held out in {corpus} ({', '.join(manifest['target_classes'])})")
    builder = {k: (tuple(v) if isinstance(v, list) else v) for k, v in manifest["builder_args"].items()
               if k not in ("image_fit", "mesh_fit")}
    source = make_source(BuildConfig(**builder))
    ds = INRDataset(paths.root, split="all", init_k=0, classes=[family])
    if len(ds) < count:
        raise InputError(f"{corpus}: class {family!r} has {len(ds)} items, fewer than {count}")
    params = ds.stacked()
    plan = {r["item"]: r for r in read_jsonl(paths.plan)}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    stem = family.lower() if family.isalpha() and len(family) > 1 else f"glyph-{family}"
    written = []
    for i in range(count):
        record = ds.rows[i]
        row = plan[record["item"]]
        name = f"{stem}-{i:02d}"
        item = source.load(Item(row["item"], row["class"], tuple(row["ref"])))
        if source.dimension == "2d":
            with atomic_path(out / f"{name}.png") as tmp:
                Image.fromarray((np.clip(item, 0, 1) * 255).round().astype(np.uint8)).save(tmp, format="PNG")
        else:
            export_mesh(normalise_mesh(item), out / f"{name}.obj")
        meta = {"family": family, "source": row["item"], f"fit_{record['metric']}": record["quality"]}
        written.append(save_inr(out / f"{name}.safetensors", INR.from_batch(ds.spec, params, i, meta)))
    return written
