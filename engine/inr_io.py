"""Reading and writing INR files.

Our format: one INR per ``.safetensors`` file, the state-dict tensors under their published keys
plus JSON metadata (``spec``, and ``meta``: provenance, fit quality). Imports: DWSNets/EquiGen
MNIST-INR and HyperDiffusion ``.pth`` state dicts, read with ``weights_only=True`` so that no code
in a pickle ever runs, in a child process bounded in time and memory (``torch_import.py``).
Every file is checked against the spec it names before its tensors are read.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from engine.errors import InvalidINRFile, SpecError, shown
from engine.functional import Params
from engine.spec import BUILTIN_SPECS, INRSpec, spec_for_state_dict_keys
from engine.tensor_files import read_header, read_tensors, write_tensors
from engine.torch_import import read_state_dict

FORMAT_NAME = "equigen-inr"
FORMAT_VERSION = "1"
INR_SUFFIXES = (".safetensors",)
TORCH_SUFFIXES = (".pth", ".pt", ".ckpt")


@dataclass(frozen=True)
class INR:
    """One implicit neural representation: its architecture, weights and metadata.

    params: key -> tensor of the spec's unbatched shape, float32.
    meta: JSON-serialisable provenance and quality, e.g. ``{"source": "cat.png", "psnr_db": 31.2}``.
    """

    spec: INRSpec
    params: dict[str, torch.Tensor]
    meta: dict = field(default_factory=dict)

    def batched(self) -> Params:
        """The weights with a leading batch axis of 1, for the functional forward."""
        return {k: v.unsqueeze(0) for k, v in self.params.items()}

    @classmethod
    def from_batch(cls, spec: INRSpec, params: Params, index: int, meta: dict | None = None) -> INR:
        return cls(spec, {k: v[index].detach().clone() for k, v in params.items()}, dict(meta or {}))


def check_shapes(spec: INRSpec, shapes: dict[str, tuple[int, ...]], where: str) -> None:
    """InvalidINRFile naming ``where`` unless ``shapes`` has exactly the spec's keys and shapes."""
    expected = dict(spec.param_shapes())
    unknown = [k for k in shapes if k not in expected]
    if unknown:
        raise InvalidINRFile(f"{where}: unknown key {shown(unknown[0])} for spec {shown(spec.name)} "
                             f"(expected {', '.join(expected)})")
    missing = [k for k in expected if k not in shapes]
    if missing:
        raise InvalidINRFile(f"{where}: missing key {missing[0]!r} for spec {shown(spec.name)}")
    for key, shape in expected.items():
        if tuple(shapes[key]) != shape:
            raise InvalidINRFile(f"{where}: {key!r} has shape {shown(tuple(shapes[key]))}, "
                                 f"spec {shown(spec.name)} needs {shape}")


def validate_params(spec: INRSpec, params: dict, where: str) -> dict[str, torch.Tensor]:
    """Check ``params`` has exactly the spec's keys and shapes; return float32 tensors.

    Raises InvalidINRFile naming ``where`` and the first problem found.
    """
    for key, t in params.items():
        if not isinstance(t, torch.Tensor):
            raise InvalidINRFile(f"{where}: {shown(key)} is not a tensor")
    check_shapes(spec, {k: tuple(t.shape) for k, t in params.items()}, where)
    out = {}
    for key, _ in spec.param_shapes():
        t = params[key]
        if not t.dtype.is_floating_point:
            raise InvalidINRFile(f"{where}: {key!r} has dtype {t.dtype}, expected floating point")
        t = t.detach().to(torch.float32).contiguous()
        if not torch.isfinite(t).all():
            raise InvalidINRFile(f"{where}: {key!r} contains NaN or infinite values")
        out[key] = t
    return out


