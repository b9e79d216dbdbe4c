"""Reading and writing INR files.

Our format: one INR per ``.safetensors`` file, the state-dict tensors under their published keys
plus JSON metadata (``spec``, and ``meta``: provenance, fit quality). Imports: DWSNets/EquiGen
MNIST-INR and HyperDiffusion ``.pth`` state dicts, read with ``weights_only=True`` so that no code
in a pickle ever runs.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from engine.atomic import atomic_path
from engine.errors import InvalidINRFile, SpecError
from engine.functional import Params
from engine.spec import BUILTIN_SPECS, INRSpec, spec_for_state_dict_keys

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


def validate_params(spec: INRSpec, params: dict, where: str) -> dict[str, torch.Tensor]:
    """Check ``params`` has exactly the spec's keys and shapes; return float32 tensors.

    Raises InvalidINRFile naming ``where`` and the first problem found.
    """
    expected = dict(spec.param_shapes())
    missing = [k for k in expected if k not in params]
    unknown = [k for k in params if k not in expected]
    if unknown:
        raise InvalidINRFile(
            f"{where}: unknown key {unknown[0]!r} for spec {spec.name!r} "
            f"(expected {', '.join(expected)})"
        )
    if missing:
        raise InvalidINRFile(f"{where}: missing key {missing[0]!r} for spec {spec.name!r}")
    out = {}
    for key, shape in expected.items():
        t = params[key]
        if not isinstance(t, torch.Tensor):
            raise InvalidINRFile(f"{where}: {key!r} is not a tensor")
        if tuple(t.shape) != shape:
            raise InvalidINRFile(
                f"{where}: {key!r} has shape {tuple(t.shape)}, spec {spec.name!r} needs {shape}"
            )
        if not t.dtype.is_floating_point:
            raise InvalidINRFile(f"{where}: {key!r} has dtype {t.dtype}, expected floating point")
        t = t.detach().to(torch.float32).contiguous()
        if not torch.isfinite(t).all():
            raise InvalidINRFile(f"{where}: {key!r} contains NaN or infinite values")
        out[key] = t
    return out


def save_inr(path: str | os.PathLike, inr: INR) -> Path:
    """Write ``inr`` as one ``.safetensors`` file, atomically. Returns the path written."""
    path = Path(path)
    tensors = {k: v.detach().to(torch.float32).contiguous() for k, v in inr.params.items()}
    metadata = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "spec": inr.spec.to_json(),
        "meta": json.dumps(inr.meta, sort_keys=True, default=_json_default),
    }
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return path


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
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise InvalidINRFile(f"{path}: unreadable or truncated safetensors file ({e})") from None
    meta: dict = {}
    if "spec" in header:
        try:
            spec = INRSpec.from_json(header["spec"])
        except SpecError as e:
            raise InvalidINRFile(f"{path}: {e}") from None
        try:
            meta = json.loads(header.get("meta", "{}"))
        except json.JSONDecodeError:
            raise InvalidINRFile(f"{path}: metadata 'meta' is not valid JSON") from None
    else:
        # A bare state dict saved as safetensors by someone else: recognise the built-ins.
        spec = spec_for_state_dict_keys(set(tensors))
        if spec is None:
            raise InvalidINRFile(
                f"{path}: no INR spec in its metadata and its keys match no built-in spec"
            )
        meta = {"imported_from": "safetensors state dict"}
    return INR(spec, validate_params(spec, tensors, str(path)), meta)


def import_torch_state_dict(path: str | os.PathLike) -> INR:
    """Import a DWSNets/EquiGen MNIST-INR or HyperDiffusion ``.pth`` without running any code.

    Accepts a plain state dict or one wrapped as ``{'params': ...}`` / ``{'state_dict': ...}``.
    """
    path = Path(path)
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for bad archives; all mean "cannot read"
        text = str(e)
        if "Weights only load failed" in text or "weights_only" in text:
            raise InvalidINRFile(
                f"{path}: refused, the file holds Python objects or code, not only tensors; "
                "re-save it as a plain state dict"
            ) from None
        raise InvalidINRFile(
            f"{path}: truncated or not a PyTorch file ({text.splitlines()[0][:120] if text else type(e).__name__})"
        ) from None
    if isinstance(obj, dict):
        for wrapper in ("params", "state_dict", "model"):
            if wrapper in obj and isinstance(obj[wrapper], dict):
                obj = obj[wrapper]
                break
    if not isinstance(obj, dict) or not obj:
        raise InvalidINRFile(f"{path}: holds no state dict of tensors")
    keys = {str(k) for k in obj}
    spec = spec_for_state_dict_keys(keys)
    if spec is None:
        spec = _closest_builtin(keys)
    source = "DWSNets/EquiGen MNIST-INR" if spec.name == "mnist-siren" else "HyperDiffusion"
    params = validate_params(spec, {str(k): v for k, v in obj.items()}, str(path))
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
