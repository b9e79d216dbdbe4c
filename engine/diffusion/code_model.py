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

import copy
import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open

from engine.diffusion.code_denoiser import CodeDenoiser, CodeDenoiserConfig
from engine.diffusion.model_header import expect_shape, prefixed, read_model_header, shot_names
from engine.diffusion.process import DiffusionProcess, ProcessConfig
from engine.encoder.model import WeightEncoder, encoder_config_from_json
from engine.errors import EquigenError, InputError, SpecError, clipped, shown
from engine.functional import Params, params_digest
from engine.spec import INRSpec
from engine.tensor_files import check_finite, check_module, json_field, read_tensors, write_tensors
from engine.weightspace.structured import MAX_RANK, SharedBase, base_from_tensors

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

    @property
    def device(self) -> torch.device:
        """Where this model computes (``to`` moves it)."""
        return self.mean.device

    def to(self, device: torch.device) -> CodeDiffusion:
        """This model with every network and tensor on ``device`` (a copy when it moves; files are
        always written from the CPU)."""
        if device == self.device:
            return self
        moved = lambda t: None if t is None else t.to(device)  # noqa: E731
        shots = None if self.shots is None else CodeShots(list(self.shots.names), moved(self.shots.codes),
                                                         moved(self.shots.features))
        return replace(self, base=copy.deepcopy(self.base).to(device), process=self.process.to(device),
                       denoiser=copy.deepcopy(self.denoiser).to(device),
                       encoder=None if self.encoder is None else copy.deepcopy(self.encoder).to(device),
                       mean=self.mean.to(device), std=self.std.to(device), feature_scale=moved(self.feature_scale),
                       meta=dict(self.meta), shots=shots)

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
    check_finite(tensors, str(path), EquigenError, "; nothing was written (the training or adaptation diverged)")
    return write_tensors(path, tensors, header)


def model_format(path: str | os.PathLike) -> str | None:
    """The ``format`` a model file's header names (None when it is not a readable safetensors)."""
    try:
        with safe_open(str(path), framework="pt") as f:
            return (f.metadata() or {}).get("format")
    except (SafetensorError, OSError, ValueError):
        return None


def load_code_model(path: str | os.PathLike) -> CodeDiffusion:
    """A code-model file back, in eval mode; InputError with a hint for anything else.

    Every header field is checked, and every tensor the header implies is checked against the
    file's shapes before any network is built or any tensor read; the tensors must be finite
    and the spreads positive.
    """
    path = Path(path)
    where = str(path)
    header, shapes, method = read_model_header(path, CODE_MODEL_FORMAT, "not a structured model file")
    try:
        spec = INRSpec.from_json(header.get("spec", ""))
        dconf = CodeDenoiserConfig(**json_field(header, "denoiser", where, dict, InputError))
        pconf = ProcessConfig(**json_field(header, "process", where, dict, InputError))
        econf = encoder_config_from_json(header["encoder"]) if header.get("encoder") else None
    except (SpecError, InputError, TypeError, ValueError, KeyError) as e:
        raise InputError(f"{path}: damaged model file ({clipped(str(e))})") from None
    cond_dim = header.get("cond_dim", "")
    if not cond_dim.isdigit() or int(cond_dim) != (econf.feature_dim if econf is not None else 0):
        raise InputError(f"{path}: damaged model file, cond_dim {shown(cond_dim)} does not match its encoder")
    cond_dim = int(cond_dim)
    if method == "equigen" and econf is None:
        raise InputError(f"{path}: damaged model file, an equigen model without its encoder")
    if "base.patterns.0" not in shapes or len(shapes["base.patterns.0"][0]) != 2 \
            or not 0 < shapes["base.patterns.0"][0][1] <= MAX_RANK:
        raise InputError(f"{path}: damaged model file, no shared patterns of rank 1 to {MAX_RANK}")
    rank = shapes["base.patterns.0"][0][1]
    try:
        check_module(lambda: SharedBase(spec, rank), shapes, "base.", where, InputError)
    except ValueError as e:
        raise InputError(f"{path}: damaged model file ({clipped(str(e))})") from None
    with torch.device("meta"):
        code_dim = SharedBase(spec, rank).code_dim
    check_module(lambda: CodeDenoiser(code_dim, cond_dim, dconf), shapes, "denoiser.", where, InputError)
    if econf is not None:
        check_module(lambda: WeightEncoder(spec, econf), shapes, "encoder.", where, InputError)
    for key in ("stats.mean", "stats.std"):
        expect_shape(shapes, key, (code_dim,), where)
    if econf is not None:
        expect_shape(shapes, "feature_scale", (econf.feature_dim,), where, required=False)
    if pconf.skip and pconf.prior_rank > 0:
        for key, shape in (("prior.mean", (code_dim,)), ("prior.basis", (pconf.prior_rank, code_dim)),
                           ("prior.variance", (pconf.prior_rank,)), ("prior.floor", ())):
            expect_shape(shapes, "process." + key, shape, where)
    names = shot_names(header, where)
    if names is not None:
        expect_shape(shapes, "shots.codes", (len(names), code_dim), where)
        if econf is not None:
            expect_shape(shapes, "shots.features", (len(names), econf.feature_dim), where, required=False)
    meta = json_field(header, "meta", where, dict, InputError, required=False, default={})
    _, tensors = read_tensors(path, InputError)
    tensors = {k: v.float() for k, v in tensors.items()}
    check_finite(tensors, where, InputError)
    if not bool((tensors["stats.std"] > 0).all()) or ("feature_scale" in tensors
                                                      and not bool((tensors["feature_scale"] >= 0).all())):
        raise InputError(f"{path}: damaged model file, a spread (stats.std or feature_scale) is not positive")
    base = base_from_tensors(spec, prefixed(tensors, "base."))
    encoder = None
    if econf is not None:
        encoder = WeightEncoder(spec, econf)
        encoder.load_state_dict(prefixed(tensors, "encoder."))
        encoder.eval().requires_grad_(False)
    denoiser = CodeDenoiser(base.code_dim, cond_dim, dconf)
    denoiser.load_state_dict(prefixed(tensors, "denoiser."))
    process = DiffusionProcess(base.code_dim, pconf)
    process.load_prior_tensors(prefixed(tensors, "process."))
    shots = None
    if names is not None:
        shots = CodeShots(names, tensors["shots.codes"], tensors.get("shots.features"))
    return CodeDiffusion(base=base, method=method, process=process, denoiser=denoiser.eval(),
                         encoder=encoder, mean=tensors["stats.mean"], std=tensors["stats.std"],
                         feature_scale=tensors.get("feature_scale"), meta=meta, shots=shots)
