"""Atomic file writes: a crash or a cancelled run never leaves a half-written file behind.

A write goes to a hidden temporary file beside the target, named after the target and the
writing process (``.NAME.tmp-PID-XXXX.SUFFIX``), and replaces the target in one rename. The
file gets the mode any file the user saves gets (``0666`` less the umask), not ``mkstemp``'s
``0600``. A process killed mid-write leaves its temporary file (and safetensors' own ``.tmpXXXXXX``);
:func:`remove_stale_temporaries` deletes those whose process is gone (safetensors' when older
than ten minutes), and the writers that fill a folder call it when they start.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from engine.errors import InputError

_UMASK: int | None = None
_UMASK_LOCK = threading.Lock()
_TEMP = re.compile(r"^\.(?P<name>.+)\.tmp-(?P<pid>\d+)-[^.]+(\..*)?$")
# safetensors writes through the ``tempfile`` crate (``.tmpXXXXXX`` beside the target, then a
# rename); those carry no process id, so only old ones are taken for abandoned
_LIBRARY_TEMP = re.compile(r"^\.tmp[A-Za-z0-9]{6}$")
LIBRARY_TEMP_AGE_S = 600


def _umask() -> int:
    """The process' umask, read once (``os.umask`` can only be read by setting it)."""
    global _UMASK
    with _UMASK_LOCK:
        if _UMASK is None:
            try:
                status = Path("/proc/self/status").read_text()
                _UMASK = int(re.search(r"^Umask:\s*([0-7]+)", status, re.M).group(1), 8)
            except (OSError, AttributeError, ValueError):
                _UMASK = os.umask(0o022)
                os.umask(_UMASK)
        return _UMASK


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one rename.

    The temporary file keeps ``path``'s suffix (or ``suffix``) because some writers choose the
    format from it. On any exception the temporary file is removed and ``path`` is untouched.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{target.name}.tmp-{os.getpid()}-", suffix=suffix if suffix is not None else target.suffix,
        dir=target.parent,
    )
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files that writers killed mid-write left in ``folder`` (those of
    processes that are gone). Returns what was removed."""
    removed = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    now = time.time()
    for p in folder.iterdir():
        m = _TEMP.match(p.name)
        stale = bool(m) and not _alive(int(m.group("pid")))
        if not stale and _LIBRARY_TEMP.match(p.name):
            with contextlib.suppress(OSError):
                stale = now - p.stat().st_mtime > LIBRARY_TEMP_AGE_S
        if stale and p.is_file():
            with contextlib.suppress(OSError):
                p.unlink()
                removed.append(p)
    return removed


def writable_folder(path: str | os.PathLike, create: bool = True) -> Path:
    """``path`` as a folder the process can write into (made when missing, with ``create``);
    InputError, before any work that would write there, when it is a file or cannot be written.
    Without ``create`` nothing is made: the nearest existing folder above must be writable."""
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{folder}: is a file, not a folder; give a folder for the outputs")
    if not create:
        above = folder
        while not above.exists() and above != above.parent:
            above = above.parent
        if not above.is_dir():
            raise InputError(f"{above}: is a file, not a folder; give a folder for the outputs")
        if not os.access(above, os.W_OK | os.X_OK):
            raise InputError(f"{folder}: cannot write here ({above} is not writable); choose another folder")
        return folder
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"{folder}: cannot make this folder ({e.strerror or e}); choose another") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(f"{folder}: this folder is not writable; choose another")
    return folder


def writable_file(path: str | os.PathLike) -> Path:
    """``path`` as a file the process can (re)write: its folder writable and the path no folder;
    InputError otherwise, before any work."""
    target = Path(path)
    if target.is_dir():
        raise InputError(f"{target}: is a folder; give a file name for the output")
    writable_folder(target.parent, create=False)
    if target.exists() and not os.access(target, os.W_OK):
        raise InputError(f"{target}: the file is read-only; choose another name")
    return target
