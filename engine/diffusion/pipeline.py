"""One path from files to generated INRs for every kind of model file: shots → adapt → sample → write.

Raw-weight models (``model_file.py``: 2D, and 3D corpora fitted from a shared initialisation)
and structured models (``code_model.py``: codes of a shared network) load, adapt to shot
files, sample and save through the same calls, so the CLI, the studio's session and the
benchmarks do exactly the same thing with either, and every generated INR records the same
metadata (``generation_meta``).
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from engine.diffusion.adapt import AdaptConfig, adapt
from engine.diffusion.code_model import CODE_MODEL_FORMAT, CodeDiffusion, CodeShots, load_code_model, model_format, save_code_model
from engine.diffusion.code_sample import sample_codes
from engine.diffusion.code_shots import load_code_shots
from engine.diffusion.code_train import CodeAdaptConfig, adapt_codes
from engine.diffusion.generate import GenerateConfig, sample
from engine.diffusion.model_file import Shots, WeightDiffusion, load_model, save_model
from engine.diffusion.outputs import write_samples
from engine.diffusion.shots import load_shots
from engine.device import resolve as resolve_device
from engine.domains import domain_of
from engine.functional import Params
from engine.progress import ProgressGen

Generator = WeightDiffusion | CodeDiffusion


def load_generator(path: str | os.PathLike, device: str | torch.device | None = "cpu") -> Generator:
    """Any model file ``equigen train`` or ``adapt`` writes, on ``device`` (``engine.device``
    names: auto, cpu, cuda, cuda:N); InputError with a hint otherwise."""
    target = resolve_device(device)
    if model_format(path) == CODE_MODEL_FORMAT:
        return load_code_model(path).to(target)
    return load_model(path).to(target)


def save_generator(path: str | os.PathLike, model: Generator, half: bool = False) -> Path:
    """Write ``model`` (trained or adapted) atomically in its own format; ``half``: its networks
    in float16 (what ships). Returns the path."""
    return Path((save_code_model if isinstance(model, CodeDiffusion) else save_model)(path, model, half=half))


def adapt_recipe_for(model: Generator) -> AdaptConfig | CodeAdaptConfig:
    """The default adaptation recipe of ``model``'s kind and domain."""
    domain = domain_of(model.spec)
    return domain.code_adapt if isinstance(model, CodeDiffusion) else domain.adapt


def adapt_to_files(model: Generator, shot_paths: list[str | os.PathLike],
                   config: AdaptConfig | CodeAdaptConfig | None = None) -> ProgressGen[Generator]:
    """Read, check and fit the shot files (images, meshes or INR files), then fine-tune a copy of
    ``model`` on them. The adapted model's ``meta["adapt"]`` also holds ``fit_seconds`` (reading
    and fitting the shots) and, for structured models, ``shot_quality`` (PSNR in dB or IoU per
    shot; None for INR files taken as they are). Closing the generator cancels and leaves
    ``model`` untouched."""
    config = config or adapt_recipe_for(model)
    t0 = time.perf_counter()
    extra: dict = {}
    if isinstance(model, CodeDiffusion):
        names, codes, quality = yield from load_code_shots(model, shot_paths)
        extra["shot_quality"] = [None if math.isnan(q) else round(float(q), 4) for q in quality]
        extra["fit_seconds"] = round(time.perf_counter() - t0, 2)
        adapted = yield from adapt_codes(model, names, codes, config)
    else:
        shots = yield from load_shots(model, shot_paths)
        extra["fit_seconds"] = round(time.perf_counter() - t0, 2)
        adapted = yield from adapt(model, shots, config)
    adapted.meta = dict(adapted.meta, adapt=dict(adapted.meta["adapt"], **extra))
    return adapted


def adapt_to_inrs(model: Generator, names: Sequence[str], params: Params,
                  config: AdaptConfig | CodeAdaptConfig | None = None) -> ProgressGen[Generator]:
    """Fine-tune a copy of ``model`` on shots that are already INRs of its space, ``{key: (K, *shape)}``
    (of its shared initialisation's basin, or made by its shared network), as the evaluation's
    held-out items are."""
    config = config or adapt_recipe_for(model)
    if isinstance(model, CodeDiffusion):
        return (yield from adapt_codes(model, list(names), _codes_of(model, params), config))
    return (yield from adapt(model, Shots(list(names), params, None), config))


def _codes_of(model: CodeDiffusion, params: Params) -> torch.Tensor:
    """The codes ``(K, D)`` of INRs made by the model's base, on the model's device."""
    return model.base.codes_of({k: v.to(model.device) for k, v in params.items()})


def with_shots(model: Generator, names: Sequence[str], params: Params) -> Generator:
    """A copy of ``model`` that carries these shots (INRs of its space) without fine-tuning: what
    the shots-noise baseline perturbs."""
    if isinstance(model, CodeDiffusion):
        return dataclasses.replace(model, shots=CodeShots(list(names), _codes_of(model, params), None))
    return dataclasses.replace(model, shots=Shots(list(names), params, None))


def generate_params(model: Generator, config: GenerateConfig) -> ProgressGen[Params]:
    """``config.n`` complete INRs ``{key: (n, *shape)}`` from an adapted model (or, for the
    ``hyperdiffusion`` method, an unadapted one)."""
    if isinstance(model, CodeDiffusion):
        codes = yield from sample_codes(model, config)
        return {k: v.cpu() for k, v in model.base.full_params(codes).items()}  # INRs live on the CPU
    return {k: v.cpu() for k, v in (yield from sample(model, config=config)).items()}


def provenance(model: Generator) -> dict[str, str]:
    """What generated INR files record about the network they come from."""
    if isinstance(model, CodeDiffusion):
        return {"base_sha": model.base_sha}
    return {"init_sha": model.init_sha}


def generation_meta(model: Generator, model_name: str, config: GenerateConfig,
                    shot_names: Sequence[str] = ()) -> dict:
    """What every generated INR file records, whichever front door made it (add ``index``)."""
    return {"generated_by": config.method or model.method, "model": model_name, "seed": config.seed,
            "diversity": config.diversity, "shots": [Path(s).name for s in shot_names]} | provenance(model)


def generate_files(model: Generator, config: GenerateConfig, out_dir: str | os.PathLike, fmt: str,
                   model_name: str, shot_names: Sequence[str] = (), resolution: int = 128) -> ProgressGen[list[dict]]:
    """Sample ``config.n`` INRs from ``model`` (adapted, or unadapted for ``hyperdiffusion``) and write
    each to ``out_dir`` as ``fmt`` (``outputs.write_samples``, decoded on the model's device);
    returns one record per sample."""
    params = yield from generate_params(model, config)
    meta = generation_meta(model, model_name, config, shot_names)
    metas = [dict(meta, index=i) for i in range(config.n)]
    return (yield from write_samples(model.spec, params, out_dir, fmt, metas, resolution, device=model.device))
