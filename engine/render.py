"""Off-screen shaded renders of meshes with PyVista; no display needed.

VTK picks an off-screen context by itself (EGL or OSMesa) when no X display is present. One
plotter is reused for many shots, since creating a render window costs far more than a shot.
"""

from __future__ import annotations

import logging
import os

import numpy as np
import trimesh

from engine.errors import EquigenError
from engine.progress import Progress, ProgressGen

log = logging.getLogger(__name__)

BACKGROUND = (0.12, 0.13, 0.15)
MESH_COLOUR = (0.78, 0.82, 0.90)


class MeshRenderer:
    """Renders meshes to RGB arrays from a fixed three-quarter view, reusing one plotter."""

    def __init__(self, size: int = 256):
        if "DISPLAY" not in os.environ and "VTK_DEFAULT_OPENGL_WINDOW" not in os.environ:
            os.environ["VTK_DEFAULT_OPENGL_WINDOW"] = "vtkEGLRenderWindow"
        try:
            import pyvista as pv

            self._pv = pv
            self._plotter = pv.Plotter(off_screen=True, window_size=(size, size))
        except Exception as e:  # VTK raises plain RuntimeErrors for missing GL
            raise EquigenError(
                f"cannot start off-screen rendering ({e}); install EGL (apt-get install libegl1) "
                "or run under a display"
            ) from None
        self._plotter.set_background(BACKGROUND)
        self.size = size

    def render(self, mesh: trimesh.Trimesh) -> np.ndarray:
        """``(size, size, 3)`` uint8 image of ``mesh`` fitted to the frame."""
        pv = self._pv
        faces = np.hstack([np.full((len(mesh.faces), 1), 3), mesh.faces]).ravel()
        poly = pv.PolyData(np.asarray(mesh.vertices, dtype=np.float32), faces)
        p = self._plotter
        p.clear_actors()
        p.add_mesh(poly, color=MESH_COLOUR, smooth_shading=True, specular=0.3, name="shape")
        p.camera_position = "iso"
        p.camera.azimuth = 20
        p.camera.elevation = 10
        p.reset_camera()
        p.camera.zoom(1.15)
        return np.asarray(p.screenshot(return_img=True))[..., :3].copy()

    def close(self) -> None:
        self._plotter.close()

    def __enter__(self) -> MeshRenderer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def render_mesh(mesh: trimesh.Trimesh, size: int = 256) -> np.ndarray:
    """One-off render; use MeshRenderer for many."""
    with MeshRenderer(size) as r:
        return r.render(mesh)


_HELPER = None  # one helper process that keeps its own plotters (render_meshes_apart)
_RENDERERS: dict[int, MeshRenderer] = {}  # in the helper: one plotter per size


def _render_job(job) -> np.ndarray:
    mesh, size = job
    if size not in _RENDERERS:
        _RENDERERS[size] = MeshRenderer(size)
    return _RENDERERS[size].render(mesh)


def render_meshes_apart(meshes: list[trimesh.Trimesh], size: int) -> ProgressGen[list[np.ndarray]]:
    """``MeshRenderer(size).render`` of each mesh, in a helper process that keeps its plotter.

    A render window costs ~1 s to open and each shot ~50 ms of the caller's GIL; a window that
    must never stall (the studio's) has them made in another process. One event per mesh.
    """
    global _HELPER
    if not meshes:
        return []
    if _HELPER is None:  # its own process: the plotters live as long as it does
        from engine.helpers import make_pool

        _HELPER = make_pool(1)
    out = []
    futures = []
    try:
        futures = [_HELPER.submit(_render_job, (m, size)) for m in meshes]
        for i, f in enumerate(futures):
            out.append(f.result())
            yield Progress("render", i + 1, len(meshes))
    except (OSError, RuntimeError) as e:  # includes a broken pool: start afresh next time
        _HELPER = None
        raise EquigenError(f"cannot render in a helper process ({str(e).strip().splitlines()[0]})") from None
    finally:
        for f in futures:
            f.cancel()
    return out
