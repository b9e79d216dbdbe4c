"""The main window: drop images, meshes or INR files; see them as a grid; export a selection.

A thin layer: opening, fitting and exporting are engine.session generators run by workers; this
file only wires widgets to them.
"""

from __future__ import annotations

import logging
from pathlib import Path

from platformdirs import user_data_dir
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView, QComboBox, QFileDialog, QLabel, QListView, QMainWindow, QMessageBox,
    QProgressBar, QPushButton, QToolBar,
)

from engine.progress import Progress
from engine.session import OpenResult, export_previews, open_files
from equigen_app import workers
from equigen_app.item_models import ShapeListModel
from equigen_app.thumbnails import THUMB_SIZE, Thumbnailer

log = logging.getLogger(__name__)

OPEN_FILTER = (
    "Shapes and INRs (*.safetensors *.pth *.png *.jpg *.jpeg *.bmp *.gif *.tif *.tiff *.webp "
    "*.obj *.ply *.stl *.off *.glb);;All files (*)"
)


class MainWindow(QMainWindow):
    busy_changed = Signal(bool)
    task_finished = Signal()

    def __init__(self, fit_dir: str | Path | None = None):
        super().__init__()
        self.setWindowTitle("EquiGen Studio")
        self.setAcceptDrops(True)
        self.resize(980, 680)
        self.fit_dir = Path(fit_dir or Path(user_data_dir("EquiGen Studio", appauthor=False)) / "fitted")
        self.model = ShapeListModel(self)
        self.thumbnailer = Thumbnailer()
        self._worker = None
        self.last_problems: list[str] = []

        self.view = QListView()
        self.view.setViewMode(QListView.ViewMode.IconMode)
        self.view.setResizeMode(QListView.ResizeMode.Adjust)
        self.view.setMovement(QListView.Movement.Static)
        self.view.setIconSize(QSize(THUMB_SIZE, THUMB_SIZE))
        self.view.setGridSize(QSize(THUMB_SIZE + 24, THUMB_SIZE + 36))
        self.view.setUniformItemSizes(True)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.view.setModel(self.model)
        self.setCentralWidget(self.view)

        self.placeholder = QLabel(
            "Drop images, meshes or INR files here\n(.png .jpg · .obj .ply .stl .off .glb · "
            ".safetensors .pth)", self.view)
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.placeholder.setStyleSheet("color: gray; font-size: 15px;")

        self._build_actions()
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(260)
        self.progress.setVisible(False)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setVisible(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.statusBar().addPermanentWidget(self.progress)
        self.statusBar().addPermanentWidget(self.cancel_button)
        self.model.rowsInserted.connect(self._update_placeholder)
        self.model.modelReset.connect(self._update_placeholder)
        self._update_placeholder()

    # -- actions -------------------------------------------------------------------------------
    def _build_actions(self) -> None:
        bar = QToolBar("Main")
        bar.setMovable(False)
        self.addToolBar(bar)
        self.open_action = QAction("Open…", self, shortcut=QKeySequence.StandardKey.Open)
        self.open_action.triggered.connect(self._choose_files)
        self.export_action = QAction("Export selected…", self, shortcut=QKeySequence("Ctrl+E"))
        self.export_action.triggered.connect(self._choose_export_folder)
        self.clear_action = QAction("Clear", self)
        self.clear_action.triggered.connect(self.model.clear)
        self.mesh_format = QComboBox()
        self.mesh_format.addItems([".obj", ".ply", ".stl", ".glb"])
        self.mesh_format.setToolTip("File format for exported 3D shapes (2D shapes export as PNG)")
        for a in (self.open_action, self.export_action):
            bar.addAction(a)
        bar.addWidget(QLabel("  3D as "))
        bar.addWidget(self.mesh_format)
        bar.addSeparator()
        bar.addAction(self.clear_action)
        menu = self.menuBar().addMenu("&File")
        menu.addAction(self.open_action)
        menu.addAction(self.export_action)
        menu.addSeparator()
        quit_action = QAction("Quit", self, shortcut=QKeySequence.StandardKey.Quit)
        quit_action.triggered.connect(self.close)
        menu.addAction(quit_action)

    def _choose_files(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, "Open shapes", "", OPEN_FILTER)
        if paths:
            self.open_paths(paths)

    def _choose_export_folder(self) -> None:
        if not self.view.selectionModel().selectedIndexes():
            self.show_problem("select one or more shapes to export first")
            return
        folder = QFileDialog.getExistingDirectory(self, "Export selected shapes to")
        if folder:
            self.export_selected(folder, self.mesh_format.currentText())

    # -- drag and drop ----------------------------------------------------------------------------
    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.open_paths(paths)

    # -- work ----------------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self._worker is not None

    def open_paths(self, paths) -> None:
        """Open INR files; fit images and meshes first. Runs in the background."""
        self._run(open_files, [str(p) for p in paths], self.fit_dir,
                  on_result=self._opened, label="Opening")

    def export_selected(self, folder: str | Path, mesh_ext: str = ".obj") -> None:
        rows = sorted({i.row() for i in self.view.selectionModel().selectedIndexes()})
        previews = [self.model.preview(r) for r in rows]
        if not previews:
            self.show_problem("select one or more shapes to export first")
            return
        self._run(export_previews, previews, folder, mesh_ext,
                  on_result=lambda paths: self.statusBar().showMessage(
                      f"Exported {len(paths)} file(s) to {folder}", 8000),
                  label="Exporting")

    def cancel(self) -> None:
        if self._worker is not None:
            self._worker.quit()
            self.statusBar().showMessage("Cancelling…")

    def _run(self, gen_func, *args, on_result, label: str) -> None:
        if self.busy:
            self.show_problem("another task is still running; wait for it or cancel it")
            return
        self.progress.setVisible(True)
        self.progress.setRange(0, 0)
        self.cancel_button.setVisible(True)
        self.statusBar().showMessage(f"{label}…")
        self.busy_changed.emit(True)
        self._worker = workers.start(
            gen_func, *args, on_progress=self._on_progress, on_result=on_result,
            on_error=self.show_problem, on_finished=self._on_finished,
        )
        self._worker.aborted.connect(lambda: self.statusBar().showMessage("Cancelled", 5000))

    def _on_progress(self, event: Progress) -> None:
        if event.total > 0:
            self.progress.setRange(0, event.total)
            self.progress.setValue(event.done)
        if event.message:
            self.statusBar().showMessage(event.message)

    def _on_finished(self) -> None:
        self._worker = None
        self.progress.setVisible(False)
        self.cancel_button.setVisible(False)
        self.busy_changed.emit(False)
        self.task_finished.emit()

    def _opened(self, result: OpenResult) -> None:
        for pv in result.previews:
            self.model.add(pv, self.thumbnailer.pixmap(pv))
        self.statusBar().showMessage(f"Opened {len(result.previews)} shape(s)", 5000)
        if result.problems:
            n = len(result.problems)
            self.show_problem(f"{n} file(s) could not be opened:\n" + "\n".join(result.problems))

    def show_problem(self, message: str) -> None:
        """Tell the user what went wrong without blocking (and without a traceback)."""
        self.last_problems.append(message)
        self.statusBar().showMessage(message.splitlines()[0], 10000)
        box = QMessageBox(QMessageBox.Icon.Warning, "EquiGen Studio", message,
                          QMessageBox.StandardButton.Ok, self)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()

    def _update_placeholder(self, *args) -> None:
        self.placeholder.setVisible(self.model.rowCount() == 0)
        self.placeholder.resize(self.view.viewport().size())

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._update_placeholder()

    def closeEvent(self, event) -> None:
        if self._worker is not None:
            self._worker.quit()
        self.thumbnailer.close()
        super().closeEvent(event)
