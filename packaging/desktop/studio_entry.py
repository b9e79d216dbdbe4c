"""The frozen studio's entry point (PyInstaller needs a script): ``equigen_app.app.run``.

``equigen-studio equigen ARGS`` runs the command line instead, so the desktop build carries the
CLI without a second copy of the libraries.
"""

import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()  # helper processes re-enter this script
    if len(sys.argv) > 1 and sys.argv[1] == "equigen":
        from engine.cli import main

        raise SystemExit(main(sys.argv[2:]))
    from equigen_app.app import run

    raise SystemExit(run())
