"""The large view of the selected shape: a zoomable image for 2D, an orbitable mesh for 3D.

3D uses one pyvistaqt ``QtInteractor`` (left-drag orbits, right-drag or wheel zooms, middle-drag
pans, R resets), made the first time a 3D shape is shown, since a render window costs ~1 s. It
needs a real display (X11/Xvfb, Wayland, Windows, macOS); on Qt's ``offscreen`` platform the view
falls back to a still render from the thumbnailer's off-screen plotter.
"""

from __future__ import annotations

import logging

import numpy as np
import trimesh
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QGuiApplication, QPainter, QPixmap
from PySide6.QtWidgets import (
    QGraphicsPixmapItem, QGraphicsScene, QGraphicsView, QLabel, QStackedWidget, QToolBar, QVBoxLayout, QWidget,
)

from engine.render import BACKGROUND, MESH_COLOUR

log = logging.getLogger(__name__)


def interactive_3d_available() -> bool:
    """Whether a QtInteractor can open here (not on the offscreen/minimal platforms)."""
    return QGuiApplication.platformName() not in ("offscreen", "minimal")


class ImageView(QGraphicsView):
    """A pixmap that fits the view, zooms with the wheel about the cursor, pans by dragging."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self._item = QGraphicsPixmapItem()
        self._item.setTransformationMode(Qt.TransformationMode.FastTransformation)  # crisp pixels
        self.scene().addItem(self._item)
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)
        self.setBackgroundBrush(Qt.GlobalColor.black)
        self.zoom = 1.0

    def show_pixmap(self, pixmap: QPixmap) -> None:
        self._item.setPixmap(pixmap)
        self.scene().setSceneRect(self._item.boundingRect())
        self.reset_view()

    def reset_view(self) -> None:
        self.resetTransform()
        self.fitInView(self._item, Qt.AspectRatioMode.KeepAspectRatio)
        self.zoom = 1.0

    def wheelEvent(self, event) -> None:
        factor = 1.25 if event.angleDelta().y() > 0 else 0.8
        if 0.2 <= self.zoom * factor <= 40:
            self.zoom *= factor
            self.scale(factor, factor)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if abs(self.zoom - 1.0) < 1e-9:
            self.fitInView(self._item, Qt.AspectRatioMode.KeepAspectRatio)


class Viewer(QWidget):
    """``show_image(pixmap)``, ``show_mesh(mesh)`` or ``show_message(text)``; ``reset_view()``."""

    reset_requested = Signal()

    def __init__(self, still_renderer=None, parent=None):
        super().__init__(parent)
        self.setObjectName("viewer")
        self._still = still_renderer  # callable(mesh, size) -> (H, W, 3) uint8, for the fallback
        self.stack = QStackedWidget()
        self.message = QLabel("Select a shape to see it here")
        self.message.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.message.setWordWrap(True)
        self.message.setStyleSheet("color: gray;")
        self.image_view = ImageView()
        self.still = QLabel()
        self.still.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.still.setStyleSheet("background: rgb(31, 33, 38);")
        for w in (self.message, self.image_view, self.still):
            self.stack.addWidget(w)
        self.interactor = None  # pyvistaqt.QtInteractor, made on first use
        self.reset_action = QAction("Reset view", self, shortcut="R")
        self.reset_action.setToolTip("Fit the shape to the view again (R)")
        self.reset_action.triggered.connect(self.reset_view)
        bar = QToolBar()
        bar.addAction(self.reset_action)
        self.caption = QLabel()
        self.caption.setStyleSheet("color: gray;")
        bar.addWidget(self.caption)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.stack, 1)
        layout.addWidget(bar)
        self.kind = "none"

    def show_message(self, text: str) -> None:
        self.message.setText(text)
        self.stack.setCurrentWidget(self.message)
        self.caption.setText("")
        self.kind = "none"

    def show_image(self, pixmap: QPixmap, caption: str = "") -> None:
        self.stack.setCurrentWidget(self.image_view)
        self.image_view.show_pixmap(pixmap)
        self.caption.setText(caption)
        self.kind = "image"

    def show_mesh(self, mesh: trimesh.Trimesh, caption: str = "") -> None:
        self.caption.setText(caption)
        self.kind = "mesh"
        if interactive_3d_available():
            if self._show_interactive(mesh):
                return
        if self._still is not None:
            from equigen_app.thumbnails import array_to_pixmap

            side = max(256, min(768, min(self.width(), self.height())))
            pm = array_to_pixmap(self._still(mesh, side))
            pm.setDevicePixelRatio(1.0)
            self.still.setPixmap(pm.scaled(self.still.size(), Qt.AspectRatioMode.KeepAspectRatio,
                                           Qt.TransformationMode.SmoothTransformation))
            self.stack.setCurrentWidget(self.still)

    def _show_interactive(self, mesh: trimesh.Trimesh) -> bool:
        try:
            if self.interactor is None:
                from pyvistaqt import QtInteractor

                self.interactor = QtInteractor(self)
                self.interactor.set_background(BACKGROUND)
                self.stack.addWidget(self.interactor)
            import pyvista as pv

            faces = np.hstack([np.full((len(mesh.faces), 1), 3), mesh.faces]).ravel()
            poly = pv.PolyData(np.asarray(mesh.vertices, dtype=np.float32), faces)
            p = self.interactor
            p.clear_actors()
            p.add_mesh(poly, color=MESH_COLOUR, smooth_shading=True, specular=0.3, name="shape")
            self.stack.setCurrentWidget(p)
            self.reset_view()
            return True
        except Exception as e:  # no GL here: fall back to the still render
            log.warning("interactive 3D view unavailable: %s", e)
            return False

    def reset_view(self) -> None:
        if self.kind == "image":
            self.image_view.reset_view()
        elif self.kind == "mesh" and self.interactor is not None and self.stack.currentWidget() is self.interactor:
            p = self.interactor
            p.camera_position = "iso"
            p.camera.azimuth = 20
            p.camera.elevation = 10
            p.reset_camera()
            p.render()

    def close_interactor(self) -> None:
        if self.interactor is not None:
            self.interactor.close()
            self.interactor = None
