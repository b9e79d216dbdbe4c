"""The main window: references on the left, generated results in the middle, the selected shape
large on the right with the generation controls under it.

A thin layer over ``state.StudioState`` (the lists, undo, the session on disk) and the engine's
progress generators (opening, fitting, adapting, generating, exporting), which workers run in
the background; this file only wires widgets to them.
"""

from __future__ import annotations

import logging
import shutil
import time
import uuid
from pathlib import Path

from platformdirs import user_data_dir, user_log_dir
from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView, QFileDialog, QLabel, QListView, QMainWindow, QMenu, QMessageBox, QProgressBar,
    QPushButton, QSplitter, QToolBar, QVBoxLayout, QWidget,
)

from engine.bundled import models_dir
from engine.diffusion.methods import methods_for
from engine.diffusion.session import GenerationSession
from engine.errors import EquigenError
from engine.inr_io import load_inr
from engine.progress import Progress
from engine.session import OpenResult, Preview, export_shapes, preview
from equigen_app import workers
from equigen_app.export_dialog import ExportDialog
from equigen_app.generate_panel import GeneratePanel, bundled_models
from equigen_app.item_models import ShapeListModel, shape_ids
from equigen_app.state import SessionLibrary, Shape, StudioState
from equigen_app.tasks import open_references, with_thumbnails
from equigen_app.thumbnails import THUMB_SIZE, Thumbnailer, load_pixmap, save_pixmap
from equigen_app.viewer import Viewer

log = logging.getLogger(__name__)

APP_NAME = "EquiGen Studio"
MODELS_DIR = models_dir()
DEFAULT_MODEL = "glyphs-2d.safetensors"
OPEN_FILTER = (
    "Shapes and INRs (*.safetensors *.pth *.png *.jpg *.jpeg *.bmp *.gif *.tif *.tiff *.webp "
    "*.obj *.ply *.stl *.off *.glb);;All files (*)"
)


DEVICE_CHOICES = (("auto", "Automatic (a CUDA GPU when present)"), ("cpu", "CPU"), ("cuda", "CUDA GPU"))


def device_text(generator) -> str:
    """Where adaptation and generation compute, in words (the loaded model's device)."""
    import torch

    from engine.device import describe

    return describe(generator.device if generator is not None else torch.device("cpu"))


class ShapeView(QListView):
    """An icon grid of shapes; accepts files and shapes dragged from the other view."""

    files_dropped = Signal(list)  # local paths
    shapes_dropped = Signal(list)  # shape ids
    refused = Signal(str)

    def __init__(self, name: str, accept_drops: bool, icon: int = THUMB_SIZE, parent=None):
        super().__init__(parent)
        self.setObjectName(name)
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setMovement(QListView.Movement.Static)
        self.setIconSize(QSize(icon, icon))
        self.setGridSize(QSize(icon + 20, icon + 32))
        self.setUniformItemSizes(True)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setDragEnabled(True)
        self.setDragDropMode(QAbstractItemView.DragDropMode.DragDrop if accept_drops
                             else QAbstractItemView.DragDropMode.DragOnly)
        self.setAcceptDrops(accept_drops)
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)

    def dragEnterEvent(self, event) -> None:
        if event.source() is self:
            event.ignore()
        elif event.mimeData().hasUrls() or shape_ids(event.mimeData()):
            event.acceptProposedAction()

    def dragMoveEvent(self, event) -> None:
        if event.source() is not self and (event.mimeData().hasUrls() or shape_ids(event.mimeData())):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        handle_drop(event, self.files_dropped.emit, self.shapes_dropped.emit, self.refused.emit,
                    from_self=event.source() is self)


def handle_drop(event, on_files, on_shapes, on_refused, from_self: bool = False) -> None:
    """Files (local URLs) and the studio's own shapes; web URLs are refused with a message."""
    mime = event.mimeData()
    ids = shape_ids(mime)
    if ids and not from_self:
        event.acceptProposedAction()
        on_shapes(ids)
        return
    urls = mime.urls() if mime.hasUrls() else []
    local = [u.toLocalFile() for u in urls if u.isLocalFile() and u.toLocalFile()]
    remote = [u.toString() for u in urls if not u.isLocalFile()]
    if local:
        event.acceptProposedAction()
        on_files(local)
    if remote:
        shown = ", ".join(remote[:3]) + (" …" if len(remote) > 3 else "")
        on_refused(f"only files on this computer can be opened, not web addresses ({shown}); "
                   "download them first, then drop the files")


