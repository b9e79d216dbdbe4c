"""The studio driven as a user would: open the bundled examples, drop files, export, cancel."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh
from PIL import Image
from PySide6.QtCore import QItemSelectionModel, QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent

from equigen_app.app import bundled_examples
from equigen_app.main_window import MainWindow


@pytest.fixture
def window(qtbot, tmp_path):
    w = MainWindow(fit_dir=tmp_path / "fitted")
    qtbot.addWidget(w)
    w.show()
    yield w
    if w.busy:
        w.cancel()
        qtbot.waitUntil(lambda: not w.busy, timeout=30_000)


def _wait(qtbot, w, timeout=60_000):
    qtbot.waitUntil(lambda: not w.busy, timeout=timeout)


def test_bundled_examples_open_with_real_thumbnails(qtbot, window):
    examples = bundled_examples()
    assert len(examples) >= 10
    window.open_paths(examples)
    _wait(qtbot, window)
    assert window.model.rowCount() == len(examples)
    assert not window.last_problems
    dims = set()
    for row in range(window.model.rowCount()):
        pv = window.model.preview(row)
        dims.add(pv.inr.spec.in_dim)
        pixmap = window.model.index(row).data(Qt.ItemDataRole.DecorationRole)
        img = pixmap.toImage()
        values = [img.pixelColor(x, y).lightness() for x in range(0, img.width(), 8)
                  for y in range(0, img.height(), 8)]
        assert np.std(values) > 10, f"row {row} thumbnail is blank"
    assert dims == {2, 3}
    assert not window.placeholder.isVisible()


def test_dropping_files_fits_them_and_reports_bad_ones(qtbot, window, tmp_path, fashion):
    Image.fromarray((fashion[5] * 255).astype(np.uint8)).save(tmp_path / "shoe.png")
    trimesh.creation.icosphere(2).export(tmp_path / "ball.stl")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG but not really")
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(tmp_path / n)) for n in ("shoe.png", "ball.stl", "broken.png")])
    event = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime,
                       Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier)
    window.dropEvent(event)
    assert window.busy
    _wait(qtbot, window)
    names = {window.model.index(r).data() for r in range(window.model.rowCount())}
    assert names == {"shoe", "ball"}
    assert (tmp_path / "fitted" / "shoe.safetensors").exists()
    assert len(window.last_problems) == 1 and "broken.png" in window.last_problems[0]
    assert "Traceback" not in window.last_problems[0]


def test_export_selected_writes_png_and_meshes(qtbot, window, tmp_path):
    examples = bundled_examples()
    picks = [p for p in examples if p.stem in ("glyph_2", "shape_mug")]
    window.open_paths(picks)
    _wait(qtbot, window)
    sel = window.view.selectionModel()
    for r in range(window.model.rowCount()):
        sel.select(window.model.index(r), QItemSelectionModel.SelectionFlag.Select)
    out = tmp_path / "export"
    window.export_selected(out, ".ply")
    _wait(qtbot, window)
    assert sorted(p.name for p in out.iterdir()) == ["glyph_2.png", "shape_mug.ply"]
    mesh = trimesh.load(out / "shape_mug.ply", force="mesh")
    assert mesh.is_watertight and len(mesh.faces) > 1000
    assert Image.open(out / "glyph_2.png").size == (256, 256)


def test_export_without_selection_says_what_to_do(window):
    window.export_selected("/nonexistent")
    assert "select one or more shapes" in window.last_problems[-1]


def test_cancel_stops_fitting_and_adds_nothing(qtbot, window, tmp_path, fashion):
    paths = []
    for i in range(24):
        p = tmp_path / f"img{i}.png"
        Image.fromarray((fashion[i] * 255).astype(np.uint8)).save(p)
        paths.append(p)
    # Meshes take seconds each, so the cancel lands mid-fit.
    for i in range(3):
        trimesh.creation.capsule(0.4 + 0.1 * i, 0.2).export(tmp_path / f"cap{i}.obj")
        paths.append(tmp_path / f"cap{i}.obj")
    window.open_paths(paths)
    with qtbot.waitSignal(window._worker.yielded, timeout=30_000):
        pass
    window.cancel()
    _wait(qtbot, window)
    assert window.model.rowCount() == 0
    assert not window.last_problems


def test_generate_from_dropped_shots_then_export_generated(qtbot, window, tiny2d, tmp_path):
    assert window.load_model(tiny2d["model"])
    methods = [window.panel.method_box.itemData(i) for i in range(window.panel.method_box.count())]
    assert methods == ["equigen", "equigen-no-perturb", "shots-noise"]
    window.generate()  # no shots yet: a message, no work
    assert not window.busy and "drop 1 to 20 examples" in window.last_problems[-1]
    window.open_paths(tiny2d["shots"][:3])
    _wait(qtbot, window)
    window.panel.count.setValue(5)
    window.panel.diversity.setValue(80)
    window.generate()
    assert window.busy
    _wait(qtbot, window, timeout=120_000)
    assert window.generated.rowCount() == 5
    assert window.session.is_adapted_to([pv.path for pv in window.model.previews()])
    pixmap = window.generated.index(0).data(Qt.ItemDataRole.DecorationRole)
    assert not pixmap.isNull() and pixmap.width() > 0
    window.panel.count.setValue(2)
    window.generate()  # same shots: sampling only, no new adaptation
    _wait(qtbot, window)
    assert window.generated.rowCount() == 2
    sel = window.generated_view.selectionModel()
    sel.select(window.generated.index(1), QItemSelectionModel.SelectionFlag.Select)
    out = tmp_path / "gen-export"
    window.export_selected(out, ".obj")
    _wait(qtbot, window)
    assert [p.name for p in out.iterdir()] == ["generated-s0-001.png"]


def test_a_wrong_model_file_or_wrong_shots_say_what_to_do(qtbot, window, tiny2d, tmp_path):
    assert not window.load_model(tiny2d["corpus"] / "init.safetensors")
    assert "not an EquiGen model file" in window.last_problems[-1]
    assert window.load_model(tiny2d["model"])
    trimesh.creation.box().export(tmp_path / "box.obj")
    window.open_paths([tmp_path / "box.obj"])
    _wait(qtbot, window)
    window.generate()
    assert not window.busy
    assert "none of the shots is 2D" in window.last_problems[-1] and "Traceback" not in window.last_problems[-1]
    assert window.generated.rowCount() == 0
