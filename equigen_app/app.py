"""Application start-up: the QApplication, the main window and the bundled examples."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from PySide6.QtWidgets import QApplication

from equigen_app.main_window import MainWindow

EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "resources" / "examples"


def bundled_examples() -> list[Path]:
    """The INR files shipped in resources/examples (the app's default content)."""
    return sorted(EXAMPLES_DIR.glob("*.safetensors"))


def run(argv: list[str] | None = None) -> int:
    """Start the studio; files on the command line are opened, otherwise the bundled examples.

    ``--self-test`` opens them and, when a model is bundled, generates four shapes from the
    shots of its kind; it quits with status 0 only if every file showed and the generation
    worked. CI uses it to prove the installed app works on its default content.
    """
    argv = list(sys.argv if argv is None else argv)
    self_test = "--self-test" in argv
    files = [a for a in argv[1:] if a != "--self-test"]
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    app = QApplication.instance() or QApplication(argv[:1])
    app.setApplicationName("EquiGen Studio")
    window = MainWindow()
    window.show()
    files = files or [str(p) for p in bundled_examples()]
    if self_test:
        stage = {"opened": False}

        def report() -> None:
            if not stage["opened"]:
                stage["opened"] = True
                ok = window.model.rowCount() == len(files) and not window.last_problems
                print(f"self-test: {window.model.rowCount()} of {len(files)} shapes shown; "
                      f"problems: {window.last_problems or 'none'}")
                if ok and window.session is not None:
                    window.panel.count.setValue(4)
                    window.generate()  # adapt the bundled model to the shots of its kind, sample 4
                    if window.busy:
                        return
                app.exit(0 if ok and window.session is None else 1)
                return
            made = window.generated.rowCount()
            print(f"self-test: generated {made} of 4 with {window.session.model_path.name}; "
                  f"problems: {window.last_problems or 'none'}")
            app.exit(0 if made == 4 and not window.last_problems else 1)

        window.task_finished.connect(report)
    if files:
        window.open_paths(files)
    elif self_test:
        print("self-test: no bundled examples found in resources/examples")
        return 1
    return app.exec()
