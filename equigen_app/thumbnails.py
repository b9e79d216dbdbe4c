"""Thumbnails: 2D INRs from their decoded image, 3D ones from one shared off-screen plotter.

Called on the GUI thread only (VTK is not thread-safe); mesh extraction happens before, in the
worker.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtGui import QColor, QImage, QPixmap

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
    def __init__(self, size: int = THUMB_SIZE):
        self.size = size
        self._renderer = None

    def pixmap(self, preview: Preview) -> QPixmap:
        if preview.image is not None:
            return array_to_pixmap(preview.image)
        if preview.mesh is None:
            pm = QPixmap(self.size, self.size)
            pm.fill(QColor(40, 40, 44))
            return pm
        if self._renderer is None:
            from engine.render import MeshRenderer

            self._renderer = MeshRenderer(self.size)
        return array_to_pixmap(self._renderer.render(preview.mesh))

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
