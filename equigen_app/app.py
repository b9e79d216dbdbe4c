"""Application start-up: logging, the QApplication, the main window and the bundled examples."""

from __future__ import annotations

import logging
import logging.handlers
import sys
import tempfile
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from engine.bundled import examples_dir
from equigen_app.main_window import APP_NAME, MainWindow, log_file

EXAMPLES_DIR = examples_dir()


def bundled_examples() -> list[Path]:
    """The INR files shipped in the bundled examples folder (the app's default content)."""
    return sorted(EXAMPLES_DIR.glob("*.safetensors"))


def setup_logging(path: Path | None = None) -> Path:
    """Log INFO and up to stderr and to a rotating file in the user log dir; returns its path."""
    path = path or log_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not any(isinstance(h, logging.handlers.RotatingFileHandler) for h in root.handlers):
        file_handler = logging.handlers.RotatingFileHandler(path, maxBytes=2_000_000, backupCount=2, encoding="utf-8")
        file_handler.setFormatter(fmt)
        root.addHandler(file_handler)
    if not any(type(h) is logging.StreamHandler for h in root.handlers):
        stream = logging.StreamHandler()
        stream.setFormatter(fmt)
        root.addHandler(stream)
    return path


def warm_imports() -> None:
    """Import what the first adaptation pulls in lazily (torch's optimisers import torch._dynamo,
    ~800 modules): done on a worker thread it would hold the window's GIL for ~0.2 s at a time,
    done before the window shows it costs a second of start-up.

    Then what the imports left alive is frozen out of the garbage collector's reach: a full
    collection walks every tracked object holding the GIL, 0.26 s over the ~440k objects torch,
    VTK and Qt leave (measured here), long enough to stall the window mid-work; those objects
    live as long as the app, so the collector has nothing to find among them."""
    import gc

    import torch._dynamo  # noqa: F401

    gc.collect()
    gc.freeze()


def run(argv: list[str] | None = None) -> int:
    """Start the studio on the last session; files on the command line are added as references,
    and a first session starts with the bundled examples.

    ``--self-test`` starts a fresh session in a temporary data dir and runs
    ``equigen_app.self_test``: the bundled examples, both bundled models, an example pack, an
    export; status 0 only when every step worked. CI and the desktop build use it to prove the
    installed app works on its bundled content.
    """
    argv = list(sys.argv if argv is None else argv)
    self_test = "--self-test" in argv
    # --quit-when-ready: quit once the window shows its first content (cold-start timing)
    quit_when_ready = "--quit-when-ready" in argv
    files = [a for a in argv[1:] if a not in ("--self-test", "--quit-when-ready")]
    setup_logging()
    warm_imports()
    app = QApplication.instance() or QApplication(argv[:1])
    app.setApplicationName(APP_NAME)
    data_dir = tempfile.mkdtemp(prefix="equigen-self-test-") if self_test or quit_when_ready else None
    window = MainWindow(data_dir=data_dir)
    window.show()
    if not files and len(window.state.references) == 0 and len(window.state.results) == 0:
        files = [str(p) for p in bundled_examples()]
    if self_test:
        if not files:
            print(f"self-test: no bundled examples found in {EXAMPLES_DIR}")
            return 1
        from equigen_app.self_test import SelfTest

        test = SelfTest(app, window, files)
        test.start()
        return app.exec()
    if quit_when_ready:
        window.task_finished.connect(lambda: app.exit(0))
        if not files:
            QTimer.singleShot(0, lambda: app.exit(0))
    if files:
        window.open_paths(files)
    return app.exec()