class MainWindow(QMainWindow):
    busy_changed = Signal(bool)
    task_finished = Signal()

    def __init__(self, data_dir: str | Path | None = None, session: str | Path | None = None):
        super().__init__()
        self.setObjectName("mainWindow")
        self.setAcceptDrops(True)
        self.resize(1280, 800)
        self.data_dir = Path(data_dir or user_data_dir(APP_NAME, appauthor=False))
        self.library = SessionLibrary(self.data_dir)
        self.last_problems: list[str] = []
        self._worker = None
        self._viewer_worker = None
        self._viewing = ""
        self._task_started = 0.0
        self._stage_started: dict[str, float] = {}
        self.generator: GenerationSession | None = None
        self.device = device_text(None)
        self.thumbnailer = Thumbnailer(THUMB_SIZE, self.devicePixelRatioF())
        self._pixmaps: dict[str, object] = {}
        self._large: dict[str, Preview] = {}  # shapes decoded for the viewer (384 px, 96³)
        self._thumb_queue: list = []
        self._thumb_timer = QTimer(self)
        self._thumb_timer.setInterval(0)
        self._thumb_timer.timeout.connect(self._next_thumbnails)

        self.state = StudioState(self._initial_session(session))
        self.library.remember(self.state.folder)
        self.references_model = ShapeListModel(self.state.references, self._thumbnail, self)
        self.gallery_model = ShapeListModel(self.state.results, self._thumbnail, self)
        self.references_view = ShapeView("referencesView", accept_drops=True)
        self.references_view.setModel(self.references_model)
        self.gallery_view = ShapeView("galleryView", accept_drops=False)
        self.gallery_view.setModel(self.gallery_model)
        self.viewer = Viewer(still_renderer=lambda mesh, side: self.thumbnailer.still(mesh, 512))
        self.panel = GeneratePanel(bundled_models(MODELS_DIR))
        self._build_layout()
        self._build_actions()
        self._build_status_bar()
        self._connect()
        self._load_initial_model()
        self.panel.apply(self.state.settings)
        self._update_title()
        self._update_placeholder()
        self._update_actions()

    # -- construction --------------------------------------------------------------------------
    def _initial_session(self, session) -> Path:
        if session is not None:
            return Path(session)
        last = self.library.last()
        if last is not None:
            try:
                StudioState(last)
                return last
            except EquigenError as e:
                self.last_problems.append(f"{e}; a new session was started")
        return self.library.new()

    def _build_layout(self) -> None:
        self.add_references_button = QPushButton("Add references…", objectName="addReferencesButton")
        self.add_references_button.setToolTip("Images, meshes or INR files of the new kind of shape (Ctrl+O)")
        self.export_button = QPushButton("Export selected…", objectName="exportButton")
        self.export_button.setToolTip("Write the selected shapes as meshes, images or INR files (Ctrl+E)")
        left = self._titled("References", self.references_view, self.add_references_button)
        middle = self._titled("Generated", self.gallery_view, self.export_button)
        right_split = QSplitter(Qt.Orientation.Vertical)
        right_split.addWidget(self.viewer)
        right_split.addWidget(self.panel)
        right_split.setSizes([460, 300])
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(left)
        split.addWidget(middle)
        split.addWidget(right_split)
        split.setSizes([330, 560, 420])
        self.setCentralWidget(split)
        self.placeholder = QLabel(
            "Drop 1–20 examples of a new kind of shape here\n(images · meshes · INR files),\n"
            "then press Generate", self.references_view)
        self.placeholder.setObjectName("referencesPlaceholder")
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.placeholder.setWordWrap(True)
        self.placeholder.setStyleSheet("color: gray; font-size: 14px;")
        self.placeholder.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)

    @staticmethod
    def _titled(title: str, widget: QWidget, below: QWidget | None = None) -> QWidget:
        box = QWidget()
        layout = QVBoxLayout(box)
        layout.setContentsMargins(4, 4, 4, 4)
        label = QLabel(title)
        label.setStyleSheet("font-weight: bold;")
        layout.addWidget(label)
        layout.addWidget(widget, 1)
        if below is not None:
            layout.addWidget(below)
        return box

    def _action(self, text: str, slot, shortcut=None, tip: str = "") -> QAction:
        a = QAction(text, self)
        if shortcut is not None:
            a.setShortcut(QKeySequence(shortcut))
        if tip:
            a.setToolTip(tip)
            a.setStatusTip(tip)
        a.triggered.connect(slot)
        return a

    def _build_actions(self) -> None:
        K = QKeySequence.StandardKey
        self.new_session_action = self._action("New session", self.new_session, K.New)
        self.open_session_action = self._action("Open session…", self._choose_session)
        self.save_session_action = self._action("Save session as…", self._save_session_as, K.SaveAs)
        self.open_action = self._action("Add references…", self._choose_files, K.Open,
                                        "Open images, meshes or INR files as references")
        self.export_action = self._action("Export selected…", self._export_dialog, "Ctrl+E",
                                          "Write the selected shapes as meshes, images or INR files")
        self.quit_action = self._action("Quit", self.close, K.Quit)
        self.undo_action = self._action("Undo", self.undo, K.Undo)
        self.redo_action = self._action("Redo", self.redo, K.Redo)
        self.delete_action = self._action("Remove", self.remove_selected, K.Delete, "Remove the selected shapes")
        self.select_all_action = self._action("Select all", self._select_all, K.SelectAll)
        self.clear_results_action = self._action("Clear results", self.clear_results)
        self.adapt_action = self._action("Adapt", lambda: self.adapt(), "Ctrl+Shift+G", "Fine-tune the model on the references")
        self.generate_action = self._action("Generate", lambda: self.generate(), "Ctrl+G", "Make new shapes of the references' kind")
        self.more_action = self._action("More like this", self.more_like_this, "Ctrl+M",
                                        "Add the selected results to the references")
        self.blend_action = self._action("Blend", self.blend, "Ctrl+B", "Shapes between two selected references")
        self.cancel_action = self._action("Cancel", self.cancel, "Esc", "Stop the running task")
        self.reset_view_action = self.viewer.reset_action
        self.about_action = self._action("About EquiGen Studio", self.about)

        bar = QToolBar("Main", objectName="mainToolBar")
        bar.setMovable(False)
        for a in (self.open_action, self.export_action, None, self.undo_action, self.redo_action, None,
                  self.adapt_action, self.generate_action):
            bar.addSeparator() if a is None else bar.addAction(a)
        self.addToolBar(bar)

        menus = self.menuBar()
        file_menu = menus.addMenu("&File")
        file_menu.addActions([self.new_session_action, self.open_session_action])
        self.recent_menu = file_menu.addMenu("Recent sessions")
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        file_menu.addAction(self.save_session_action)
        file_menu.addSeparator()
        file_menu.addActions([self.open_action, self.export_action])
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)
        edit = menus.addMenu("&Edit")
        edit.addActions([self.undo_action, self.redo_action])
        edit.addSeparator()
        edit.addActions([self.delete_action, self.select_all_action, self.clear_results_action])
        edit.addSeparator()
        self.device_menu = edit.addMenu("Compute on")
        self.device_menu.setObjectName("deviceMenu")
        self.device_group = QActionGroup(self)
        import torch

        for name, text in DEVICE_CHOICES:
            action = self.device_menu.addAction(text)
            action.setCheckable(True)
            action.setData(name)
            action.setEnabled(name != "cuda" or torch.cuda.is_available())
            self.device_group.addAction(action)
        self.device_group.triggered.connect(lambda a: self.set_device(a.data()))
        gen = menus.addMenu("&Generate")
        gen.addActions([self.adapt_action, self.generate_action, self.more_action, self.blend_action,
                        self.cancel_action])
        view = menus.addMenu("&View")
        view.addAction(self.reset_view_action)
        help_menu = menus.addMenu("&Help")
        help_menu.addAction(self.about_action)

    def _build_status_bar(self) -> None:
        self.progress = QProgressBar(objectName="progressBar")
        self.progress.setMinimumWidth(360)
        self.progress.setVisible(False)
        self.cancel_button = QPushButton("Cancel", objectName="cancelButton")
        self.cancel_button.setVisible(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.device_label = QLabel(self.device, objectName="deviceLabel")
        self.device_label.setToolTip("Where adaptation and generation compute (Edit → Compute on); "
                                     "mesh references are labelled on the CPU")
        sb = self.statusBar()
        sb.addPermanentWidget(self.progress)
        sb.addPermanentWidget(self.cancel_button)
        sb.addPermanentWidget(self.device_label)

    def _connect(self) -> None:
        self.add_references_button.clicked.connect(self._choose_files)
        self.export_button.clicked.connect(self._export_dialog)
        self.references_view.files_dropped.connect(self.open_paths)
        self.references_view.shapes_dropped.connect(lambda ids: self._use_as_references(ids))
        self.references_view.refused.connect(self.show_problem)
        for view in (self.references_view, self.gallery_view):
            view.selectionModel().selectionChanged.connect(lambda *_, v=view: self._selection_changed(v))
            view.customContextMenuRequested.connect(lambda pos, v=view: self._context_menu(v, pos))
            view.doubleClicked.connect(lambda index, v=view: self._show(v))
        self.panel.generate_requested.connect(lambda: self.generate())
        self.panel.adapt_requested.connect(self.adapt)
        self.panel.more_like_this_requested.connect(self.more_like_this)
        self.panel.blend_requested.connect(self.blend)
        self.panel.model_chosen.connect(self._model_chosen)
        self.panel.count.valueChanged.connect(self._save_settings)
        self.panel.seed.valueChanged.connect(self._save_settings)
        self.panel.diversity.sliderReleased.connect(self._save_settings)
        self.panel.method_box.activated.connect(self._save_settings)
        self.state.changed.append(self._state_changed)
        self.references_model.rowsInserted.connect(self._update_placeholder)
        self.references_model.rowsRemoved.connect(self._update_placeholder)

    # -- thumbnails and the viewer ---------------------------------------------------------------
    def _thumbnail(self, shape: Shape):
        pm = self._pixmaps.get(shape.id)
        if pm is None:
            pm = load_pixmap(self.state.thumb_path(shape), self.thumbnailer.ratio) or self.thumbnailer.blank()
            self._pixmaps[shape.id] = pm
        return pm

    def _remember_later(self, items: list) -> None:
        """Make and save thumbnails of ``(shape, preview, rendered)`` a few per event-loop turn,
        so that adding many shapes at once never holds the window (blank until made)."""
        self._thumb_queue.extend(items)
        if not self._thumb_timer.isActive():
            self._thumb_timer.start()

    def _next_thumbnails(self) -> None:
        for _ in range(3):
            if not self._thumb_queue:
                self._thumb_timer.stop()
                return
            shape, pv, thumb = self._thumb_queue.pop(0)
            self._remember_preview(shape, pv, thumb)
            for model in (self.references_model, self.gallery_model):
                model.refresh(shape.id)

    def _remember_preview(self, shape: Shape, pv: Preview, thumb=None) -> None:
        pm = self.thumbnailer.pixmap(pv, thumb)
        self._pixmaps[shape.id] = pm
        save_pixmap(pm, self.state.thumb_path(shape))

    def _selection_changed(self, view: ShapeView) -> None:
        self._update_actions()
        if view.selectionModel().selectedIndexes():
            self._show(view)

    def _show(self, view: ShapeView) -> None:
        index = view.currentIndex()
        selected = view.selectionModel().selectedIndexes()
        if selected and index not in selected:
            index = selected[-1]
        if not index.isValid():
            return
        shape = view.model().shapes[index.row()]
        pv = self._large.get(shape.id)
        self._viewing = shape.id
        if pv is not None:
            self._show_preview(shape, pv)
            return
        self.viewer.show_message(f"Decoding {shape.name}…")
        path = self.state.path_of(shape)
        device = self.generator.device if self.generator is not None else None  # where the model computes

        def decode():
            yield Progress("decode", 0, 1)
            return preview(path, load_inr(path), image_size=384, mesh_resolution=96, device=device)

        self._viewing = shape.id
        if self._viewer_worker is not None:
            self._viewer_worker.quit()
        self._viewer_worker = workers.start(
            decode, on_result=lambda p, s=shape: self._decoded_for_viewer(s, p),
            on_error=lambda m: self.viewer.show_message(m))

    def _decoded_for_viewer(self, shape: Shape, pv: Preview) -> None:
        self._large[shape.id] = pv
        if self._viewing == shape.id:  # still the one asked for
            self._show_preview(shape, pv)

    def _show_preview(self, shape: Shape, pv: Preview) -> None:
        caption = f"{shape.name} · {shape.dim}D"
        if pv.image is not None:
            from equigen_app.thumbnails import array_to_pixmap

            self.viewer.show_image(array_to_pixmap(pv.image), caption)
        elif pv.mesh is not None:
            self.viewer.show_mesh(pv.mesh, caption)
        else:
            self.viewer.show_message(f"{shape.name}: {pv.note or 'no surface to show'}")

    # -- selection helpers -------------------------------------------------------------------------
    def _selected(self, view: ShapeView) -> list[Shape]:
        rows = sorted({i.row() for i in view.selectionModel().selectedIndexes()})
        return [view.model().shapes[r] for r in rows]

    def selected_shapes(self) -> list[Shape]:
        """The selection of the view with focus (else both views' selections)."""
        for view in (self.references_view, self.gallery_view):
            if view.hasFocus() and self._selected(view):
                return self._selected(view)
        return self._selected(self.references_view) + self._selected(self.gallery_view)

    def select(self, list_name: str, rows: list[int]) -> None:
        """Select ``rows`` of one list (scripts and tests)."""
        from PySide6.QtCore import QItemSelectionModel

        view = self.references_view if list_name == "references" else self.gallery_view
        sel = view.selectionModel()
        sel.clearSelection()
        for r in rows:
            sel.select(view.model().index(r), QItemSelectionModel.SelectionFlag.Select)
        if rows:
            sel.setCurrentIndex(view.model().index(rows[-1]), QItemSelectionModel.SelectionFlag.NoUpdate)
        view.setFocus()

    def _select_all(self) -> None:
        view = self.gallery_view if self.gallery_view.hasFocus() else self.references_view
        view.selectAll()

    def _context_menu(self, view: ShapeView, pos) -> None:
        menu = QMenu(self)
        if view is self.gallery_view:
            menu.addAction(self.more_action)
        else:
            menu.addAction(self.blend_action)
        menu.addAction(self.export_action)
        menu.addSeparator()
        menu.addAction(self.delete_action)
        menu.popup(view.viewport().mapToGlobal(pos))

    # -- editing -------------------------------------------------------------------------------------
    def remove_selected(self) -> None:
        shapes = self.selected_shapes()
        if shapes:
            self.state.remove([s.id for s in shapes])
            self.statusBar().showMessage(f"Removed {len(shapes)} shape(s); Undo brings them back", 5000)

    def clear_results(self) -> None:
        if len(self.state.results):
            self.state.clear("results")
            self.statusBar().showMessage("Cleared the results; Undo brings them back", 5000)

    def undo(self) -> None:
        text = self.state.undo_text
        if self.state.undo():
            self.statusBar().showMessage(f"Undid: {text}", 4000)

    def redo(self) -> None:
        text = self.state.redo_text
        if self.state.redo():
            self.statusBar().showMessage(f"Redid: {text}", 4000)

    def more_like_this(self) -> None:
        picks = self._selected(self.gallery_view)
        if not picks:
            self.show_problem("select one or more generated shapes first; they become references")
            return
        self._use_as_references([s.id for s in picks])

    def _use_as_references(self, ids: list[str]) -> None:
        ids = [i for i in ids if self._list_of(i) == "results"]  # not references, not another session's
        if not ids:
            return
        added = self.state.copy_to(ids, "references", text=f"use {len(ids)} result(s) as references")
        for sid, shape in zip(ids, added):
            if sid in self._large:
                self._large[shape.id] = self._large[sid]
            src = self.state.thumb_path(self.state.results[self.state.results.index_of(sid)])
            if src.exists():
                shutil.copyfile(src, self.state.thumb_path(shape))
        self.statusBar().showMessage(f"{len(added)} result(s) added to the references", 5000)

    def _list_of(self, shape_id: str) -> str:
        try:
            return self.state.find(shape_id)[0]
        except KeyError:
            return ""

    def _state_changed(self) -> None:
        self._update_actions()
        self._update_placeholder()

    def _save_settings(self, *args) -> None:
        c = self.panel.config()
        self.state.set_settings(count=c.n, seed=c.seed, diversity=c.diversity, method=c.method,
                                model=str(self.generator.model_path) if self.generator else "")

    # -- sessions --------------------------------------------------------------------------------------
    def new_session(self) -> None:
        self.open_session(self.library.new())

    def _choose_session(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open a session", str(self.library.root))
        if folder:
            self.open_session(folder)

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        for folder in self.library.recent():
            a = self.recent_menu.addAction(folder.name)
            a.triggered.connect(lambda _=False, f=folder: self.open_session(f))
        if self.recent_menu.isEmpty():
            self.recent_menu.addAction("(none)").setEnabled(False)

    def _save_session_as(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Copy this session into an empty folder", str(self.library.root))
        if folder:
            self.save_session_as(folder)

    def save_session_as(self, folder: str | Path) -> None:
        """Copy the session (it is always saved) to ``folder`` and continue there."""
        target = Path(folder)
        if target.exists() and any(target.iterdir()):
            target = target / self.state.title
        if target.exists():
            self.show_problem(f"{target} already exists; choose an empty folder")
            return
        shutil.copytree(self.state.folder, target)
        self.open_session(target)

    def open_session(self, folder: str | Path) -> bool:
        if self.busy:
            self.show_problem("a task is still running; wait for it or cancel it before switching sessions")
            return False
        try:
            state = StudioState(folder)
        except EquigenError as e:
            self.show_problem(str(e))
            return False
        self.state.changed.clear()
        self.state = state
        self._pixmaps.clear()
        self._large.clear()
        self.references_model.bind(state.references)
        self.gallery_model.bind(state.results)
        state.changed.append(self._state_changed)
        self.library.remember(state.folder)
        if self.generator is not None:
            self.generator.adapted_file = state.folder / "adapted.safetensors"
            self.generator.forget_adaptation()
        self.panel.apply(state.settings)
        if state.settings.model and (self.generator is None or str(self.generator.model_path) != state.settings.model):
            if Path(state.settings.model).is_file():
                self.load_model(state.settings.model)
        self.viewer.show_message("Select a shape to see it here")
        self._update_title()
        self._state_changed()
        return True

    def _update_title(self) -> None:
        self.setWindowTitle(f"{self.state.title} — {APP_NAME}")

    # -- models ------------------------------------------------------------------------------------------
    def _load_initial_model(self) -> None:
        wanted = self.state.settings.model
        if wanted and Path(wanted).is_file() and self.load_model(wanted):
            return
        models = bundled_models(MODELS_DIR)
        first = [m for m in models if m.name == DEFAULT_MODEL] or models  # the glyph model opens a first session
        if first:
            self.load_model(first[0])

    def set_device(self, name: str) -> None:
        """Compute on ``name`` (auto, cpu, cuda) from now on: the model is loaded there again."""
        self.state.set_settings(device=name)
        if self.generator is not None:
            self.load_model(self.generator.model_path)
        self._show_device()

    def _show_device(self) -> None:
        self.device = device_text(self.generator)
        self.device_label.setText(self.device)
        for action in self.device_group.actions():
            action.setChecked(action.data() == self.state.settings.device)

    def load_model(self, path: str | Path) -> bool:
        """Load a generator model file on the chosen device; False (and a message) when it cannot
        be used. A device that is not there (a session from another machine) falls back to auto."""
        try:
            try:
                generator = GenerationSession(path, device=self.state.settings.device)
            except EquigenError as e:
                if self.state.settings.device == "auto":
                    raise
                self.statusBar().showMessage(f"{e}; computing on the automatic choice instead", 10000)
                self.state.set_settings(device="auto")
                generator = GenerationSession(path, device="auto")
        except EquigenError as e:
            self.show_problem(str(e))
            return False
        generator.adapted_file = self.state.folder / "adapted.safetensors"
        self.generator = generator
        info = generator.info
        methods = list(methods_for(info.method))
        held_out = f"\nheld-out classes: {', '.join(info.target_classes)}" if info.target_classes else ""
        self.panel.set_model(str(path), f"{info.domain.upper()} {info.method} model ({info.spec}); "
                                        f"{info.recipe}{held_out}", methods)
        self.state.set_settings(model=str(path))
        self._update_actions()
        self._show_device()
        return True

    def _model_chosen(self, path: str) -> None:
        if not path:
            path, _ = QFileDialog.getOpenFileName(self, "Open a model", "", "EquiGen models (*.safetensors)")
            if not path:
                self.panel.reselect(str(self.generator.model_path) if self.generator else "")
                return
        if not self.load_model(path):
            self.panel.reselect(str(self.generator.model_path) if self.generator else "")

    # -- work ----------------------------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self._worker is not None

    @property
    def thumbnails_pending(self) -> bool:
        return bool(self._thumb_queue)

    def _choose_files(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, "Add references", "", OPEN_FILTER)
        if paths:
            self.open_paths(paths)

    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls() or shape_ids(event.mimeData()):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        handle_drop(event, self.open_paths, self._use_as_references, self.show_problem)

    def open_paths(self, paths) -> None:
        """Open INR files, fit images and meshes, and add them all to the references (background)."""
        incoming = self.state.folder / "incoming" / uuid.uuid4().hex[:8]  # one folder per drop: no name clashes
        device = str(self.generator.device) if self.generator is not None else "cpu"
        self._run(open_references, [str(p) for p in paths], incoming, self.thumbnailer.pixels, device,
                  on_result=lambda r: self._opened(*r, incoming), label="Opening")

    def _opened(self, result: OpenResult, thumbs: list, incoming: Path) -> None:
        shapes = self.state.add("references", [(Path(pv.path).stem, pv.inr) for pv in result.previews],
                                text=f"add {len(result.previews)} reference(s)")
        self._remember_later(list(zip(shapes, result.previews, thumbs)))
        shutil.rmtree(incoming, ignore_errors=True)
        self.statusBar().showMessage(f"Added {len(shapes)} reference(s)", 5000)
        if result.problems:
            n = len(result.problems)
            self.show_problem(f"{n} file(s) could not be opened:\n" + "\n".join(result.problems))

    def _model_dim(self) -> int | None:
        return self.generator.model.spec.in_dim if self.generator is not None else None

    def _use(self, choice) -> list[Path] | None:
        """The shot files of a ``ShotChoice``, or None after showing why there are none."""
        if choice.problem:
            self.show_problem(choice.problem)
            return None
        if choice.note:
            self.statusBar().showMessage(choice.note, 8000)
        return [self.state.path_of(s) for s in choice.shapes]

    def _shots(self) -> list[Path] | None:
        """The references of the model's kind (the selected ones, or all), or None and a message."""
        return self._use(self.state.shots_for(self._model_dim(), self._selected(self.references_view)))

    def adapt(self) -> None:
        shots = self._shots()
        if shots is None:
            return
        if self.generator.is_adapted_to(shots):
            self.statusBar().showMessage("Already adapted to these references", 4000)
            return
        self._run(self.generator.adapt, shots, on_result=lambda _: self.statusBar().showMessage(
            f"Adapted to {len(shots)} reference(s); Generate samples at once now", 6000), label="Adapting")

    def generate(self, blend: tuple[int, int] | None = None, shots: list[Path] | None = None) -> None:
        """Adapt to the references (the selected ones, or all) unless already adapted, then
        generate; results appear in the gallery as they are decoded."""
        shots = shots or self._shots()
        if shots is None:
            return
        config = self.panel.config(blend)
        self._save_settings()
        label = "Generating" if self.generator.is_adapted_to(shots) else "Adapting, then generating"
        self._run(with_thumbnails, self.generator.generate(shots, config), self.thumbnailer.pixels,
                  on_result=self._generated, label=label)

    def blend(self) -> None:
        choice = self.state.blend_for(self._model_dim(), self._selected(self.references_view),
                                      self.panel.method_box.currentData())
        shots = self._use(choice)
        if shots is not None:
            self.generate(blend=choice.blend, shots=shots)

    def _generated(self, previews: list[Preview]) -> None:
        self.statusBar().showMessage(f"Generated {len(previews)} shape(s)", 5000)

    def _add_result(self, pv: Preview, thumb) -> None:
        (shape,) = self.state.add("results", [(Path(pv.path).stem, pv.inr)],
                                  origin=f"{pv.inr.meta.get('generated_by', '')} · seed {pv.inr.meta.get('seed')}",
                                  text="generate")
        self._remember_preview(shape, pv, thumb)

    def _export_dialog(self) -> None:
        shapes = self.selected_shapes()
        if not shapes:
            self.show_problem("select one or more shapes to export first")
            return
        dialog = ExportDialog(len(shapes), str(Path.home() / "EquiGen exports"), parent=self)
        if dialog.exec() and not dialog.error:
            self.export(shapes, dialog.chosen_folder(), dialog.options())
        elif dialog.error:
            self.show_problem(dialog.error)

    def export(self, shapes: list[Shape], folder: str | Path, options) -> None:
        """Write ``shapes`` to ``folder`` (never overwriting earlier files)."""
        items = [(s.name, load_inr(self.state.path_of(s))) for s in shapes]
        self._run(export_shapes, items, folder, options, True,
                  on_result=lambda paths: self.statusBar().showMessage(
                      f"Exported {len(paths)} file(s) to {folder}", 8000), label="Exporting")

    def cancel(self) -> None:
        if self._worker is not None:
            self._worker.quit()
            self.statusBar().showMessage("Cancelling…")

    def _run(self, gen_func, *args, on_result, label: str) -> None:
        if self.busy:
            self.show_problem("another task is still running; wait for it or cancel it")
            return
        self._task_started = time.perf_counter()
        self._stage_started = {}
        self._label = label
        self.progress.setVisible(True)
        self.progress.setRange(0, 0)
        self.progress.setFormat(label)
        self.cancel_button.setVisible(True)
        self.statusBar().showMessage(f"{label}…")
        self._worker = workers.start(
            gen_func, *args, on_progress=self._on_progress, on_result=on_result,
            on_error=self.show_problem, on_finished=self._on_finished,
        )
        self._worker.aborted.connect(lambda: self.statusBar().showMessage("Cancelled", 5000))
        self._update_actions()
        self.busy_changed.emit(True)

    def _on_progress(self, event: Progress) -> None:
        if isinstance(event.payload, tuple) and isinstance(event.payload[0], Preview):
            self._add_result(*event.payload)
        if event.total > 0:
            now = time.perf_counter()
            start = self._stage_started.setdefault(event.stage, now)
            self.progress.setRange(0, event.total)
            self.progress.setValue(min(event.done, event.total))
            text = f"{event.stage} {event.done}/{event.total}"
            if event.done > 0 and now - start > 0.5:
                eta = (now - start) / event.done * (event.total - event.done)
                text += f" · {_seconds(eta)} left"
            loss = next(iter(event.metrics.items()), None)
            if loss is not None:
                text += f" · {loss[0]} {loss[1]:.3g}"
            self.progress.setFormat(text)
        if event.message:
            self.statusBar().showMessage(event.message)

    def _on_finished(self) -> None:
        self._worker = None
        self.progress.setVisible(False)
        self.cancel_button.setVisible(False)
        self._update_actions()
        self.busy_changed.emit(False)
        self.task_finished.emit()

    def _update_actions(self) -> None:
        busy = self.busy
        self.panel.set_busy(busy)
        for a in (self.adapt_action, self.generate_action, self.blend_action, self.new_session_action,
                  self.open_session_action):
            a.setEnabled(not busy)
        self.cancel_action.setEnabled(busy)
        self.undo_action.setEnabled(bool(self.state.undo_text) and not busy)
        self.redo_action.setEnabled(bool(self.state.redo_text) and not busy)
        self.undo_action.setToolTip(f"Undo {self.state.undo_text}".strip())
        self.redo_action.setToolTip(f"Redo {self.state.redo_text}".strip())
        self.panel.shots_label.setText(self._references_summary())
        has_results = bool(self._selected(self.gallery_view))
        self.more_action.setEnabled(has_results)
        self.panel.more_button.setEnabled(has_results)

    def _references_summary(self) -> str:
        return self.state.shots_summary(self._model_dim(), self._selected(self.references_view))

    def about(self) -> None:
        import PySide6
        import torch

        from engine import __version__

        QMessageBox.about(self, f"About {APP_NAME}", (
            f"<b>{APP_NAME}</b> {__version__}<br>Few-shot generation of shapes (EquiGen, CVPR 2025)<br><br>"
            f"Computing on: {self.device}<br>torch {torch.__version__} · Qt {PySide6.__version__}<br>"
            f"Session: {self.state.folder}<br>Log: {log_file()}"))

    def show_problem(self, message: str) -> None:
        """Tell the user what went wrong without blocking (and without a traceback)."""
        self.last_problems.append(message)
        first = message.splitlines()[0]
        more = " (details in the message)" if "\n" in message else ""
        self.statusBar().showMessage(first + more, 10000)
        box = QMessageBox(QMessageBox.Icon.Warning, APP_NAME, message, QMessageBox.StandardButton.Ok, self)
        box.setObjectName("problemDialog")
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()

    def _update_placeholder(self, *args) -> None:
        self.placeholder.setVisible(self.references_model.rowCount() == 0)
        self.placeholder.resize(self.references_view.viewport().size())

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        QTimer.singleShot(0, self._update_placeholder)

    def showEvent(self, event) -> None:
        super().showEvent(event)
        QTimer.singleShot(0, self._update_placeholder)

    def closeEvent(self, event) -> None:
        if self._worker is not None:
            self._worker.quit()
        self.viewer.close_interactor()
        self.thumbnailer.close()
        super().closeEvent(event)


def _seconds(s: float) -> str:
    return f"{s:.0f} s" if s < 90 else f"{s / 60:.0f} min"


def log_file() -> Path:
    """Where the studio writes its log."""
    return Path(user_log_dir(APP_NAME, appauthor=False)) / "studio.log"
