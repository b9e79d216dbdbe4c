"""The studio's background tasks: engine generators, with 3D thumbnails rendered on the way.

Qt-free. A mesh's thumbnail is rendered in the engine's helper process
(``render.render_meshes_apart``) while the task runs on its worker thread, so the window never
opens a render window or renders a shot on its own thread.
"""

from __future__ import annotations

import logging
from collections.abc import Generator
from pathlib import Path

import numpy as np

from engine.errors import EquigenError
from engine.progress import Progress, ProgressGen, relay
from engine.render import render_meshes_apart
from engine.session import OpenResult, Preview, open_files

log = logging.getLogger(__name__)


def _thumbnails(previews: list[Preview], pixels: int) -> ProgressGen[list[np.ndarray | None]]:
    meshes = [pv.mesh for pv in previews if pv.mesh is not None]
    try:
        shots = yield from relay(render_meshes_apart(meshes, pixels), "thumbnails")
    except EquigenError as e:  # the window renders them itself then
        log.warning("thumbnails on the window's thread: %s", e)
        return [None] * len(previews)
    it = iter(shots)
    return [next(it) if pv.mesh is not None else None for pv in previews]


def open_references(paths: list[str], incoming: Path, pixels: int, device: str = "cpu"
                    ) -> ProgressGen[tuple[OpenResult, list[np.ndarray | None]]]:
    """``session.open_files`` into ``incoming`` (fitting on ``device``), and each 3D preview's
    thumbnail ``(px, px, 3)``."""
    result = yield from open_files(paths, incoming, device=device)
    return result, (yield from _thumbnails(result.previews, pixels))


def with_thumbnails(task: Generator[Progress, None, object], pixels: int) -> ProgressGen[object]:
    """Relay ``task``; an event whose payload is a 3D Preview is passed on with the payload
    ``(preview, thumbnail)`` once its thumbnail is rendered (2D: ``(preview, None)``)."""
    try:
        while True:
            event = next(task)
            if isinstance(event.payload, Preview):
                (thumb,) = yield from _thumbnails([event.payload], pixels)
                event = Progress(event.stage, event.done, event.total, event.message, event.metrics,
                                 (event.payload, thumb))
            yield event
    except StopIteration as stop:
        return stop.value
    finally:
        task.close()
