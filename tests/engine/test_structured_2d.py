"""The structured weight space for images: a shared SIREN, a code per glyph, the 2D generator."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from engine.errors import InputError
from engine.functional import forward, image_grid
from engine.progress import drive
from engine.spec import MNIST_SIREN
from engine.weightspace.structured import (
    BaseConfig, CodeFitConfig, SharedBase, code_quality, fit_together, train_base,
)


def _shapes(n: int, kind: str, seed: int = 0) -> np.ndarray:
    """``n`` 28×28 frames in [0, 1]: filled squares or rings of varied size and place."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:28, 0:28]
    out = []
    for _ in range(n):
        cx, cy, r = rng.uniform(11, 17), rng.uniform(11, 17), rng.uniform(5, 9)
        if kind == "square":
            f = (np.abs(xx - cx) < r) & (np.abs(yy - cy) < r)
        else:
            d = np.hypot(xx - cx, yy - cy)
            f = (d < r) & (d > r - 3)
        out.append(f.astype(np.float32))
    return np.stack(out)


def test_a_siren_code_is_a_complete_mnist_inr_and_comes_back_from_it():
    base = SharedBase(MNIST_SIREN, rank=4, generator=torch.Generator().manual_seed(0))
    codes = torch.randn(3, base.code_dim, generator=torch.Generator().manual_seed(1)) * 0.1
    params = base.full_params(codes)
    assert {k: tuple(v.shape[1:]) for k, v in params.items()} == dict(MNIST_SIREN.param_shapes())
    grid = image_grid(28)
    # the spec's forward (sine at w0, the output offset) is the base's own
    assert torch.allclose(forward(MNIST_SIREN, params, grid)[..., 0], base.outputs(codes, grid), atol=1e-4)
    assert torch.allclose(base.codes_of(params), codes, atol=1e-5)
    # hidden biases 32 + 32, readout 32 + 1, rank-4 factors of the two hidden layers (4·2 + 4·32)
    assert base.code_dim == 97 + 4 * (2 + 32)


def test_images_train_a_base_and_new_images_fit_by_their_code_alone():
    frames = torch.from_numpy(np.concatenate([_shapes(6, "square"), _shapes(6, "ring", 1)])).reshape(12, -1)
    grid = image_grid(28).expand(12, -1, -1)
    base, codes, summary = drive(train_base(MNIST_SIREN, grid, frames, BaseConfig(
        rank=4, steps=300, shapes_per_step=12, points_per_shape=256, lr=1e-2, code_lr=1e-2, warmup=20)))
    quality, metric = code_quality(base, codes, grid, frames)
    assert metric == "psnr_db" and float(quality.mean()) > 18
    new = torch.from_numpy(_shapes(2, "ring", 7)).reshape(2, -1)
    z = drive(fit_together(base, grid[:2], new, CodeFitConfig(steps=400, points_per_shape=784)))
    fitted, _ = code_quality(base, z, grid[:2], new)
    unfitted, _ = code_quality(base, torch.zeros_like(z), grid[:2], new)
    assert fitted.min() > unfitted.max() and fitted.min() > 15


def _image_folder(root, classes):
    for c, kind, seed in classes:
        (root / c).mkdir(parents=True)
        for i, f in enumerate(_shapes(4, kind, seed)):
            Image.fromarray((f * 255).astype(np.uint8)).save(root / c / f"{i}.png")


