"""The studio driven as a user would: open the bundled examples, drop files, curate, undo,
generate, export, reopen the session, cancel."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh
from PIL import Image
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent
from PySide6.QtWidgets import QListView, QProgressBar, QPushButton, QSlider, QSpinBox

from engine.inr_io import load_inr
from engine.session import ExportOptions
from equigen_app.app import bundled_examples
from equigen_app.main_window import MainWindow


@pytest.fixture
def window(qtbot, tmp_path):
    w = MainWindow(data_dir=tmp_path / "data")
    qtbot.addWidget(w)
    w.show()
    yield w
    if w.busy:
        w.cancel()
        qtbot.waitUntil(lambda: not w.busy, timeout=30_000)


def _wait(qtbot, w, timeout=60_000):
    qtbot.waitUntil(lambda: not w.busy and not w.thumbnails_pending, timeout=timeout)


def _drop(target, paths=(), urls=()):
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths] + [QUrl(u) for u in urls])
    event = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime,
                       Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier)
    target.dropEvent(event)


def _names(w, list_name="references"):
    return [s.name for s in w.state.list(list_name)]


def test_every_control_has_its_stable_name(window):
    for cls, name in ((QListView, "referencesView"), (QListView, "galleryView"), (QPushButton, "adaptButton"),
                      (QPushButton, "generateButton"), (QPushButton, "cancelButton"), (QPushButton, "exportButton"),
                      (QPushButton, "addReferencesButton"), (QSpinBox, "countSpin"), (QSpinBox, "seedSpin"),
                      (QSlider, "diversitySlider"), (QProgressBar, "progressBar")):
        assert window.findChild(cls, name) is not None, name
    assert window.findChild(object, "modelCombo") is not None and window.findChild(object, "viewer") is not None
    assert "CPU" in window.device_label.text() or "GPU" in window.device_label.text()


def test_bundled_examples_open_with_real_thumbnails_and_show_large(qtbot, window):
    examples = bundled_examples()
    assert len(examples) >= 10
    window.open_paths(examples)
    _wait(qtbot, window)
    assert len(window.state.references) == len(examples) and not window.last_problems
    model = window.references_model
    for row in range(model.rowCount()):
        img = model.index(row).data(Qt.ItemDataRole.DecorationRole).toImage()
        values = [img.pixelColor(x, y).lightness() for x in range(0, img.width(), 8) for y in range(0, img.height(), 8)]
        assert np.std(values) > 10, f"row {row} thumbnail is blank"
    assert {s.dim for s in window.state.references} == {2, 3}
    assert not window.placeholder.isVisible()
    glyph = _names(window).index("glyph_2")
    window.select("references", [glyph])
    qtbot.waitUntil(lambda: window.viewer.kind == "image", timeout=10_000)
    mesh = _names(window).index("shape_mug")
    window.select("references", [mesh])
    qtbot.waitUntil(lambda: window.viewer.kind == "mesh", timeout=10_000)


def test_dropped_files_fit_bad_ones_and_web_urls_are_told(qtbot, window, tmp_path, fashion):
    Image.fromarray((fashion[5] * 255).astype(np.uint8)).save(tmp_path / "shoe.png")
    trimesh.creation.icosphere(2).export(tmp_path / "ball.stl")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG but not really")
    _drop(window.references_view, [tmp_path / n for n in ("shoe.png", "ball.stl", "broken.png")],
          ["https://example.com/cat.png"])
    assert "web addresses" in window.last_problems[-1]
    assert window.busy
    _wait(qtbot, window)
    assert sorted(_names(window)) == ["ball", "shoe"]
    assert len(window.last_problems) == 2 and "broken.png" in window.last_problems[-1]
    assert "Traceback" not in window.last_problems[-1]


def test_same_name_from_two_folders_keeps_both(qtbot, window, tmp_path, fashion):
    for i, folder in enumerate(("a", "b")):
        (tmp_path / folder).mkdir()
        Image.fromarray((fashion[i] * 255).astype(np.uint8)).save(tmp_path / folder / "item.png")
        window.open_paths([tmp_path / folder / "item.png"])
        _wait(qtbot, window)
    assert _names(window) == ["item", "item 2"]
    a, b = (load_inr(window.state.path_of(s)) for s in window.state.references)
    assert not all(np.array_equal(a.params[k], b.params[k]) for k in a.params)


def test_remove_undo_redo_and_the_session_survives_reopening(qtbot, window, tmp_path):
    picks = [p for p in bundled_examples() if p.stem in ("glyph_2", "glyph_9", "glyph_A")]
    window.open_paths(picks)
    _wait(qtbot, window)
    window.select("references", [1])
    window.delete_action.trigger()
    assert _names(window) == ["glyph_2", "glyph_A"]
    window.undo_action.trigger()
    assert _names(window) == ["glyph_2", "glyph_9", "glyph_A"]
    window.redo_action.trigger()
    assert _names(window) == ["glyph_2", "glyph_A"]
    window.panel.seed.setValue(7)
    # no close, no save: a killed app reopens where it was
    again = MainWindow(data_dir=tmp_path / "data")
    qtbot.addWidget(again)
    assert again.state.folder == window.state.folder
    assert _names(again) == ["glyph_2", "glyph_A"] and again.panel.seed.value() == 7
    again.new_session()
    assert _names(again) == [] and again.state.folder != window.state.folder
    assert window.state.folder in again.library.recent()


def test_export_writes_meshes_images_and_inrs_and_never_overwrites(qtbot, window, tmp_path):
    picks = [p for p in bundled_examples() if p.stem in ("glyph_2", "shape_mug")]
    window.open_paths(picks)
    _wait(qtbot, window)
    out = tmp_path / "export"
    shapes = list(window.state.references)
    options = ExportOptions(mesh_ext=".ply", resolution=96, image_size=64, with_inr=True)
    window.export(shapes, out, options)
    _wait(qtbot, window)
    window.export(shapes, out, options)
    _wait(qtbot, window)
    assert sorted(p.name for p in out.iterdir()) == [
        "glyph_2-2.png", "glyph_2-2.safetensors", "glyph_2.png", "glyph_2.safetensors",
        "shape_mug-2.ply", "shape_mug-2.safetensors", "shape_mug.ply", "shape_mug.safetensors"]
    assert trimesh.load(out / "shape_mug.ply", force="mesh").is_watertight
    assert Image.open(out / "glyph_2.png").size == (64, 64)


def test_export_without_selection_says_what_to_do(window):
    window.export_button.click()
    assert "select one or more shapes" in window.last_problems[-1]


def test_cancel_stops_fitting_and_adds_nothing(qtbot, window, tmp_path, fashion):
    paths = []
    for i in range(24):
        p = tmp_path / f"img{i}.png"
        Image.fromarray((fashion[i] * 255).astype(np.uint8)).save(p)
        paths.append(p)
    for i in range(3):  # meshes take seconds each, so the cancel lands mid-fit
        trimesh.creation.capsule(0.4 + 0.1 * i, 0.2).export(tmp_path / f"cap{i}.obj")
        paths.append(tmp_path / f"cap{i}.obj")
    window.open_paths(paths)
    with qtbot.waitSignal(window._worker.yielded, timeout=30_000):
        pass
    window.cancel_button.click()
    _wait(qtbot, window)
    assert len(window.state.references) == 0 and not window.last_problems


def test_generate_progressively_more_like_this_then_export(qtbot, window, structured2d, tmp_path):
    assert window.load_model(structured2d["model"])
    methods = [window.panel.method_box.itemData(i) for i in range(window.panel.method_box.count())]
    assert methods == ["equigen", "equigen-no-perturb", "shots-noise"]
    window.panel.generate_button.click()  # no references yet: a message, no work
    assert not window.busy and "References first" in window.last_problems[-1]
    window.open_paths(structured2d["shots"][:3])
    _wait(qtbot, window)
    window.panel.count.setValue(5)
    window.panel.diversity.setValue(80)
    counts = []
    window.progress.valueChanged.connect(lambda _: counts.append(len(window.state.results)))
    window.panel.generate_button.click()
    assert window.busy and not window.panel.generate_button.isEnabled()
    _wait(qtbot, window, timeout=120_000)
    assert len(window.state.results) == 5 and window.panel.generate_button.isEnabled()
    assert 0 < min(c for c in counts if c) < 5  # results appeared before the last one was decoded
    shots = [window.state.path_of(s) for s in window.state.references]
    assert window.generator.is_adapted_to(shots)
    window.select("results", [1])
    window.more_action.trigger()
    assert len(window.state.references) == 4
    window.undo_action.trigger()
    assert len(window.state.references) == 3
    window.select("results", [0, 2])
    window.export(window.selected_shapes(), tmp_path / "gen-export", ExportOptions())
    _wait(qtbot, window)
    assert sorted(p.name for p in (tmp_path / "gen-export").iterdir()) == [
        "generated-s0-000.png", "generated-s0-002.png"]


def test_cancel_mid_adaptation_keeps_the_window_usable(qtbot, window, structured2d):
    assert window.load_model(structured2d["model"])
    window.open_paths(structured2d["shots"][:3])
    _wait(qtbot, window)
    window.panel.adapt_button.click()
    assert window.busy
    with qtbot.waitSignal(window._worker.yielded, timeout=30_000):
        pass
    window.cancel()
    _wait(qtbot, window)
    assert not window.last_problems and len(window.state.results) == 0
    assert window.panel.adapt_button.isEnabled()


def test_a_wrong_model_file_or_wrong_references_say_what_to_do(qtbot, window, structured2d, tmp_path):
    assert not window.load_model(structured2d["corpus"] / "base.safetensors")
    assert "not an EquiGen model file" in window.last_problems[-1]
    assert window.load_model(structured2d["model"])
    trimesh.creation.box().export(tmp_path / "box.obj")
    window.open_paths([tmp_path / "box.obj"])
    _wait(qtbot, window)
    window.generate()
    assert not window.busy
    assert "none of the references is 2D" in window.last_problems[-1]
    assert "Traceback" not in window.last_problems[-1] and len(window.state.results) == 0


def test_the_adaptation_is_kept_with_the_session(qtbot, window, structured2d, tmp_path):
    from engine.progress import drive

    assert window.load_model(structured2d["model"])
    window.open_paths(structured2d["shots"][:3])
    _wait(qtbot, window)
    window.adapt()
    _wait(qtbot, window, timeout=120_000)
    assert (window.state.folder / "adapted.safetensors").is_file()
    again = MainWindow(data_dir=tmp_path / "data")  # reopened: the same model and session
    qtbot.addWidget(again)
    assert again.generator.model_path == window.generator.model_path
    shots = [again.state.path_of(s) for s in again.state.references]
    assert drive(again.generator.adapt(shots)) is False  # read back, not adapted again
    assert again.generator.is_adapted_to(shots)
    again.state.remove([again.state.references[0].id])
    assert drive(again.generator.adapt(shots[1:])) is True  # other shots: adapted anew


def test_blend_between_two_references_and_drag_a_result_onto_the_references(qtbot, window, structured2d):
    assert window.load_model(structured2d["model"])
    window.open_paths(structured2d["shots"][:3])
    _wait(qtbot, window)
    window.select("references", [0])
    window.blend_action.trigger()  # one is not two
    assert "exactly two references" in window.last_problems[-1] and not window.busy
    window.panel.count.setValue(4)
    window.select("references", [0, 2])
    window.blend_action.trigger()
    _wait(qtbot, window, timeout=120_000)
    assert len(window.state.results) == 4
    assert {s.meta.get("generated_by") for s in window.state.results} == {"equigen"}
    index = window.gallery_model.index(3)
    mime = window.gallery_model.mimeData([index])
    event = QDropEvent(QPointF(5, 5), Qt.DropAction.CopyAction, mime, Qt.MouseButton.NoButton,
                       Qt.KeyboardModifier.NoModifier)
    window.references_view.dropEvent(event)
    assert _names(window)[-1] == window.state.results[3].name and len(window.state.references) == 4


def test_compute_on_names_the_device_and_keeps_the_choice(window):
    import torch

    actions = {a.data(): a for a in window.device_menu.actions()}
    assert set(actions) == {"auto", "cpu", "cuda"}
    assert actions["cuda"].isEnabled() == torch.cuda.is_available()
    assert actions["auto"].isChecked()  # the default
    actions["cpu"].trigger()
    assert window.state.settings.device == "cpu" and actions["cpu"].isChecked()
    assert window.generator.device.type == "cpu"
    assert window.device_label.text().startswith("CPU (")
