"""The one mechanism for long work: generators that yield Progress and return their result.

A long operation is written as ``def op(...) -> Generator[Progress, None, Result]``. A consumer
iterates it (showing progress) and gets the result from ``StopIteration.value``; to cancel, it
stops iterating and closes the generator, which the operation sees at its next ``yield``, so a
cancel is honoured within one step. :func:`drive` does all of this for callers that only want the
result; superqt's ``GeneratorWorker`` consumes the same generators in the GUI.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from engine.errors import Cancelled

R = TypeVar("R")


@dataclass(frozen=True)
class Progress:
    """One progress event: ``done`` of ``total`` units of ``stage`` finished."""

    stage: str
    done: int
    total: int
    message: str = ""
    metrics: Mapping[str, float] = field(default_factory=dict)
    # a finished piece of the result (e.g. one decoded sample), so a front end can show it at once
    payload: Any = field(default=None, compare=False, repr=False)

    @property
    def fraction(self) -> float:
        return 0.0 if self.total <= 0 else min(1.0, self.done / self.total)


ProgressGen = Generator[Progress, None, R]


def drive(
    gen: Generator[Progress, None, R],
    on_progress: Callable[[Progress], Any] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> R:
    """Run a progress generator to completion and return its result.

    on_progress is called with every event. When should_stop() returns True the generator is
    closed (its ``finally`` blocks run) and Cancelled is raised.
    """
    try:
        while True:
            event = next(gen)
            if on_progress is not None:
                on_progress(event)
            if should_stop is not None and should_stop():
                gen.close()
                raise Cancelled("cancelled; nothing was written for the unfinished part")
    except StopIteration as stop:
        return stop.value


def relay(gen: Generator[Progress, None, R], stage: str | None = None, offset: int = 0,
          total: int | None = None) -> Generator[Progress, None, R]:
    """Re-yield a sub-operation's events inside a larger one (``yield from relay(...)``),
    optionally renaming the stage and shifting ``done`` into the outer operation's range."""
    try:
        while True:
            event = next(gen)
            yield Progress(
                stage or event.stage,
                offset + event.done,
                total if total is not None else event.total,
                event.message,
                event.metrics,
                event.payload,
            )
    except StopIteration as stop:
        return stop.value
    finally:
        gen.close()
