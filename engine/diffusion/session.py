"""What the desktop app drives: one model, its last adaptation, and generation on demand.

Adapting is the slow part (seconds to a minute), sampling the fast one (about a second), so the
session keeps the adapted model for the current shots and only re-adapts when the shots (or their
files) change: moving the diversity slider and pressing Generate again samples straight away.
Used from one worker thread at a time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from engine.diffusion.adapt import AdaptConfig
from engine.diffusion.code_model import CodeDiffusion
from engine.diffusion.code_train import CodeAdaptConfig
from engine.diffusion.generate import GenerateConfig
from engine.diffusion.model_file import WeightDiffusion
from engine.diffusion.pipeline import adapt_recipe_for, adapt_to_files, generate_params, load_generator, provenance
from engine.inr_io import INR
from engine.progress import Progress, ProgressGen
from engine.session import Preview, preview


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
        "structured 3D space" if isinstance(model, CodeDiffusion) else "raw weights",
        f"{steps:,} training steps" if steps else "",
        f"{shapes:,} source shapes" if shapes else "",
        f"corpus {model.meta['corpus']}" if model.meta.get("corpus") else "") if x)
    return ModelInfo(str(path), model.method, model.spec.name, "2d" if model.spec.in_dim == 2 else "3d",
                     tuple(classes.get("target", ())), tuple(classes.get("source", ())), recipe)


class GenerationSession:
    """A loaded model plus the cached adaptation to the current shots. Raw-weight models
    (``model_file.py``) and structured 3D models (``code_model.py``) alike."""

    def __init__(self, model_path: str | os.PathLike, adapt_config: AdaptConfig | CodeAdaptConfig | None = None):
        self.model_path = Path(model_path)
        self.model = load_generator(model_path)
        self.structured = isinstance(self.model, CodeDiffusion)
        self.info = describe_model(self.model, model_path)
        self.adapt_config = adapt_config or adapt_recipe_for(self.model)
        self._adapted: WeightDiffusion | CodeDiffusion | None = None
        self._key: tuple | None = None

    @staticmethod
    def _shots_key(paths: list[str | os.PathLike]) -> tuple:
        return tuple((str(p), Path(p).stat().st_mtime_ns if Path(p).exists() else 0) for p in paths)

    def is_adapted_to(self, shot_paths: list[str | os.PathLike]) -> bool:
        return self._adapted is not None and self._key == self._shots_key(shot_paths)

    def adapt(self, shot_paths: list[str | os.PathLike]) -> ProgressGen[bool]:
        """Adapt to ``shot_paths`` unless already adapted to them; True when it adapted."""
        key = self._shots_key(shot_paths)
        if self._adapted is not None and self._key == key:
            return False
        self._adapted = yield from adapt_to_files(self.model, shot_paths, self.adapt_config)
        self._key = key
        return True

    def generate(self, shot_paths: list[str | os.PathLike], config: GenerateConfig,
                 thumbnail_resolution: int = 64) -> ProgressGen[list[Preview]]:
        """Adapt to ``shot_paths`` unless already adapted to them, then sample ``config.n`` INRs.

        Returns previews named ``generated-s<seed>-<i>`` (2D: their image; 3D: a coarse mesh for
        the thumbnail; export re-extracts at full resolution); each is also yielded as it is
        decoded (stage ``"decode"``, the preview as ``payload``). Cancelling keeps the last
        finished adaptation.
        """
        yield from self.adapt(shot_paths)
        meta = {"generated_by": config.method, "model": self.model_path.name, "seed": config.seed,
                "diversity": config.diversity, "shots": [Path(p).name for p in shot_paths]}
        meta |= provenance(self.model)
        params = yield from generate_params(self._adapted, config)
        previews = []
        for i in range(config.n):
            inr = INR.from_batch(self.model.spec, params, i, dict(meta, index=i))
            previews.append(preview(f"generated-s{config.seed}-{i:03d}.safetensors", inr,
                                    mesh_resolution=thumbnail_resolution))
            yield Progress("decode", i + 1, config.n, f"decoded {i + 1} of {config.n}", payload=previews[-1])
        return previews
