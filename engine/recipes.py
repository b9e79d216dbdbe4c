"""Shipped models, rebuilt from nothing: ``equigen recipe NAME --out DIR``.

A recipe is the data of every stage that makes a bundled model: the corpus (built from the
project's procedural generators, nothing downloaded), the encoder's pre-training, the
generator's training, and how the file is packed. Each stage resumes where it stopped (the
corpus build, the pre-training and the training all checkpoint), so running the same command
again after an interruption finishes the job.

    DIR/corpus/             the structured corpus (samples, shared network, codes, INRs)
    DIR/encoder.safetensors E_φ over complete INRs
    DIR/generator.safetensors   the full-precision trained model
    DIR/NAME.safetensors    the packed model (float16 networks), what resources/models/ holds
    DIR/examples/           the example pack: 10 held-out shots as the user gives them and as INRs
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from engine.data.build import BuildConfig
from engine.data.store import read_manifest
from engine.diffusion.code_model import load_code_model, save_code_model
from engine.data.example_pack import write_example_pack
from engine.diffusion.code_train import CodeTrainConfig, train_codes
from engine.device import gpu_errors
from engine.device import resolve as resolve_device
from engine.domains import IMAGES, SHAPES
from engine.encoder.model import load_encoder
from engine.encoder.pretrain import PretrainConfig, pretrain
from engine.errors import InputError
from engine.progress import Progress, ProgressGen, relay
from engine.weightspace.corpus import StructuredRecipe, build_structured_corpus, load_structured


@dataclass(frozen=True)
class ModelRecipe:
    """Every setting that decides a bundled structured model (2D or 3D)."""

    name: str
    corpus: BuildConfig
    structured: StructuredRecipe
    pretrain: PretrainConfig
    train: CodeTrainConfig
    example_class: str  # the held-out class of the example pack
    example_count: int = 10


def _image_recipe(name: str, corpus: BuildConfig, example_class: str, steps: int | None = None,
                  pretrain_warmup: int = PretrainConfig.warmup) -> ModelRecipe:
    """A structured 2D model: the image recipe of the shared network and of the generator."""
    train = IMAGES.code_train
    return ModelRecipe(name=name, corpus=corpus, structured=IMAGES.structured,
                       pretrain=PretrainConfig(warmup=pretrain_warmup),
                       train=replace(train, steps=steps or train.steps), example_class=example_class)


RECIPES = {
    "shapes-3d": ModelRecipe(
        name="shapes-3d",
        corpus=BuildConfig(kind="shapes3d", count=170, init_mode="structured"),
        structured=replace(SHAPES.structured, workers=2, base=replace(SHAPES.structured.base, steps=15_000)),
        # the warm-up a tenth of the 504 steps (2,040 source shapes, 8 epochs of 32)
        pretrain=PretrainConfig(epochs=8, batch_size=32, warmup=50),
        train=SHAPES.code_train,
        example_class="mug",
    ),
    "glyphs-2d": _image_recipe("glyphs-2d", BuildConfig(kind="glyphs", per_class=300, init_mode="structured"),
                               example_class="9"),
    # Fashion-MNIST with bags and ankle boots held out; 6,000 steps, where the glyph study
    # found 24,000 to add nothing measurable
    "fashion-2d": _image_recipe("fashion-2d", BuildConfig(kind="fashion-mnist", per_class=600, init_mode="structured"),
                                example_class="bag", steps=6000, pretrain_warmup=22),  # 216 steps
}


def recipe_named(name: str) -> ModelRecipe:
    if name not in RECIPES:
        raise InputError(f"unknown recipe {name!r}; choose from {', '.join(RECIPES)}")
    return RECIPES[name]


def run_recipe(recipe: ModelRecipe, out: str | Path, device: str | torch.device = "cpu") -> ProgressGen[dict]:
    """Make ``recipe``'s model in ``out`` (resuming), computing on ``device`` (``engine.device``
    names); returns the stages' wall seconds and the packed file's path and size."""
    target = resolve_device(device)
    with gpu_errors(target):
        return (yield from _run_recipe(recipe, Path(out), target))


def _run_recipe(recipe: ModelRecipe, out: Path, device: torch.device) -> ProgressGen[dict]:
    out.mkdir(parents=True, exist_ok=True)
    corpus, encoder_path = out / "corpus", out / "encoder.safetensors"
    full, packed = out / "generator.safetensors", out / f"{recipe.name}.safetensors"
    seconds: dict[str, float] = {}

    t = time.perf_counter()
    yield from relay(build_structured_corpus(recipe.corpus, corpus, recipe.structured, device), "corpus")
    seconds["corpus"] = time.perf_counter() - t

    t = time.perf_counter()
    if not encoder_path.exists():
        yield from relay(pretrain(corpus, encoder_path, recipe.pretrain, device=device), "encoder")
    seconds["encoder"] = time.perf_counter() - t

    t = time.perf_counter()
    if not full.exists():
        base, codes, _ = load_structured(corpus)
        encoder, _ = load_encoder(encoder_path)
        manifest = read_manifest(corpus)
        meta = {"classes": {"source": manifest["source_classes"], "target": manifest["target_classes"]},
                "corpus": corpus.name, "corpus_kind": manifest["kind"], "encoder_file": encoder_path.name,
                "recipe": recipe.name}
        yield from relay(train_codes(base, codes, full, encoder, recipe.train, meta, data_id=str(corpus.resolve()),
                                     device=device), "generator")
    seconds["generator"] = time.perf_counter() - t

    model = load_code_model(full)
    if model.meta.get("train", {}).get("stopped_by_time_limit"):
        raise InputError(f"{full}: its training stopped early; run the recipe again to finish it")
    save_code_model(packed, model, half=True)
    write_example_pack(corpus, recipe.example_class, out / "examples", recipe.example_count)
    yield Progress("recipe", 1, 1, f"wrote {packed}")
    return {"recipe": recipe.name, "model": str(packed), "megabytes": round(packed.stat().st_size / 1e6, 2),
            "seconds": {k: round(v, 1) for k, v in seconds.items()}}
