"""Generated INRs to files: images, meshes or the INRs themselves."""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch

from engine.decode import is_one_watertight_piece, mesh_or_none, render_image
from engine.atomic import remove_stale_temporaries, writable_folder
from engine.errors import EquigenError, InputError
from engine.export import MESH_FORMATS, export_mesh, export_png
from engine.functional import Params
from engine.inr_io import INR, save_inr
from engine.progress import Progress, ProgressGen
from engine.spec import INRSpec

OUTPUT_FORMATS = ("png", "safetensors") + tuple(ext[1:] for ext in MESH_FORMATS)


def first_free_index(folder: Path, prefix: str) -> int:
    """One more than the highest ``NNN`` of the files ``<prefix>-NNN.*`` in ``folder`` (0 if none)."""
    pattern = re.compile(rf"^{re.escape(prefix)}-(\d+)\.")
    taken = [int(m.group(1)) for p in folder.iterdir() if (m := pattern.match(p.name))]
    return max(taken) + 1 if taken else 0


def write_samples(spec: INRSpec, params: Params, out_dir: str | os.PathLike, fmt: str,
                  metas: list[dict], resolution: int = 128, image_size: int = 256,
                  prefix: str = "sample", device: torch.device | None = None) -> ProgressGen[list[dict]]:
    """Write every INR of ``params`` ``{key: (n, *shape)}`` as ``out_dir/<prefix>-NNN.<fmt>``,
    numbered on from the highest ``<prefix>-NNN`` already there, so a second run into the same
    folder adds to the first instead of replacing it.

    2D: png or safetensors. 3D: obj/ply/stl/glb (marching cubes at ``resolution``), png (a shaded
    render) or safetensors; the networks are decoded on ``device`` (None: the CPU). Returns one
    record per sample (path; for meshes whether it is one watertight piece). A sample that
    decodes to nothing is recorded, not fatal.
    """
    fmt = fmt.lower().lstrip(".")
    if fmt not in OUTPUT_FORMATS:
        raise InputError(f"unknown output format {fmt!r}; choose one of {', '.join(OUTPUT_FORMATS)}")
    if spec.in_dim == 2 and f".{fmt}" in MESH_FORMATS:
        raise InputError(f"{fmt} is a mesh format, but this model makes images; use png or safetensors")
    out_dir = writable_folder(out_dir)
    remove_stale_temporaries(out_dir)
    n = next(iter(params.values())).shape[0]
    for key, v in params.items():
        if not bool(torch.isfinite(v).all()):
            raise EquigenError(f"the generated weights hold NaN or infinite values ({key}); nothing was written. "
                               "The model file may be damaged: sample from another")
    start = first_free_index(out_dir, prefix)
    records = []
    for i in range(n):
        inr = INR.from_batch(spec, params, i, metas[i])
        path = out_dir / f"{prefix}-{start + i:03d}.{fmt}"
        rec: dict = {"index": i, "path": str(path)}
        if fmt == "safetensors":
            save_inr(path, inr)
        elif spec.in_dim == 2:
            export_png(render_image(inr, image_size, device=device), path)
        else:
            mesh = mesh_or_none(inr, resolution, device)
            if mesh is None:
                rec |= {"path": None, "error": "the sample decodes to no surface", "watertight": False,
                        "one_piece": False}
                records.append(rec)
                yield Progress("write", i + 1, n, f"sample {i} is empty")
                continue
            rec |= {"watertight": bool(mesh.is_watertight), "pieces": int(mesh.body_count),
                    "one_piece": is_one_watertight_piece(mesh), "faces": int(len(mesh.faces))}
            if fmt == "png":
                from engine.render import render_mesh  # VTK loads only when a 3D render is asked for

                export_png(render_mesh(mesh, image_size), path)
            else:
                export_mesh(mesh, path)
        records.append(rec)
        yield Progress("write", i + 1, n, f"wrote {path.name}")
    return records
