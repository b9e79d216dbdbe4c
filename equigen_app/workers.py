"""Background work: engine progress generators run on a thread-pool thread via superqt.

Workers only pass plain data (engine Progress events and results) to the GUI thread through
signals; widgets and VTK are touched on the GUI thread alone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from superqt.utils import GeneratorWorker

from engine.errors import EquigenError

log = logging.getLogger(__name__)


def user_message(error: BaseException) -> str:
    """One line for the user: our own errors as they are, anything else as an internal fault."""
    if isinstance(error, EquigenError):
        return str(error)
    log.error("internal error in a background task", exc_info=error)
    from equigen_app.main_window import log_file

    return (f"internal error ({type(error).__name__}: {error}); please report it with the log, "
            f"{log_file()}")


def start(
    gen_func: Callable, *args,
    on_progress: Callable | None = None,
    on_result: Callable | None = None,
    on_error: Callable[[str], None] | None = None,
    on_finished: Callable | None = None,
    **kwargs,
) -> GeneratorWorker:
    """Run ``gen_func(*args, **kwargs)`` (an engine progress generator) in the background.

    ``worker.quit()`` cancels at the generator's next step.
    """
    worker = GeneratorWorker(gen_func, *args, **kwargs)
    if on_progress is not None:
        worker.yielded.connect(on_progress)
    if on_result is not None:
        worker.returned.connect(on_result)
    if on_error is not None:
        worker.errored.connect(lambda e: on_error(user_message(e)))
    if on_finished is not None:
        worker.finished.connect(on_finished)
    worker.start()
    return worker
