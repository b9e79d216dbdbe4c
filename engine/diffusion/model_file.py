"""The generator's model file: everything needed to adapt and sample, in one safetensors file.

Tensors: ``denoiser.*`` (the EMA weights, which sampling uses, and ``denoiser.prior_*``, the
Gaussian prior of its skip: the source split's, or the shots' after adaptation), ``encoder.*``
(the frozen E_φ; absent for the HyperDiffusion baseline), ``stats.mean`` / ``stats.std``
(per-element weight statistics of the source split, flattened), ``init.<key>`` (the shared initial weights the corpus
was fitted from: shots are fitted from it too), ``feature_scale`` (per-dimension spread of ψ over
the source split), and after adaptation ``shots.features`` and ``shots.<key>``.
Metadata: spec, method, denoiser and encoder configs, the training recipe and summary, the classes,
and after adaptation the shots' names and the adaptation recipe.
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
from engine.diffusion.denoiser import Denoiser, denoiser_config_from_json
from engine.diffusion.tokens import TokenLayout, flatten, token_layout, unflatten
from engine.encoder.model import WeightEncoder, encoder_config_from_json
from engine.errors import InputError
from engine.functional import Params, params_digest
from engine.spec import INRSpec

MODEL_FORMAT = "equigen-model"


@dataclass
class Shots:
    """The few-shot examples an adapted model carries, in the model's basin."""

    names: list[str]
    params: Params  # {key: (K, *shape)}
    features: torch.Tensor | None  # (K, feature_dim) ψ of the shots; None without an encoder


@dataclass
class WeightDiffusion:
    """A trained (and possibly adapted) weight-space diffusion model, ready to sample."""

    spec: INRSpec
    method: str
    denoiser: Denoiser
    encoder: WeightEncoder | None
    mean: torch.Tensor  # (P,) per-element weight mean over the source split
    std: torch.Tensor  # (P,)
    init: Params  # {key: (1, *shape)} the shared initialisation
    feature_scale: torch.Tensor | None  # (feature_dim,) std of ψ over the source split
    meta: dict = field(default_factory=dict)
    shots: Shots | None = None

    @property
    def layout(self) -> TokenLayout:
        return token_layout(self.spec, self.denoiser.config.token_numbers)

    @property
    def init_sha(self) -> str:
        """Content hash of the shared init: INR files carrying it are already in this basin."""
        return params_digest(self.init)

    def normalise(self, params: Params) -> torch.Tensor:
        """Weights ``{key: (B, *shape)}`` → normalised flat vectors ``(B, P)``."""
        return (flatten(self.layout, params) - self.mean) / self.std

    def denormalise(self, x: torch.Tensor) -> Params:
        """Normalised flat vectors ``(B, P)`` → weights ``{key: (B, *shape)}``."""
        return unflatten(self.layout, x * self.std + self.mean)


def save_model(path: str | os.PathLike, model: WeightDiffusion, half: bool = False) -> Path:
    """Write ``model`` to ``path`` atomically (see the module docstring for the layout).

    half: store the denoiser and encoder weights as float16 (half the size, for models that
    ship with the app); statistics, the denoiser's prior, init and shots stay float32, so the init
    hash is unchanged.
    """
    tensors = {f"denoiser.{k}": v for k, v in model.denoiser.state_dict().items()}
    if model.encoder is not None:
        tensors |= {f"encoder.{k}": v for k, v in model.encoder.state_dict().items()}
    tensors |= {"stats.mean": model.mean, "stats.std": model.std}
    tensors |= {f"init.{k}": v for k, v in model.init.items()}
    if model.feature_scale is not None:
        tensors["feature_scale"] = model.feature_scale
    header = {
        "format": MODEL_FORMAT, "method": model.method, "spec": model.spec.to_json(),
        "denoiser": json.dumps(asdict(model.denoiser.config)),
        "encoder": json.dumps(asdict(model.encoder.config)) if model.encoder is not None else "",
        "meta": json.dumps(model.meta, default=str),
    }
    if model.shots is not None:
        tensors |= {f"shots.{k}": v for k, v in model.shots.params.items()}
        if model.shots.features is not None:
            tensors["shots.features"] = model.shots.features
        header["shots"] = json.dumps(model.shots.names)
    small = torch.float16 if half else torch.float32
    def halved(key: str) -> bool:
        return key.startswith(("denoiser.", "encoder.")) and not key.startswith("denoiser.prior_")

    tensors = {k: v.detach().to(small if halved(k) else torch.float32).contiguous().clone()
               for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=header)
    return Path(path)


def load_model(path: str | os.PathLike) -> WeightDiffusion:
    """A model file back, in eval mode; InputError with a hint for anything else."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such model file")
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
            tensors = {k: f.get_tensor(k).float() for k in f.keys()}
    except (SafetensorError, OSError) as e:
        raise InputError(f"{path}: unreadable model file ({e})") from None
    if header.get("format") != MODEL_FORMAT:
        raise InputError(f"{path}: not an EquiGen model file; make one with 'equigen train'")
    spec = INRSpec.from_json(header["spec"])
    method = header["method"]
    encoder = None
    if header.get("encoder"):
        encoder = WeightEncoder(spec, encoder_config_from_json(header["encoder"]))
        encoder.load_state_dict(_prefixed(tensors, "encoder."))
        encoder.eval().requires_grad_(False)
    cond_dim = encoder.config.feature_dim if encoder is not None else 0
    dconf = denoiser_config_from_json(header["denoiser"])
    denoiser = Denoiser(token_layout(spec, dconf.token_numbers), cond_dim, dconf)
    denoiser.load_state_dict(_prefixed(tensors, "denoiser."))
    denoiser.eval()
    keys = [k for k, _ in spec.param_shapes()]
    shots = None
    if "shots" in header:
        shots = Shots(json.loads(header["shots"]), {k: tensors[f"shots.{k}"] for k in keys},
                      tensors.get("shots.features"))
    return WeightDiffusion(
        spec=spec, method=method, denoiser=denoiser, encoder=encoder,
        mean=tensors["stats.mean"], std=tensors["stats.std"],
        init={k: tensors[f"init.{k}"] for k in keys}, feature_scale=tensors.get("feature_scale"),
        meta=json.loads(header.get("meta", "{}")), shots=shots,
    )


def _prefixed(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