def save_inr(path: str | os.PathLike, inr: INR) -> Path:
    """Write ``inr`` as one ``.safetensors`` file, atomically and sealed with its content hash.
    Returns the path written."""
    path = Path(path)
    tensors = {k: v.detach().to(torch.float32).contiguous() for k, v in inr.params.items()}
    metadata = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "spec": inr.spec.to_json(),
    }
    try:  # strict JSON: a NaN quality would make a file other tools cannot read
        metadata["meta"] = json.dumps(inr.meta, sort_keys=True, default=_json_default, allow_nan=False)
    except ValueError:
        raise InvalidINRFile(f"{path}: not written, its metadata holds NaN or infinite numbers") from None
    for k, v in tensors.items():
        if not bool(torch.isfinite(v).all()):
            raise InvalidINRFile(f"{path}: not written, {k!r} holds NaN or infinite values")
    return write_tensors(path, tensors, metadata)


def _json_default(o):
    if isinstance(o, (Path,)):
        return o.name
    if hasattr(o, "item"):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def load_inr(path: str | os.PathLike) -> INR:
    """Read an INR from ``.safetensors`` (ours) or a DWSNets/HyperDiffusion ``.pth``.

    Raises InvalidINRFile with one line naming the file and the problem.
    """
    path = Path(path)
    if not path.is_file():
        raise InvalidINRFile(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix in INR_SUFFIXES:
        return _load_safetensors(path)
    if suffix in TORCH_SUFFIXES:
        return import_torch_state_dict(path)
    raise InvalidINRFile(
        f"{path}: not an INR file (expected .safetensors, or .pth from DWSNets/HyperDiffusion)"
    )


def _load_safetensors(path: Path) -> INR:
    header, shapes = read_header(path)
    if "spec" in header:
        try:
            spec = INRSpec.from_json(header["spec"])
        except SpecError as e:
            raise InvalidINRFile(f"{path}: {e}") from None
    else:
        # A bare state dict saved as safetensors by someone else: recognise the built-ins.
        spec = spec_for_state_dict_keys(set(shapes))
        if spec is None:
            raise InvalidINRFile(
                f"{path}: no INR spec in its metadata and its keys match no built-in spec"
            )
    check_shapes(spec, {k: shape for k, (shape, _) in shapes.items()}, str(path))  # before reading any data
    header, tensors = read_tensors(path)
    meta: dict = {"imported_from": "safetensors state dict"}
    if "spec" in header:
        try:
            meta = json.loads(header.get("meta", "{}"))
        except json.JSONDecodeError:
            raise InvalidINRFile(f"{path}: metadata 'meta' is not valid JSON") from None
        if not isinstance(meta, dict):
            raise InvalidINRFile(f"{path}: metadata 'meta' is not a JSON object")
    return INR(spec, validate_params(spec, tensors, str(path)), meta)


def import_torch_state_dict(path: str | os.PathLike) -> INR:
    """Import a DWSNets/EquiGen MNIST-INR or HyperDiffusion ``.pth`` without running any code,
    in bounded time and memory (``torch_import.read_state_dict``).

    Accepts a plain state dict or one wrapped as ``{'params': ...}`` / ``{'state_dict': ...}``.
    """
    path = Path(path)
    state = read_state_dict(path)
    keys = set(state)
    spec = spec_for_state_dict_keys(keys)
    if spec is None:
        spec = _closest_builtin(keys)
    source = "DWSNets/EquiGen MNIST-INR" if spec.name == "mnist-siren" else "HyperDiffusion"
    params = validate_params(spec, state, str(path))
    return INR(spec, params, {"imported_from": source, "source": path.name})


def _closest_builtin(keys: set[str]) -> INRSpec:
    """The built-in spec sharing most keys, so the error names the nearest format's problem."""
    best = max(
        BUILTIN_SPECS.values(),
        key=lambda s: len(keys & {k for k, _ in s.param_shapes()}),
    )
    return best


def describe(inr: INR) -> dict:
    """A JSON-ready summary: spec name, domain, parameter count and metadata."""
    return {
        "spec": inr.spec.name,
        "dimension": inr.spec.in_dim,
        "domain": list(inr.spec.domain),
        "output": inr.spec.output,
        "num_params": inr.spec.num_params,
        "param_norm": math.sqrt(sum(float((v**2).sum()) for v in inr.params.values())),
        "meta": inr.meta,
    }
