"""Writing results: meshes as OBJ/PLY/STL/GLB (geometry only) and images as PNG, atomically."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import trimesh
from PIL import Image

from engine.atomic import atomic_path
from engine.errors import InputError

MESH_FORMATS = {".obj": "obj", ".ply": "ply", ".stl": "stl", ".glb": "glb"}


def mesh_format(path: str | os.PathLike) -> str:
    """The trimesh file type for ``path``'s extension; InputError for anything else."""
    ext = Path(path).suffix.lower()
    if ext not in MESH_FORMATS:
        raise InputError(
            f"{path}: unknown mesh format {ext or '(none)'}; use one of {', '.join(MESH_FORMATS)}"
        )
    return MESH_FORMATS[ext]


def export_mesh(mesh: trimesh.Trimesh, path: str | os.PathLike) -> Path:
    """Write ``mesh``'s geometry in the format of ``path``'s extension.

    OBJ gets vertices and faces only (no material, so no stray ``.mtl``); PLY is binary.
    """
    file_type = mesh_format(path)
    plain = trimesh.Trimesh(np.asarray(mesh.vertices), np.asarray(mesh.faces), process=False)
    if file_type == "obj":
        data = plain.export(file_type="obj", include_normals=False, include_color=False,
                            include_texture=False, write_texture=False)
    else:
        data = plain.export(file_type=file_type)
    if isinstance(data, str):
        data = data.encode()
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def export_png(image: np.ndarray, path: str | os.PathLike) -> Path:
    """Write a ``(H, W)`` grey or ``(H, W, 3|4)`` colour image; floats are taken as [0, 1]."""
    a = np.asarray(image)
    if a.dtype != np.uint8:
        a = np.round(np.clip(a, 0.0, 1.0) * 255).astype(np.uint8)
    with atomic_path(path, suffix=".png") as tmp:
        Image.fromarray(a).save(tmp, format="PNG")
    return Path(path)
