"""Generated INRs to files: images, meshes or the INRs themselves."""

from __future__ import annotations

import os
from pathlib import Path

from engine.decode import is_one_watertight_piece, mesh_or_none, render_image
from engine.errors import InputError
from engine.export import MESH_FORMATS, export_mesh, export_png
from engine.functional import Params
from engine.inr_io import INR, save_inr
from engine.progress import Progress, ProgressGen
from engine.spec import INRSpec

OUTPUT_FORMATS = ("png", "safetensors") + tuple(ext[1:] for ext in MESH_FORMATS)


def write_samples(spec: INRSpec, params: Params, out_dir: str | os.PathLike, fmt: str,
                  metas: list[dict], resolution: int = 128, image_size: int = 256,
                  prefix: str = "sample") -> ProgressGen[list[dict]]:
    """Write every INR of ``params`` ``{key: (n, *shape)}`` as ``out_dir/<prefix>-NNN.<fmt>``.

    2D: png or safetensors. 3D: obj/ply/stl/glb (marching cubes at ``resolution``), png (a shaded
    render) or safetensors. Returns one record per sample (path; for meshes whether it is one
    watertight piece). A sample that decodes to nothing is recorded, not fatal.
    """
    fmt = fmt.lower().lstrip(".")
    if fmt not in OUTPUT_FORMATS:
        raise InputError(f"unknown output format {fmt!r}; choose one of {', '.join(OUTPUT_FORMATS)}")
    if spec.in_dim == 2 and f".{fmt}" in MESH_FORMATS:
        raise InputError(f"{fmt} is a mesh format, but this model makes images; use png or safetensors")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    n = next(iter(params.values())).shape[0]
    records = []
    for i in range(n):
        inr = INR.from_batch(spec, params, i, metas[i])
        path = out_dir / f"{prefix}-{i:03d}.{fmt}"
        rec: dict = {"index": i, "path": str(path)}
        if fmt == "safetensors":
            save_inr(path, inr)
        elif spec.in_dim == 2:
            export_png(render_image(inr, image_size), path)
        else:
            mesh = mesh_or_none(inr, resolution)
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
