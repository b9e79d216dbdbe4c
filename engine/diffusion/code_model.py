"""A generator's model file in the structured weight space: everything to adapt and sample.

Tensors: ``base.*`` (the shared network, ``weightspace/structured.py``), ``denoiser.*`` (the EMA
weights of the code denoiser), ``process.prior.*`` (the Gaussian the skip filters through: the
source codes', or the shots' after adaptation), ``encoder.*`` (the frozen E_φ over complete INRs;
absent for the HyperDiffusion baseline), ``stats.mean`` / ``stats.std`` (per-element statistics
of the source codes), ``feature_scale`` (spread of ψ over the source split) and after adaptation
``shots.codes`` / ``shots.features``. Metadata: spec, method, configs, meta and the shots' names.

Every generated shape is a complete INR of the base's spec (``CodeDiffusion.inr_params``).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from engine.atomic import atomic_path
from engine.diffusion.code_denoiser import CodeDenoiser, CodeDenoiserConfig
from engine.diffusion.process import DiffusionProcess, ProcessConfig
from engine.encoder.model import WeightEncoder, encoder_config_from_json
from engine.errors import InputError
from engine.functional import Params, params_digest
from engine.spec import INRSpec
from engine.weightspace.structured import SharedBase, base_from_tensors

CODE_MODEL_FORMAT = "equigen-code-model"


@dataclass
class CodeShots:
    """The few-shot examples an adapted model carries, as codes of its base."""

    names: list[str]
    codes: torch.Tensor  # (K, code_dim)
    features: torch.Tensor | None  # (K, feature_dim); None without an encoder


@dataclass
class CodeDiffusion:
    """Diffusion over the codes of a shared base, conditioned on ψ of complete INRs."""

    base: SharedBase
    method: str  # "equigen" or "hyperdiffusion"
    process: DiffusionProcess
    denoiser: CodeDenoiser
    encoder: WeightEncoder | None
    mean: torch.Tensor  # (D,) source codes' mean
    std: torch.Tensor  # (D,) their spread, floored
    feature_scale: torch.Tensor | None
    meta: dict = field(default_factory=dict)
    shots: CodeShots | None = None

    @property
    def spec(self) -> INRSpec:
        return self.base.spec

    def normalise(self, codes: torch.Tensor) -> torch.Tensor:
        return (codes - self.mean) / self.std

    def denormalise(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.std + self.mean

    def inr_params(self, x: torch.Tensor) -> Params:
        """Complete INRs ``{key: (B, *shape)}`` of normalised codes ``(B, D)`` (differentiable)."""
        return self.base.inr_params(self.denormalise(x))

    @property
    def base_sha(self) -> str:
        """Content hash of the shared network: INR files carrying it were made by this base."""
        return params_digest(self.base.state())

    def features(self, codes: torch.Tensor) -> torch.Tensor | None:
        """ψ ``(B, feature_dim)`` of raw codes, or None without an encoder."""
        if self.encoder is None:
            return None
        with torch.no_grad():
            return self.encoder(self.base.inr_params(codes))


def save_code_model(path: str | os.PathLike, model: CodeDiffusion, half: bool = False) -> Path:
    """Write ``model`` atomically; ``half`` stores the denoiser and encoder in float16."""
    tensors = {f"base.{k}": v for k, v in model.base.state().items()}
    tensors |= {f"denoiser.{k}": v for k, v in model.denoiser.state_dict().items()}
    tensors |= {f"process.{k}": v for k, v in model.process.prior_tensors().items()}
    if model.encoder is not None:
        tensors |= {f"encoder.{k}": v for k, v in model.encoder.state_dict().items()}
    tensors |= {"stats.mean": model.mean, "stats.std": model.std}
    if model.feature_scale is not None:
        tensors["feature_scale"] = model.feature_scale
    header = {
        "format": CODE_MODEL_FORMAT, "method": model.method, "spec": model.spec.to_json(),
        "denoiser": model.denoiser.config.to_json(), "process": json.dumps(asdict(model.process.config)),
        "cond_dim": str(model.denoiser.cond_dim),
        "encoder": json.dumps(asdict(model.encoder.config)) if model.encoder is not None else "",
        "meta": json.dumps(model.meta, default=str),
    }
    if model.shots is not None:
        tensors["shots.codes"] = model.shots.codes
        if model.shots.features is not None:
            tensors["shots.features"] = model.shots.features
        header["shots"] = json.dumps(model.shots.names)
    small = torch.float16 if half else torch.float32

    def halved(key: str) -> bool:
        return key.startswith(("denoiser.", "encoder."))

    tensors = {k: v.detach().to(small if halved(k) else torch.float32).contiguous().clone()
               for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=header)
    return Path(path)


def _prefixed(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def model_format(path: str | os.PathLike) -> str | None:
    """The ``format`` a model file's header names (None when it is not a readable safetensors)."""
    try:
        with safe_open(str(path), framework="pt") as f:
            return (f.metadata() or {}).get("format")
    except (SafetensorError, OSError):
        return None


def load_code_model(path: str | os.PathLike) -> CodeDiffusion:
    """A code-model file back, in eval mode; InputError with a hint for anything else."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such model file")
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
            tensors = {k: f.get_tensor(k).float() for k in f.keys()}
    except (SafetensorError, OSError) as e:
        raise InputError(f"{path}: unreadable model file ({e})") from None
    if header.get("format") != CODE_MODEL_FORMAT:
        raise InputError(f"{path}: not a structured model file")
    try:
        spec = INRSpec.from_json(header["spec"])
        base = base_from_tensors(spec, _prefixed(tensors, "base."))
        encoder = None
        if header.get("encoder"):
            encoder = WeightEncoder(spec, encoder_config_from_json(header["encoder"]))
            encoder.load_state_dict(_prefixed(tensors, "encoder."))
            encoder.eval().requires_grad_(False)
        denoiser = CodeDenoiser(base.code_dim, int(header["cond_dim"]),
                                CodeDenoiserConfig.from_json(header["denoiser"]))
        denoiser.load_state_dict(_prefixed(tensors, "denoiser."))
        process = DiffusionProcess(base.code_dim, ProcessConfig(**json.loads(header["process"])))
        process.load_prior_tensors(_prefixed(tensors, "process."))
    except (KeyError, ValueError, RuntimeError, TypeError) as e:
        raise InputError(f"{path}: damaged model file ({str(e).splitlines()[0][:200]})") from None
    shots = None
    if "shots" in header:
        shots = CodeShots(json.loads(header["shots"]), tensors["shots.codes"], tensors.get("shots.features"))
    return CodeDiffusion(base=base, method=header["method"], process=process, denoiser=denoiser.eval(),
                         encoder=encoder, mean=tensors["stats.mean"], std=tensors["stats.std"],
                         feature_scale=tensors.get("feature_scale"),
                         meta=json.loads(header.get("meta", "{}")), shots=shots)
