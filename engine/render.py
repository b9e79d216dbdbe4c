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
