"""``equigen recipe`` on a tiny structured recipe, and ``bench quality`` on what it made."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from safetensors import safe_open

from engine.cli import main
from engine.data.build import BuildConfig
from engine.diffusion.code_denoiser import CodeDenoiserConfig
from engine.diffusion.code_model import load_code_model
from engine.diffusion.code_train import CodeTrainConfig
from engine.diffusion.process import ProcessConfig
from engine.encoder.model import EncoderConfig
from engine.encoder.pretrain import PretrainConfig
from engine.fit.meshes import MeshFitConfig
from engine.progress import drive
from engine.recipes import RECIPES, ModelRecipe, run_recipe
from engine.weightspace.corpus import StructuredRecipe
from engine.weightspace.structured import BaseConfig, CodeFitConfig

TINY = ModelRecipe(
    name="tiny-3d",
    corpus=BuildConfig(kind="shapes3d", families=("chair", "mug"), count=6, target_classes=("mug",),
                       init_mode="structured"),
    structured=StructuredRecipe(
        samples=MeshFitConfig(surface_points=2000, fine_points=500, uniform_points=1500, eval_points=1000),
        base=BaseConfig(rank=4, steps=60, shapes_per_step=4, points_per_shape=256, warmup=10),
        fit=CodeFitConfig(steps=30, points_per_shape=256)),
    pretrain=PretrainConfig(epochs=1, batch_size=2, encoder=EncoderConfig(
        width=4, depth=2, feature_dim=16, proj_dim=8, probe_lattice=4, probe_dim=16)),
    train=CodeTrainConfig(steps=6, batch_size=4, denoiser=CodeDenoiserConfig(width=32, depth=1),
                          process=ProcessConfig(prior_rank=3)),
    example_class="mug", example_count=3,
)


@pytest.fixture(scope="module")
def tiny_recipe(tmp_path_factory):
    out = tmp_path_factory.mktemp("recipe")
    return out, drive(run_recipe(TINY, out))


def test_a_recipe_makes_a_packed_self_contained_model_and_resumes_without_redoing_work(tiny_recipe):
    out, result = tiny_recipe
    packed = out / "tiny-3d.safetensors"
    assert result["model"] == str(packed) and set(result["seconds"]) == {"corpus", "encoder", "generator"}
    model = load_code_model(packed)
    assert model.method == "equigen" and model.encoder is not None and model.meta["recipe"] == "tiny-3d"
    with safe_open(str(packed), framework="pt") as f:
        kinds = {k.split(".")[0]: str(f.get_slice(k).get_dtype()) for k in f.keys()}
    assert kinds["denoiser"] == "F16" and kinds["encoder"] == "F16" and kinds["base"] == "F32"
    # everything is on disk: running it again only packs again
    trained = (out / "generator.safetensors").stat().st_mtime_ns
    again = drive(run_recipe(TINY, out))
    assert (out / "generator.safetensors").stat().st_mtime_ns == trained
    assert again["model"] == result["model"]
    # the example pack: the held-out mugs as meshes and as INR files the model reads as its own codes
    pack = sorted((out / "examples").glob("*.safetensors"))
    assert len(pack) == 3 and all(p.with_suffix(".obj").exists() for p in pack)
    from engine.diffusion.code_shots import base_codes
    from engine.inr_io import load_inr

    assert all(base_codes(model.base, load_inr(p)) is not None for p in pack)


def test_the_shipped_recipe_is_named_and_an_unknown_one_is_refused(tmp_path, capsys):
    assert RECIPES["shapes-3d"].corpus.init_mode == "structured"
    assert main(["recipe", "no-such-model", "--out", str(tmp_path)]) != 0
    assert "unknown recipe" in capsys.readouterr().err


def test_bench_quality_measures_a_structured_model_and_its_baselines(tiny_recipe, tmp_path, capsys):
    out, _ = tiny_recipe
    hd = out / "hd.safetensors"
    from engine.diffusion.code_train import train_codes
    from engine.weightspace.corpus import load_structured

    base, codes, _ = load_structured(out / "corpus")
    drive(train_codes(base, codes, hd, None, replace(TINY.train, method="hyperdiffusion")))
    report = tmp_path / "report"
    assert main(["bench", "quality", "--model", str(out / "tiny-3d.safetensors"), "--hyperdiffusion-model", str(hd),
                 "--data", str(out / "corpus"), "--out", str(report), "--shots", "2", "--repeats", "1",
                 "--samples", "2", "--diversities", "0,1", "--steps", "2", "--adapt-steps", "1",
                 "--resolution", "32", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    rows = {(e["method"], e["diversity"]) for e in result["summary"]}
    assert {("equigen", 0.0), ("equigen", 1.0), ("equigen-no-perturb", None), ("hyperdiffusion", 0.0),
            ("shots-noise", 1.0), ("real (held-out)", None)} <= rows


def test_the_recipe_command_names_every_bundled_recipe(capsys):
    with pytest.raises(SystemExit):
        main(["recipe", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert all(name in help_text for name in RECIPES)
