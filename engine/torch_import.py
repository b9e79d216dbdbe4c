"""Reading a ``.pth`` state dict from anywhere, in bounded time and memory, without running code.

``torch.load(weights_only=True)`` never runs a pickle's code, but a small hostile file can still
take everything: a 6 MB zip whose records inflate to 6 GB, or a 7 KB pickle whose key is a tuple
nested forty deep (shared references make it exponential, and the unpickler never returns).
So the archive's declared sizes are checked first, then the file is unpickled in a child
process with a time and memory limit, which hands back only string keys and raw tensor bytes.
"""

from __future__ import annotations

import multiprocessing
import os
import zipfile
from pathlib import Path

import numpy as np
import torch

from engine.errors import InvalidINRFile, clipped, shown

MAX_BYTES = 16 * 2**20  # the largest built-in INR holds 36,000 floats: 16 MB leaves room for float64 and padding
MAX_PICKLE_BYTES = 2**20
MAX_KEYS = 256
MAX_KEY_LENGTH = 200
LOAD_SECONDS = 30.0
CHILD_MEMORY_BYTES = 2 * 2**30  # on top of what the child holds when it starts


def check_archive(path: Path) -> None:
    """InvalidINRFile unless ``path`` looks like a PyTorch file no larger, unpacked, than an INR
    needs; reads only the zip directory, never the records."""
    with open(path, "rb") as f:
        head = f.read(4)
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as z:
                infos = z.infolist()
        except (zipfile.BadZipFile, OSError, ValueError) as e:
            raise InvalidINRFile(f"{path}: damaged PyTorch archive ({clipped(str(e))})") from None
        total = sum(i.file_size for i in infos)
        pickles = [i for i in infos if i.filename.endswith(".pkl")]
        if total > MAX_BYTES or len(infos) > 4 * MAX_KEYS:
            raise InvalidINRFile(f"{path}: refused, the archive unpacks to {total / 2**20:.0f} MB in "
                                 f"{len(infos)} records, more than any INR needs ({MAX_BYTES // 2**20} MB)")
        if not pickles or any(i.file_size > MAX_PICKLE_BYTES for i in pickles):
            raise InvalidINRFile(f"{path}: refused, not a PyTorch state dict archive (its pickle is missing "
                                 f"or larger than {MAX_PICKLE_BYTES // 2**20} MB)")
        return
    if head.startswith(b"PK"):  # a zip archive without its directory
        raise InvalidINRFile(f"{path}: truncated or damaged PyTorch archive; copy it again")
    if not head.startswith(b"\x80"):  # neither a zip archive nor a legacy pickle
        raise InvalidINRFile(f"{path}: not a PyTorch file (expected a .pth written by torch.save)")
    if path.stat().st_size > MAX_BYTES:
        raise InvalidINRFile(f"{path}: refused, {path.stat().st_size / 2**20:.0f} MB is more than any INR needs")


def _limit_memory() -> None:
    try:
        import resource

        status = Path("/proc/self/status").read_text()
        vm = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmSize:"))) * 1024
        resource.setrlimit(resource.RLIMIT_AS, (vm + CHILD_MEMORY_BYTES, vm + CHILD_MEMORY_BYTES))
    except (ImportError, OSError, ValueError, StopIteration):
        pass  # no limit where the platform has none; the time limit still holds


def _unwrap(obj: object) -> object:
    if isinstance(obj, dict):
        for wrapper in ("params", "state_dict", "model"):
            if wrapper in obj and isinstance(obj[wrapper], dict):
                return obj[wrapper]
    return obj


def _load(path: str) -> tuple[str, object]:
    """Unpickle and keep only string keys with float tensors, as plain bytes:
    ``("ok", {key: (shape, bytes)})``, ``("code", "")`` or ``("error", message)``."""
    try:
        obj = _unwrap(torch.load(path, map_location="cpu", weights_only=True))
    except MemoryError:
        return "error", "refused, unpacking it takes more memory than any INR needs"
    except Exception as e:  # torch raises many types for bad archives; all mean "cannot read"
        text = str(e)
        if "Weights only load failed" in text or "weights_only" in text:
            return "code", ""
        return "error", f"truncated or not a PyTorch file ({clipped(text) or type(e).__name__})"
    if not isinstance(obj, dict) or not obj:
        return "error", "holds no state dict of tensors"
    if len(obj) > MAX_KEYS:
        return "error", f"holds {len(obj)} entries, more than any INR has"
    out = {}
    for k, v in obj.items():
        if not isinstance(k, str) or len(k) > MAX_KEY_LENGTH:
            return "error", f"key {shown(k)} is not a parameter name"
        if not isinstance(v, torch.Tensor) or not v.dtype.is_floating_point or v.numel() > MAX_BYTES // 4:
            return "error", f"{shown(k)} is not a floating-point tensor of an INR's size"
        a = v.detach().to(torch.float32).contiguous().numpy()
        out[k] = (tuple(a.shape), a.tobytes())
    return "ok", out


def _load_in_child(path: str, conn) -> None:
    _limit_memory()
    try:
        conn.send(_load(path))
    except MemoryError:
        conn.send(("error", "refused, unpacking it takes more memory than any INR needs"))


def _context():
    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    context = multiprocessing.get_context(method)
    if method == "forkserver":
        context.set_forkserver_preload(["torch", "engine.torch_import"])
    return context


def read_state_dict(path: str | os.PathLike, seconds: float = LOAD_SECONDS) -> dict[str, torch.Tensor]:
    """The ``{key: float32 tensor}`` a ``.pth`` holds (a plain state dict, or one wrapped in
    ``params`` / ``state_dict`` / ``model``). InvalidINRFile naming the file for anything that is
    not one, that is larger than an INR, carries code, or does not load within ``seconds``."""
    path = Path(path)
    check_archive(path)
    parent, child = multiprocessing.Pipe(duplex=False)
    try:
        proc = _context().Process(target=_load_in_child, args=(str(path), child), daemon=True)
        proc.start()
    except (OSError, RuntimeError):  # no processes here (a sandbox): the same load, unbounded in time
        parent.close()
        child.close()
        status, payload = _load(str(path))
    else:
        child.close()
        try:
            if not parent.poll(seconds):
                raise InvalidINRFile(f"{path}: refused, it did not load within {seconds:.0f} s (a state dict "
                                     "loads in milliseconds); it is not a plain state dict of tensors")
            try:
                status, payload = parent.recv()
            except EOFError:
                proc.join(5)
                raise InvalidINRFile(f"{path}: refused, its loader stopped without an answer (exit code "
                                     f"{proc.exitcode}); an INR's state dict loads in far less than "
                                     f"{CHILD_MEMORY_BYTES // 2**30} GB") from None
        finally:
            parent.close()
            proc.kill()
            proc.join()
    if status == "code":
        raise InvalidINRFile(f"{path}: refused, the file holds Python objects or code, not only tensors; "
                             "re-save it as a plain state dict")
    if status != "ok":
        raise InvalidINRFile(f"{path}: {payload}")
    return {k: torch.from_numpy(np.frombuffer(data, dtype=np.float32).copy().reshape(shape))
            for k, (shape, data) in payload.items()}
