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

import copy
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from engine.diffusion.denoiser import Denoiser, denoiser_config_from_json
from engine.diffusion.tokens import TokenLayout, flatten, token_layout, unflatten
from engine.encoder.model import WeightEncoder, encoder_config_from_json
from engine.diffusion.model_header import expect_shape, prefixed, read_model_header, shot_names
from engine.errors import EquigenError, InputError, SpecError, clipped
from engine.functional import Params, params_digest
from engine.spec import INRSpec
from engine.tensor_files import check_finite, check_module, json_field, read_tensors, write_tensors

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
    def device(self) -> torch.device:
        """Where this model computes (``to`` moves it)."""
        return self.mean.device

    def to(self, device: torch.device) -> "WeightDiffusion":
        """This model with every network and tensor on ``device`` (a copy when it moves; files are
        always written from the CPU)."""
        if device == self.device:
            return self
        moved = lambda t: None if t is None else t.to(device)  # noqa: E731
        shots = None if self.shots is None else Shots(list(self.shots.names),
                                                      {k: v.to(device) for k, v in self.shots.params.items()},
                                                      moved(self.shots.features))
        return WeightDiffusion(spec=self.spec, method=self.method, denoiser=copy.deepcopy(self.denoiser).to(device),
                               encoder=None if self.encoder is None else copy.deepcopy(self.encoder).to(device),
                               mean=self.mean.to(device), std=self.std.to(device),
                               init={k: v.to(device) for k, v in self.init.items()},
                               feature_scale=moved(self.feature_scale), meta=dict(self.meta), shots=shots)

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
    check_finite(tensors, str(path), EquigenError, "; nothing was written (the training or adaptation diverged)")
    return write_tensors(path, tensors, header)


def load_model(path: str | os.PathLike) -> WeightDiffusion:
    """A model file back, in eval mode; InputError with a hint for anything else. The header and
    the tensor shapes it implies are checked before any network is built or tensor read."""
    path = Path(path)
    where = str(path)
    header, shapes, method = read_model_header(path, MODEL_FORMAT,
                                               "not an EquiGen model file; make one with 'equigen train'")
    try:
        spec = INRSpec.from_json(header.get("spec", ""))
        econf = encoder_config_from_json(header["encoder"]) if header.get("encoder") else None
        dconf = denoiser_config_from_json(header["denoiser"])
        layout = token_layout(spec, dconf.token_numbers)
    except (SpecError, InputError, KeyError, TypeError, ValueError) as e:
        raise InputError(f"{path}: damaged model file ({clipped(str(e))})") from None
    if method == "equigen" and econf is None:
        raise InputError(f"{path}: damaged model file, an equigen model without its encoder")
    cond_dim = econf.feature_dim if econf is not None else 0
    if econf is not None:
        check_module(lambda: WeightEncoder(spec, econf), shapes, "encoder.", where, InputError)
    check_module(lambda: Denoiser(layout, cond_dim, dconf), shapes, "denoiser.", where, InputError)
    keys = [k for k, _ in spec.param_shapes()]
    names = shot_names(header, where)
    for key in ("stats.mean", "stats.std"):
        expect_shape(shapes, key, (spec.num_params,), where)
    for k, shape in spec.param_shapes():
        expect_shape(shapes, f"init.{k}", (1, *shape), where)
        if names is not None:
            expect_shape(shapes, f"shots.{k}", (len(names), *shape), where)
    if econf is not None:
        expect_shape(shapes, "feature_scale", (econf.feature_dim,), where, required=False)
        if names is not None:
            expect_shape(shapes, "shots.features", (len(names), econf.feature_dim), where, required=False)
    meta = json_field(header, "meta", where, dict, InputError, required=False, default={})
    _, tensors = read_tensors(path, InputError)
    tensors = {k: v.float() for k, v in tensors.items()}
    check_finite(tensors, where, InputError)
    if not bool((tensors["stats.std"] > 0).all()):
        raise InputError(f"{path}: damaged model file, stats.std is not positive everywhere")
    encoder = None
    if econf is not None:
        encoder = WeightEncoder(spec, econf)
        encoder.load_state_dict(prefixed(tensors, "encoder."))
        encoder.eval().requires_grad_(False)
    denoiser = Denoiser(layout, cond_dim, dconf)
    denoiser.load_state_dict(prefixed(tensors, "denoiser."))
    denoiser.eval()
    shots = None
    if names is not None:
        shots = Shots(names, {k: tensors[f"shots.{k}"] for k in keys}, tensors.get("shots.features"))
    return WeightDiffusion(
        spec=spec, method=method, denoiser=denoiser, encoder=encoder,
        mean=tensors["stats.mean"], std=tensors["stats.std"],
        init={k: tensors[f"init.{k}"] for k in keys}, feature_scale=tensors.get("feature_scale"),
        meta=meta, shots=shots,
    )
