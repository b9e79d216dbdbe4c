"""One path from files to generated INRs for every kind of model file.

Raw-weight models (``model_file.py``: 2D, and 3D corpora fitted from a shared initialisation)
and structured models (``code_model.py``: codes of a shared network) load, adapt to shot
files and sample through the same four calls, so the CLI, the studio's session and the
benchmarks do exactly the same thing with either.
"""

from __future__ import annotations

import os

from engine.diffusion.adapt import AdaptConfig, adapt, adapt_recipe
from engine.diffusion.code_model import CODE_MODEL_FORMAT, CodeDiffusion, load_code_model, model_format
from engine.diffusion.code_sample import sample_codes
from engine.diffusion.code_shots import load_code_shots
from engine.diffusion.code_train import CodeAdaptConfig, adapt_codes, code_adapt_recipe
from engine.diffusion.generate import GenerateConfig, sample
from engine.diffusion.model_file import WeightDiffusion, load_model
from engine.diffusion.shots import load_shots
from engine.functional import Params
from engine.progress import ProgressGen

Generator = WeightDiffusion | CodeDiffusion


def load_generator(path: str | os.PathLike) -> Generator:
    """Any model file ``equigen train`` or ``adapt`` writes; InputError with a hint otherwise."""
    if model_format(path) == CODE_MODEL_FORMAT:
        return load_code_model(path)
    return load_model(path)


def adapt_recipe_for(model: Generator) -> AdaptConfig | CodeAdaptConfig:
    """The default adaptation recipe of ``model``'s kind and domain."""
    return code_adapt_recipe(model.spec) if isinstance(model, CodeDiffusion) else adapt_recipe(model.spec)


def adapt_to_files(model: Generator, shot_paths: list[str | os.PathLike],
                   config: AdaptConfig | CodeAdaptConfig | None = None) -> ProgressGen[Generator]:
    """Read, check and fit the shot files (images, meshes or INR files), then fine-tune a copy of
    ``model`` on them. Closing the generator cancels and leaves ``model`` untouched."""
    config = config or adapt_recipe_for(model)
    if isinstance(model, CodeDiffusion):
        names, codes, _ = yield from load_code_shots(model, shot_paths)
        return (yield from adapt_codes(model, names, codes, config))
    shots = yield from load_shots(model, shot_paths)
    return (yield from adapt(model, shots, config))


def generate_params(model: Generator, config: GenerateConfig) -> ProgressGen[Params]:
    """``config.n`` complete INRs ``{key: (n, *shape)}`` from an adapted model (or, for the
    ``hyperdiffusion`` method, an unadapted one)."""
    if isinstance(model, CodeDiffusion):
        codes = yield from sample_codes(model, config)
        return model.base.full_params(codes)
    return (yield from sample(model, config=config))


def provenance(model: Generator) -> dict[str, str]:
    """What generated INR files record about the network they come from."""
    if isinstance(model, CodeDiffusion):
        return {"base_sha": model.base_sha}
    return {"init_sha": model.init_sha}
