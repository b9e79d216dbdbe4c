"""The safetensors files the engine writes and reads: atomic, sealed with a content hash.

Every file the engine writes carries ``content_sha256`` in its metadata: the SHA-256 of the
other metadata and of every tensor's key, dtype, shape and bytes. Reading recomputes it, so a
damaged file (a flipped bit, a half-copied download) ends in one "damaged file" message instead
of a subtly different image or a chair with fewer faces. Files without the key (made by other
tools) are read as they are. The header (metadata, tensor shapes and dtypes) can be read alone,
so a loader can check what a file implies before it allocates anything.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from engine.atomic import atomic_path
from engine.errors import DamagedFile, InputError, InvalidINRFile, clipped, shown

HASH_KEY = "content_sha256"

_DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64,
           "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
           "BOOL": torch.bool}


def content_hash(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> str:
    """Hex SHA-256 of ``metadata`` (less ``content_sha256``) and of each tensor's key, dtype,
    shape and bytes, in key order."""
    h = hashlib.sha256()
    h.update(json.dumps({k: v for k, v in metadata.items() if k != HASH_KEY}, sort_keys=True).encode())
    for key in sorted(tensors):
        t = tensors[key].detach().contiguous()
        h.update(f"\0{key}\0{str(t.dtype)}\0{tuple(t.shape)}\0".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def write_tensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor],
                  metadata: dict[str, str] | None = None) -> Path:
    """Write ``tensors`` (made contiguous, on the CPU) and string ``metadata`` atomically, sealed
    with their content hash. Returns the path."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    metadata = dict(metadata or {})
    metadata[HASH_KEY] = content_hash(tensors, metadata)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return Path(path)


def read_header(path: str | os.PathLike, error: type[Exception] = InvalidINRFile,
                ) -> tuple[dict[str, str], dict[str, tuple[tuple[int, ...], torch.dtype | None]]]:
    """The metadata and ``{key: (shape, dtype)}`` of a safetensors file, without its data.

    Raises ``error`` naming the file when it is no readable safetensors file.
    """
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = dict(f.metadata() or {})
            shapes = {}
            for k in f.keys():
                s = f.get_slice(k)
                shapes[k] = (tuple(int(n) for n in s.get_shape()), _DTYPES.get(s.get_dtype()))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise error(f"{path}: unreadable or truncated safetensors file ({clipped(str(e))})") from None
    return metadata, shapes


def read_format_header(path: str | os.PathLike, fmt: str, kind: str, not_it: str,
                       ) -> tuple[dict[str, str], dict[str, tuple[tuple[int, ...], torch.dtype | None]]]:
    """``read_header`` of a file that must exist and carry ``"format": fmt``; InputError naming
    the file otherwise (``kind``: what a missing file is called, ``not_it``: what to say when the
    file is of another format)."""
    if not Path(path).is_file():
        raise InputError(f"{path}: no such {kind}")
    header, shapes = read_header(path, InputError)
    if header.get("format") != fmt:
        raise InputError(f"{path}: {not_it}")
    return header, shapes


def read_tensors(path: str | os.PathLike, error: type[Exception] = InvalidINRFile,
                 ) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    """The metadata and every tensor of a safetensors file, its content hash checked.

    Raises ``error`` when the file cannot be read, DamagedFile when it no longer matches the
    hash it was written with.
    """
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise error(f"{path}: unreadable or truncated safetensors file ({clipped(str(e))})") from None
    check_seal(path, tensors, metadata)
    return metadata, tensors


def check_seal(path: str | os.PathLike, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """DamagedFile unless ``tensors`` and ``metadata`` match the hash the file was written with
    (nothing to check for files without one)."""
    sealed = metadata.get(HASH_KEY)
    if sealed is not None and sealed != content_hash(tensors, metadata):
        raise DamagedFile(f"{path}: damaged file (its content no longer matches the hash it was saved with); "
                          "use another copy or make it again")


def json_field(header: dict[str, str], key: str, where: str, kind: type = dict,
               error: type[Exception] = InvalidINRFile, required: bool = True, default: object = None) -> object:
    """``header[key]`` parsed as JSON of type ``kind``; ``error`` naming ``where`` when it is
    missing (and ``required``), not JSON, or of another type."""
    if key not in header:
        if required:
            raise error(f"{where}: damaged file, its header has no {key!r}")
        return default
    try:
        value = json.loads(header[key])
    except (json.JSONDecodeError, TypeError, RecursionError):
        raise error(f"{where}: damaged file, {key!r} in its header is not valid JSON") from None
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise error(f"{where}: damaged file, {key!r} in its header is not a JSON {kind.__name__}")
    return value


def check_module(build, shapes: dict[str, tuple[tuple[int, ...], torch.dtype | None]], prefix: str,
                 where: str, error: type[Exception] = InvalidINRFile) -> None:
    """``error`` unless the tensors under ``prefix`` in a file's ``shapes`` (``read_header``) are
    exactly those of the module ``build()`` makes. The module is built on the meta device, so a
    header that asks for an enormous network costs nothing before it is refused."""
    with torch.device("meta"):
        module = build()
    expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    got = {k[len(prefix):]: s for k, (s, _) in shapes.items() if k.startswith(prefix)}
    for k in expected:
        if k not in got:
            raise error(f"{where}: damaged file, tensor {prefix + k!r} is missing")
        if got[k] != expected[k]:
            raise error(f"{where}: damaged file, tensor {prefix + k!r} has shape {shown(got[k])} where its "
                        f"header implies {expected[k]}")
    extra = sorted(set(got) - set(expected))
    if extra:
        raise error(f"{where}: damaged file, unexpected tensor {shown(prefix + extra[0])}")


def check_finite(tensors: dict[str, torch.Tensor], where: str, error: type[Exception] = InvalidINRFile,
                 hint: str = "; the file is damaged") -> None:
    """``error`` naming ``where`` and the first tensor holding NaN or infinite values."""
    for k, v in tensors.items():
        if v.dtype.is_floating_point and not bool(torch.isfinite(v).all()):
            raise error(f"{where}: tensor {shown(k)} holds NaN or infinite values{hint}")
