"""Screenshots of the studio for the README: the real window, driven as a user would, on a
virtual display.

Run: ``xvfb-run -a -s "-screen 0 1400x900x24" .venv/bin/python packaging/screenshots.py
[--out docs/screenshots] [--only 2d|3d]``. Each session starts in a fresh data folder: the 2D one
adds the bundled pack of ten held-out nines and generates with ``glyphs-2d``, the 3D one adds the bundled mug
pack's INR files and generates with ``shapes-3d``; a result is shown in the viewer, then the
screen is grabbed (so the OpenGL view is in the picture).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SESSIONS = {
    "2d": {"model": "glyphs-2d.safetensors", "count": 16, "seed": 3,
           "references": sorted((ROOT / "resources" / "examples" / "nines").glob("*.png"))},
    "3d": {"model": "shapes-3d.safetensors", "count": 12, "seed": 0,
           "references": sorted((ROOT / "resources" / "examples" / "mugs").glob("*.safetensors"))},
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "docs" / "screenshots"))
    ap.add_argument("--only", choices=sorted(SESSIONS), default=None)
    args = ap.parse_args()
    if not os.environ.get("DISPLAY"):
        print("screenshots.py needs a display: run it under xvfb-run", file=sys.stderr)
        return 2
    os.environ["QT_QPA_PLATFORM"] = "xcb"
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from equigen_app.app import warm_imports
    from equigen_app.main_window import MODELS_DIR, MainWindow

    warm_imports()
    app = QApplication(sys.argv[:1])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    todo = [args.only] if args.only else list(SESSIONS)
    failures: list[str] = []

    def run(name: str) -> None:
        spec = SESSIONS[name]
        w = MainWindow(data_dir=tempfile.mkdtemp(prefix=f"equigen-shots-{name}-"))
        w.resize(1400, 860)
        w.show()
        if not w.load_model(MODELS_DIR / spec["model"]):
            failures.append(f"{name}: {w.last_problems[-1]}")
            finish(w)
            return
        w.panel.count.setValue(spec["count"])
        w.panel.seed.setValue(spec["seed"])
        steps = iter([lambda: w.open_paths(spec["references"]), lambda: w.generate()])

        def next_step() -> None:
            if w.last_problems:
                failures.append(f"{name}: {w.last_problems[-1]}")
                finish(w)
                return
            step = next(steps, None)
            if step is None:
                w.select("results", [1])
                QTimer.singleShot(1500, lambda: grab(w, name))
                return
            step()

        w.task_finished.connect(lambda: QTimer.singleShot(100, next_step))
        next_step()

    def grab(w, name: str) -> None:
        path = out / f"studio-{name}.png"
        w.screen().grabWindow(w.winId()).save(str(path))
        print(f"wrote {path}")
        finish(w)

    def finish(w) -> None:
        w.close()
        if todo:
            QTimer.singleShot(200, lambda: run(todo.pop(0)))
        else:
            app.exit(1 if failures else 0)

    QTimer.singleShot(0, lambda: run(todo.pop(0)))
    code = app.exec()
    for f in failures:
        print(f"screenshots.py: {f}", file=sys.stderr)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
