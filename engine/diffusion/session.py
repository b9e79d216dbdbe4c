"""What the desktop app drives: one model, its last adaptation, and generation on demand.

Adapting is the slow part (seconds to a minute), sampling the fast one (about a second), so the
session keeps the adapted model for the current shots and only re-adapts when the shots (or their
files) change: moving the diversity slider and pressing Generate again samples straight away.
Used from one worker thread at a time.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from engine.device import gpu_errors
from engine.diffusion.adapt import AdaptConfig
from engine.diffusion.code_model import CodeDiffusion
from engine.diffusion.code_train import CodeAdaptConfig
from engine.diffusion.generate import GenerateConfig
from engine.diffusion.model_file import WeightDiffusion
from engine.errors import EquigenError
from engine.diffusion.pipeline import (
    adapt_recipe_for, adapt_to_files, generate_params, generation_meta, load_generator, save_generator,
)
from engine.inr_io import INR
from engine.progress import Progress, ProgressGen
from engine.session import Preview, preview

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelInfo:
    path: str
    method: str
    spec: str
    domain: str  # "2d" or "3d"
    target_classes: tuple[str, ...]
    source_classes: tuple[str, ...] = ()
    recipe: str = ""  # one line: how it was trained


def describe_model(model: WeightDiffusion | CodeDiffusion, path: str | os.PathLike) -> ModelInfo:
    classes = model.meta.get("classes", {})
    train = model.meta.get("train", {})
    steps = train.get("steps") or train.get("recipe", {}).get("steps")
    shapes = train.get("source_codes") or train.get("source_inrs")
    recipe = ", ".join(x for x in (
        "structured space" if isinstance(model, CodeDiffusion) else "raw weights",
        f"{steps:,} training steps" if steps else "",
        f"{shapes:,} source shapes" if shapes else "",
        f"equigen recipe {model.meta['recipe']}" if model.meta.get("recipe")
        else f"corpus {model.meta['corpus']}" if model.meta.get("corpus") else "") if x)
    return ModelInfo(str(path), model.method, model.spec.name, "2d" if model.spec.in_dim == 2 else "3d",
                     tuple(classes.get("target", ())), tuple(classes.get("source", ())), recipe)


class GenerationSession:
    """A loaded model plus the cached adaptation to the current shots. Raw-weight models
    (``model_file.py``) and structured models (``code_model.py``) alike."""

    def __init__(self, model_path: str | os.PathLike, adapt_config: AdaptConfig | CodeAdaptConfig | None = None,
                 adapted_file: str | os.PathLike | None = None, device: str = "cpu"):
        self.model_path = Path(model_path)
        self.model = load_generator(model_path, device)
        self.device = self.model.device
        self.info = describe_model(self.model, model_path)
        self.adapt_config = adapt_config or adapt_recipe_for(self.model)
        self._adapted: WeightDiffusion | CodeDiffusion | None = None
        self._key: tuple | None = None
        # where the last adaptation is kept between runs (a studio session's folder)
        self.adapted_file = Path(adapted_file) if adapted_file is not None else None

    @property
    def adapted(self) -> WeightDiffusion | CodeDiffusion | None:
        """The model adapted to the current shots, or None before the first adaptation."""
        return self._adapted

    @staticmethod
    def _shots_key(paths: list[str | os.PathLike]) -> tuple:
        return tuple((str(p), Path(p).stat().st_mtime_ns if Path(p).exists() else 0) for p in paths)

    def is_adapted_to(self, shot_paths: list[str | os.PathLike]) -> bool:
        return self._adapted is not None and self._key == self._shots_key(shot_paths)

    def forget_adaptation(self) -> None:
        """Drop the in-memory adaptation (another set of shots, another session)."""
        self._adapted, self._key = None, None

    def _stored_key(self, paths: list[str | os.PathLike]) -> str:
        """What an adaptation kept on disk was made from: the model file and each shot file's
        name and size (names, not folders, so a copied session keeps it)."""
        shots = [(Path(p).name, Path(p).stat().st_size if Path(p).exists() else 0) for p in paths]
        return json.dumps({"model": self.model_path.name, "model_size": self.model_path.stat().st_size,
                           "shots": shots, "recipe": repr(self.adapt_config)})

    def adapt(self, shot_paths: list[str | os.PathLike]) -> ProgressGen[bool]:
        """Adapt to ``shot_paths`` unless already adapted to them (in memory, or in
        ``adapted_file``, kept there by a previous adaptation); True when it adapted. A new
        adaptation is written to ``adapted_file``."""
        key = self._shots_key(shot_paths)
        if self._adapted is not None and self._key == key:
            return False
        stored = self._stored_key(shot_paths)
        kept = self._kept_adaptation(stored)
        if kept is not None:
            self._adapted, self._key = kept, key
            return False
        with gpu_errors(self.device):
            self._adapted = yield from adapt_to_files(self.model, shot_paths, self.adapt_config)
        self._key = key
        if self.adapted_file is not None:
            self._adapted.meta = dict(self._adapted.meta, studio_key=stored)
            save_generator(self.adapted_file, self._adapted)
        return True

    def _kept_adaptation(self, stored: str):
        if self.adapted_file is None or not self.adapted_file.is_file():
            return None
        try:
            kept = load_generator(self.adapted_file, str(self.device))
        except EquigenError as e:
            log.warning("ignoring the kept adaptation %s: %s", self.adapted_file, e)
            return None
        return kept if kept.meta.get("studio_key") == stored else None

    def generate(self, shot_paths: list[str | os.PathLike], config: GenerateConfig,
                 thumbnail_resolution: int = 64) -> ProgressGen[list[Preview]]:
        """Adapt to ``shot_paths`` unless already adapted to them, then sample ``config.n`` INRs.

        Returns previews named ``generated-s<seed>-<i>`` (2D: their image; 3D: a coarse mesh for
        the thumbnail, the network evaluated on the model's device; export re-extracts at full
        resolution); each is also yielded as it is decoded (stage ``"decode"``, the preview as
        ``payload``). Cancelling keeps the last finished adaptation.
        """
        yield from self.adapt(shot_paths)
        meta = generation_meta(self.model, self.model_path.name, config, shot_paths)
        previews = []
        with gpu_errors(self.device):
            params = yield from generate_params(self._adapted, config)
            for i in range(config.n):
                inr = INR.from_batch(self.model.spec, params, i, dict(meta, index=i))
                previews.append(preview(f"generated-s{config.seed}-{i:03d}.safetensors", inr,
                                        mesh_resolution=thumbnail_resolution, device=self.device))
                yield Progress("decode", i + 1, config.n, f"decoded {i + 1} of {config.n}",
                               payload=previews[-1])
        return previews
