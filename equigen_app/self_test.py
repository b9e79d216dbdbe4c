"""``equigen-studio --self-test``: prove an installed or frozen studio works on its bundled content.

Drives the real window, one step per finished background task: open the bundled examples, make
four glyphs with the 2D model, switch to the bundled 3D model, add the mug example pack, adapt to
it and generate two shapes, export one as OBJ and read it back. Each step prints one line; the
run quits with 0 only when every step did what it should. CI and ``packaging/build.sh`` use it.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from engine.bundled import bundled_model, examples_dir
from engine.session import ExportOptions

STEP_TIMEOUT_MS = 300_000  # a step that has not finished by then fails the test


class SelfTest:
    """The steps, each started after the previous one's task finished (``task_finished``)."""

    def __init__(self, app: QApplication, window, files: list[str]):
        self.app, self.window, self.files = app, window, files
        self.export_dir = Path(tempfile.mkdtemp(prefix="equigen-self-test-export-"))
        self.steps: list[tuple[str, Callable[[], bool], Callable[[], tuple[bool, str]]]] = [
            ("open the bundled examples", self._open, self._opened),
            ("generate 4 with the 2D model", self._generate_2d, self._generated_2d),
            ("add the mug example pack to the 3D model", self._add_mugs, self._mugs_added),
            ("adapt to the mugs and generate 2", self._generate_3d, self._generated_3d),
            ("export a generated mesh as OBJ", self._export, self._exported),
        ]
        self.index = -1
        self.failed = False
        self.timer = QTimer(singleShot=True, interval=STEP_TIMEOUT_MS)
        self.timer.timeout.connect(lambda: self._finish(False, "timed out"))
        window.task_finished.connect(self._task_finished)

    def start(self) -> None:
        self._next()

    def _next(self) -> None:
        self.index += 1
        if self.index == len(self.steps):
            print("self-test: passed")
            self.app.exit(0)
            return
        name, begin, _ = self.steps[self.index]
        self.timer.start()
        if not begin():  # nothing to wait for: check at once
            self._task_finished()

    def _task_finished(self) -> None:
        if self.index < 0 or self.index >= len(self.steps) or self.failed:
            return
        name, _, check = self.steps[self.index]
        ok, detail = check()
        self._finish(ok, detail)

    def _finish(self, ok: bool, detail: str) -> None:
        self.timer.stop()
        name = self.steps[self.index][0]
        problems = self.window.last_problems
        ok = ok and not problems
        print(f"self-test: {name}: {detail}; problems: {problems or 'none'}")
        if not ok:
            self.failed = True
            print("self-test: FAILED")
            self.app.exit(1)
            return
        QTimer.singleShot(0, self._next)

    # -- the steps: each begin returns True when it started a background task -----------------------
    def _open(self) -> bool:
        self.window.open_paths(self.files)
        return True

    def _opened(self) -> tuple[bool, str]:
        shown = len(self.window.state.references)
        return shown == len(self.files) and shown > 0, f"{shown} of {len(self.files)} shown"

    def _generate_2d(self) -> bool:
        if not self.window.load_model(bundled_model("glyphs-2d")):
            return False
        self.window.panel.count.setValue(4)
        self.window.generate()
        return self.window.busy

    def _generated_2d(self) -> tuple[bool, str]:
        made = len(self.window.state.results)
        return made == 4, f"{made} of 4 generated"

    def _add_mugs(self) -> bool:
        if not self.window.load_model(bundled_model("shapes-3d")):
            return False
        self.first_mug = len(self.window.state.references)
        self.mugs = sorted(str(p) for p in (examples_dir() / "mugs").glob("*.safetensors"))
        self.window.open_paths(self.mugs)
        return True

    def _mugs_added(self) -> tuple[bool, str]:
        added = len(self.window.state.references) - self.first_mug
        return added == len(self.mugs) > 0, f"{added} of {len(self.mugs)} mugs added"

    def _generate_3d(self) -> bool:
        self.results_before = len(self.window.state.results)
        self.window.select("references", list(range(self.first_mug, len(self.window.state.references))))
        self.window.panel.count.setValue(2)
        self.window.generate()
        return self.window.busy

    def _generated_3d(self) -> tuple[bool, str]:
        made = len(self.window.state.results) - self.results_before
        adapted = self.window.generator is not None and self.window.generator.adapted is not None
        return made == 2 and adapted, f"adapted {'yes' if adapted else 'no'}, {made} of 2 generated"

    def _export(self) -> bool:
        shape = self.window.state.results[len(self.window.state.results) - 1]  # the newest: a mug
        self.window.export([shape], self.export_dir, ExportOptions(mesh_ext=".obj", resolution=64))
        return True

    def _exported(self) -> tuple[bool, str]:
        import trimesh

        files = list(self.export_dir.glob("*.obj"))
        if len(files) != 1:
            return False, f"{len(files)} OBJ files written"
        mesh = trimesh.load(str(files[0]), force="mesh")
        return len(mesh.faces) > 0, f"{files[0].name}: {len(mesh.faces)} faces"
