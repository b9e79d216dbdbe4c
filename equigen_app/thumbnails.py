"""Thumbnails: 2D INRs from their decoded image, 3D ones from one shared off-screen plotter.

Called on the GUI thread only (VTK is not thread-safe); mesh extraction happens before, in the
worker. Thumbnails are rendered at the screen's device pixel ratio, so they stay sharp on HiDPI
screens, and saved as PNGs by the caller, so a reopened session shows without re-rendering.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QImage, QPixmap

from engine.atomic import atomic_path
from engine.session import Preview

THUMB_SIZE = 128


def array_to_pixmap(a: np.ndarray) -> QPixmap:
    """``(H, W)`` grey or ``(H, W, 3)`` RGB uint8 → QPixmap (copied, so the array may go)."""
    a = np.ascontiguousarray(a)
    h, w = a.shape[:2]
    if a.ndim == 2:
        img = QImage(a.data, w, h, w, QImage.Format.Format_Grayscale8)
    else:
        img = QImage(a.data, w, h, 3 * w, QImage.Format.Format_RGB888)
    return QPixmap.fromImage(img.copy())


class Thumbnailer:
    """``pixmap(preview)`` at ``size`` logical pixels × the device pixel ratio."""

    def __init__(self, size: int = THUMB_SIZE, device_pixel_ratio: float = 1.0):
        self.size = size
        self.ratio = max(1.0, float(device_pixel_ratio))
        self._renderers: dict[int, object] = {}

    @property
    def pixels(self) -> int:
        return round(self.size * self.ratio)

    def _renderer(self, pixels: int):
        if pixels not in self._renderers:
            from engine.render import MeshRenderer

            self._renderers[pixels] = MeshRenderer(pixels)
        return self._renderers[pixels]

    def pixmap(self, preview: Preview, rendered: np.ndarray | None = None) -> QPixmap:
        """The thumbnail of ``preview``; a 3D one from ``rendered`` (``(px, px, 3)``, made apart
        with ``render.render_meshes_apart``) when given, else rendered here."""
        if rendered is not None:
            pm = array_to_pixmap(rendered)
        elif preview.image is not None:
            pm = array_to_pixmap(preview.image).scaled(
                self.pixels, self.pixels, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.FastTransformation)
        elif preview.mesh is None:
            pm = self.blank()
            return pm
        else:
            pm = array_to_pixmap(self._renderer(self.pixels).render(preview.mesh))
        pm.setDevicePixelRatio(self.ratio)
        return pm

    def blank(self) -> QPixmap:
        pm = QPixmap(self.pixels, self.pixels)
        pm.fill(QColor(40, 40, 44))
        pm.setDevicePixelRatio(self.ratio)
        return pm

    def still(self, mesh, pixels: int) -> np.ndarray:
        """A larger render for the viewer where no interactive 3D view can open."""
        return self._renderer(int(pixels)).render(mesh)

    def close(self) -> None:
        for r in self._renderers.values():
            r.close()
        self._renderers.clear()


def save_pixmap(pixmap: QPixmap, path: Path) -> None:
    """Write a thumbnail PNG atomically."""
    with atomic_path(path) as tmp:
        pixmap.save(str(tmp), "PNG")


def load_pixmap(path: Path, ratio: float) -> QPixmap | None:
    pm = QPixmap(str(path))
    if pm.isNull():
        return None
    pm.setDevicePixelRatio(ratio)
    return pm
