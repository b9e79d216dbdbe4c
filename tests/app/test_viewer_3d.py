"""The interactive 3D view on a real display (Xvfb in CI): `make test` runs this file under
``xvfb-run`` with ``QT_QPA_PLATFORM=xcb``; on the offscreen platform it is skipped."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtGui import QGuiApplication

from equigen_app.app import bundled_examples
from equigen_app.main_window import MainWindow
from equigen_app.viewer import interactive_3d_available


@pytest.fixture
def window(qtbot, tmp_path):
    if not interactive_3d_available():
        pytest.skip(f"needs a display, not Qt's {QGuiApplication.platformName()!r} platform (run under xvfb-run)")
    w = MainWindow(data_dir=tmp_path / "data")
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    yield w
    w.close()


def test_selected_mesh_orbits_and_resets_in_the_interactive_view(qtbot, window):
    window.open_paths([p for p in bundled_examples() if p.stem in ("shape_chair", "glyph_2")])
    qtbot.waitUntil(lambda: not window.busy, timeout=60_000)
    names = [s.name for s in window.state.references]
    window.select("references", [names.index("shape_chair")])
    viewer = window.viewer
    qtbot.waitUntil(lambda: viewer.kind == "mesh", timeout=10_000)
    assert viewer.interactor is not None
    assert viewer.stack.currentWidget() is viewer.interactor
    first = np.asarray(viewer.interactor.screenshot(return_img=True))
    assert first.std() > 10  # a shaded chair, not an empty frame
    viewer.interactor.camera.azimuth = viewer.interactor.camera.azimuth + 90
    viewer.interactor.render()
    turned = np.asarray(viewer.interactor.screenshot(return_img=True))
    assert np.abs(turned.astype(int) - first.astype(int)).mean() > 1
    viewer.reset_action.trigger()
    again = np.asarray(viewer.interactor.screenshot(return_img=True))
    assert np.abs(again.astype(int) - first.astype(int)).mean() < 0.5
    window.select("references", [names.index("glyph_2")])
    qtbot.waitUntil(lambda: viewer.kind == "image", timeout=10_000)
