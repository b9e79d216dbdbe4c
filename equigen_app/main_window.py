"""The main window: drop a few shots (images, meshes or INR files), generate new shapes of their
kind with a model, look at both grids, export a selection.

A thin layer: opening, fitting, adapting, generating and exporting are engine generators run by
workers; this file only wires widgets to them.
"""

from __future__ import annotations

import logging
from pathlib import Path

from platformdirs import user_data_dir
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView, QComboBox, QDockWidget, QFileDialog, QLabel, QListView, QMainWindow,
    QMessageBox, QProgressBar, QPushButton, QSplitter, QToolBar, QVBoxLayout, QWidget,
)

from engine.diffusion.generate import GENERATION_METHODS
from engine.diffusion.session import GenerationSession
from engine.errors import EquigenError
from engine.progress import Progress
from engine.session import OpenResult, Preview, export_previews, open_files
from equigen_app import workers
from equigen_app.generate_panel import GeneratePanel, bundled_models
from equigen_app.item_models import ShapeListModel
from equigen_app.thumbnails import THUMB_SIZE, Thumbnailer

log = logging.getLogger(__name__)

MODELS_DIR = Path(__file__).resolve().parents[1] / "resources" / "models"
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

        self.view = self._grid_view(self.model)
        self.generated = ShapeListModel(self)
        self.generated_view = self._grid_view(self.generated)
        self.session: GenerationSession | None = None
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self._titled("Shots", self.view))
        split.addWidget(self._titled("Generated", self.generated_view))
        split.setSizes([300, 380])
        self.setCentralWidget(split)
        self.panel = GeneratePanel(bundled_models(MODELS_DIR))
        self.panel.generate_requested.connect(self.generate)
        self.panel.model_chosen.connect(self._model_chosen)
        dock = QDockWidget("Generate", self)
        dock.setWidget(self.panel)
        dock.setFeatures(QDockWidget.DockWidgetFeature.NoDockWidgetFeatures)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)

        self.placeholder = QLabel(
            "Drop 1–20 examples of a new kind of shape here\n(images .png .jpg · meshes .obj .ply .stl "
            ".off .glb · INR files .safetensors .pth),\nthen press Generate", self.view)
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.placeholder.setStyleSheet("color: gray; font-size: 15px;")

        self._build_actions()
        models = bundled_models(MODELS_DIR)
        if models:
            self.load_model(models[0])
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

    @staticmethod
    def _grid_view(model: ShapeListModel) -> QListView:
        view = QListView()
        view.setViewMode(QListView.ViewMode.IconMode)
        view.setResizeMode(QListView.ResizeMode.Adjust)
        view.setMovement(QListView.Movement.Static)
        view.setIconSize(QSize(THUMB_SIZE, THUMB_SIZE))
        view.setGridSize(QSize(THUMB_SIZE + 24, THUMB_SIZE + 36))
        view.setUniformItemSizes(True)
        view.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        view.setModel(model)
        return view

    @staticmethod
    def _titled(title: str, widget: QWidget) -> QWidget:
        box = QWidget()
        layout = QVBoxLayout(box)
        layout.setContentsMargins(4, 4, 4, 0)
        label = QLabel(title)
        label.setStyleSheet("font-weight: bold;")
        layout.addWidget(label)
        layout.addWidget(widget)
        return box

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
        self.clear_action.triggered.connect(self.generated.clear)
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
        if not self._selected_previews():
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

    def _selected_previews(self) -> list[Preview]:
        out = []
        for view, model in ((self.view, self.model), (self.generated_view, self.generated)):
            rows = sorted({i.row() for i in view.selectionModel().selectedIndexes()})
            out += [model.preview(r) for r in rows]
        return out

    def load_model(self, path: str | Path) -> bool:
        """Load a generator model file; False (and a message) when it cannot be used."""
        try:
            session = GenerationSession(path)
        except EquigenError as e:
            self.show_problem(str(e))
            return False
        self.session = session
        info = session.info
        methods = [m for m in GENERATION_METHODS
                   if (m == "hyperdiffusion") == (info.method == "hyperdiffusion") or m == "shots-noise"]
        held_out = f"; held-out classes: {', '.join(info.target_classes)}" if info.target_classes else ""
        self.panel.set_model(str(path), f"{info.domain.upper()} {info.method} model ({info.spec}){held_out}",
                             methods)
        return True

    def _model_chosen(self, path: str) -> None:
        if not path:
            path, _ = QFileDialog.getOpenFileName(self, "Open a model", "", "EquiGen models (*.safetensors)")
            if not path:
                self.panel.reselect(str(self.session.model_path) if self.session else "")
                return
        if not self.load_model(path):
            self.panel.reselect(str(self.session.model_path) if self.session else "")

    def generate(self) -> None:
        """Adapt the model to the shots (the selected ones, or all) of its kind, unless it already
        is adapted to them, and generate."""
        if self.session is None:
            self.show_problem("no model loaded: choose one under Generate → Model "
                              "(make one with 'equigen train')")
            return
        rows = sorted({i.row() for i in self.view.selectionModel().selectedIndexes()})
        candidates = [self.model.preview(r) for r in rows] or self.model.previews()
        if not candidates:
            self.show_problem("drop 1 to 20 examples of the new kind of shape into Shots first")
            return
        dim = self.session.model.spec.in_dim
        shots = [pv.path for pv in candidates if pv.inr.spec.in_dim == dim]
        kind = "images or 2D INR files" if dim == 2 else "meshes or 3D INR files"
        if not shots:
            self.show_problem(f"this model makes {dim}D shapes and none of the shots is {dim}D; "
                              f"drop {kind}, or choose a {5 - dim}D model")
            return
        if len(shots) < len(candidates):
            self.statusBar().showMessage(f"Using the {len(shots)} {dim}D shot(s); "
                                         f"{len(candidates) - len(shots)} of another kind left out", 8000)
        label = "Generating" if self.session.is_adapted_to(shots) else "Adapting to the shots"
        self._run(self.session.generate, shots, self.panel.config(), on_result=self._generated, label=label)

    def _generated(self, previews: list[Preview]) -> None:
        self.generated.clear()
        for pv in previews:
            self.generated.add(pv, self.thumbnailer.pixmap(pv))
        self.statusBar().showMessage(f"Generated {len(previews)} shape(s)", 5000)

    def export_selected(self, folder: str | Path, mesh_ext: str = ".obj") -> None:
        previews = self._selected_previews()
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