def test_tiny_structured_image_corpus_to_generated_images_through_the_cli(tmp_path, capsys):
    """The 2D design that ships on a tiny corpus: build → pretrain → train → adapt on images → generate."""
    from engine.cli import main
    from engine.data.build import BuildConfig
    from engine.data.dataset import INRDataset
    from engine.diffusion.code_model import load_code_model
    from engine.diffusion.code_shots import base_codes, load_code_shots
    from engine.encoder.model import EncoderConfig
    from engine.encoder.pretrain import PretrainConfig, pretrain
    from engine.inr_io import INR, load_inr, save_inr
    from engine.weightspace.corpus import StructuredRecipe, build_structured_corpus, load_structured

    images = tmp_path / "images"
    _image_folder(images, [("square", "square", 0), ("ring", "ring", 1), ("dot", "square", 2)])
    corpus = tmp_path / "corpus"
    recipe = StructuredRecipe(base=BaseConfig(rank=4, steps=300, shapes_per_step=8, points_per_shape=256, lr=1e-2,
                                              code_lr=1e-2, warmup=10),
                              fit=CodeFitConfig(steps=60, points_per_shape=784))
    config = BuildConfig(kind="images", root=str(images), target_classes=("dot",), init_mode="structured")
    summary = drive(build_structured_corpus(config, corpus, recipe))
    assert summary["status"] == "complete" and summary["num_inrs"] == 12
    rows = INRDataset(corpus, split="all").rows
    assert {r["metric"] for r in rows} == {"psnr_db"} and all(np.isfinite(r["quality"]) for r in rows)
    base, codes, source_rows = load_structured(corpus)
    assert codes.shape == (8, base.code_dim) and base.spec == MNIST_SIREN

    enc = tmp_path / "enc.safetensors"
    drive(pretrain(corpus, enc, PretrainConfig(epochs=1, batch_size=4, encoder=EncoderConfig(
        width=4, depth=2, feature_dim=16, proj_dim=8, probe_dim=16))))
    model = tmp_path / "model.safetensors"
    assert main(["train", "--data", str(corpus), "--encoder", str(enc), "--out", str(model), "--steps", "8",
                 "--batch-size", "4", "--width", "32", "--depth", "1", "--json"]) == 0
    capsys.readouterr()
    code_model = load_code_model(model)
    # a shot image is fitted into the base; an INR file the base made comes back exactly
    shot = images / "dot" / "0.png"
    _, target_codes, _ = load_structured(corpus, split="target")
    made = base.full_params(target_codes[:1])
    save_inr(tmp_path / "held.safetensors", INR(MNIST_SIREN, {k: v[0] for k, v in made.items()}))
    names, shot_codes, quality = drive(load_code_shots(code_model, [shot, tmp_path / "held.safetensors"],
                                                       fit=CodeFitConfig(steps=300, points_per_shape=784, lr=1e-2)))
    assert names == ["0.png", "held.safetensors"] and shot_codes.shape == (2, base.code_dim)
    assert quality[0] > 12 and np.isnan(quality[1])
    assert torch.allclose(shot_codes[1], target_codes[0], atol=1e-4)
    with pytest.raises(InputError, match="a mesh, but this model makes images"):
        (tmp_path / "m.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
        drive(load_code_shots(code_model, [tmp_path / "m.obj"]))
    adapted = tmp_path / "adapted.safetensors"
    assert main(["adapt", "--model", str(model), str(shot), str(images / "dot" / "1.png"), "--out", str(adapted),
                 "--steps", "3", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["steps"] == 3
    out = tmp_path / "gen"
    assert main(["generate", "--model", str(adapted), "-n", "3", "--steps", "4", "--out", str(out), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["n"] == 3 and all(s["path"].endswith(".png") for s in r["samples"])
    assert all(np.asarray(Image.open(s["path"])).std() > 0 for s in r["samples"])
    assert main(["generate", "--model", str(adapted), "-n", "2", "--steps", "4", "--format", "safetensors",
                 "--out", str(tmp_path / "inrs"), "--json"]) == 0
    files = [s["path"] for s in json.loads(capsys.readouterr().out)["samples"]]
    inr = load_inr(files[0])
    assert inr.spec == MNIST_SIREN and base_codes(load_code_model(adapted).base, inr) is not None


def test_the_session_adapts_again_when_a_shot_file_changes_and_keeps_it_otherwise(structured2d, tmp_path):
    import os
    import shutil

    from engine.diffusion.code_train import CodeAdaptConfig
    from engine.diffusion.session import GenerationSession

    shots = []
    for p in structured2d["shots"][:3]:
        shots.append(tmp_path / p.name)
        shutil.copy(p, shots[-1])
    kept = tmp_path / "adapted.safetensors"
    session = GenerationSession(structured2d["model"], adapt_config=CodeAdaptConfig(steps=2), adapted_file=kept)
    assert drive(session.adapt(shots)) is True and session.is_adapted_to(shots) and kept.exists()
    assert drive(session.adapt(shots)) is False  # same files: no second adaptation
    first = session.adapted.shots.codes.clone()
    # the artist edits a shot in place: another picture under the same name
    Image.fromarray(np.full((28, 28), 200, np.uint8)).save(shots[1])
    stat = shots[1].stat()
    os.utime(shots[1], ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert not session.is_adapted_to(shots)
    assert drive(session.adapt(shots)) is True
    assert not torch.allclose(session.adapted.shots.codes[1], first[1])
    # a new session on the same folder reuses the kept adaptation for unchanged files
    again = GenerationSession(structured2d["model"], adapt_config=CodeAdaptConfig(steps=2), adapted_file=kept)
    assert drive(again.adapt(shots)) is False
