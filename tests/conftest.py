"""Fixtures made by the tests themselves: real glyphs from installed fonts, Fashion-MNIST from
Debian's package, and meshes from trimesh primitives."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
torch.set_num_threads(min(2, torch.get_num_threads()))

FONT_DIRS = [Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/truetype/liberation")]


def pytest_collection_modifyitems(config, items):
    """Tests marked ``packaging`` (building and installing a wheel, minutes) run only when asked
    for: ``pytest -m packaging``."""
    if "packaging" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="on demand: pytest -m packaging")
    for item in items:
        if "packaging" in item.keywords:
            item.add_marker(skip)


def font_files() -> list[Path]:
    files = []
    for d in FONT_DIRS:
        files += sorted(d.glob("*.ttf"))
    return files


def render_glyph(font_path: Path, char: str, size: int = 28) -> np.ndarray:
    """MNIST-style glyph: white on black, fitted in a 20×20 box and centred in ``size × size``."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype(str(font_path), 64)
    canvas = Image.new("L", (128, 128), 0)
    ImageDraw.Draw(canvas).text((32, 16), char, fill=255, font=font)
    box = canvas.getbbox()
    glyph = canvas.crop(box)
    scale = 20 / max(glyph.size)
    glyph = glyph.resize((max(1, round(glyph.width * scale)), max(1, round(glyph.height * scale))),
                         Image.Resampling.LANCZOS)
    frame = Image.new("L", (size, size), 0)
    frame.paste(glyph, ((size - glyph.width) // 2, (size - glyph.height) // 2))
    return np.asarray(frame, dtype=np.float32) / 255.0


@pytest.fixture(scope="session")
def glyphs() -> np.ndarray:
    fonts = font_files()
    if not fonts:
        pytest.fail("no DejaVu/Liberation fonts installed: apt-get install fonts-dejavu-core fonts-liberation")
    chars = "0123456789AbQ"
    return np.stack([render_glyph(fonts[i % len(fonts)], c) for i, c in enumerate(chars)])


@pytest.fixture(scope="session")
def fashion() -> np.ndarray:
    from engine.data.idx import fashion_mnist

    images, _ = fashion_mnist("test")
    return images[:24].astype(np.float32) / 255.0


@pytest.fixture(scope="session")
def fitted_shape():
    """A fitted hd-occupancy INR of a ring-with-bar shape (IoU ≥ 0.95), made once per session."""
    import trimesh

    from engine.fit.meshes import fit_occupancy, normalise_mesh, sample_occupancy
    from engine.functional import init_from_seed
    from engine.inr_io import INR
    from engine.progress import drive
    from engine.spec import HD_OCCUPANCY

    ring = trimesh.creation.annulus(0.2, 0.4, 0.25)
    bar = trimesh.creation.box((0.15, 0.15, 0.9))
    shape = trimesh.boolean.union([ring, bar], engine="manifold")
    samples = [sample_occupancy(normalise_mesh(shape), seed=1)]
    out = drive(fit_occupancy(samples, init_from_seed(HD_OCCUPANCY, 0)))
    return INR.from_batch(HD_OCCUPANCY, out.params, 0, {"iou": float(out.quality[0])}), out


def bag_shots(folder: Path, count: int = 5) -> list[Path]:
    """Fashion-MNIST test bags (a held-out class of the tiny corpora) as PNG shots in ``folder``."""
    from PIL import Image

    from engine.data.idx import fashion_mnist

    images, labels = fashion_mnist("test")
    shots = []
    for i, j in enumerate(np.where(labels == 8)[0][:count]):
        shots.append(folder / f"bag{i}.png")
        Image.fromarray(images[j]).save(shots[-1])
    return shots


@pytest.fixture(scope="session")
def tiny2d(tmp_path_factory):
    """A tiny Fashion-MNIST corpus, encoder and EquiGen + HyperDiffusion models, made once."""
    import dataclasses

    from engine.data.build import BuildConfig, build_corpus
    from engine.diffusion.train import TrainConfig, train
    from engine.encoder.model import EncoderConfig
    from engine.encoder.pretrain import PretrainConfig, pretrain
    from engine.progress import drive

    root = tmp_path_factory.mktemp("gen2d")
    corpus = root / "corpus"
    drive(build_corpus(BuildConfig(kind="fashion-mnist", per_class=8, chunk_size=40), corpus))
    enc = root / "enc.safetensors"
    drive(pretrain(corpus, enc, PretrainConfig(epochs=1, batch_size=16, encoder=EncoderConfig(
        width=8, depth=2, feature_dim=32, proj_dim=16))))
    # the 2D domain's raw-weight denoiser (whole-tensor tokens, no skip), only smaller
    tiny_train = TrainConfig(steps=20, batch_size=16, checkpoint_every=10, reg_items=4,
                             denoiser={"width": 32, "depth": 2, "heads": 2})
    model = root / "model.safetensors"
    drive(train(corpus, model, enc, tiny_train))
    hd = root / "hd.safetensors"
    drive(train(corpus, hd, None, dataclasses.replace(tiny_train, method="hyperdiffusion")))
    shots = bag_shots(root)
    return {"corpus": corpus, "encoder": enc, "model": model, "hd": hd, "shots": shots, "root": root}


@pytest.fixture(scope="session")
def tiny2d_prior(tiny2d):
    """tiny2d's corpus with EquiGen + HyperDiffusion models whose denoiser has the skip and a
    Gaussian prior (the 3D raw-weight design, chosen explicitly: the 2D one has no prior)."""
    import dataclasses

    from engine.diffusion.train import TrainConfig, train
    from engine.progress import drive

    root = tiny2d["root"]
    config = TrainConfig(steps=20, batch_size=16, checkpoint_every=10, reg_items=4, denoiser={
        "width": 32, "depth": 2, "heads": 2, "max_token": None, "skip": True, "prior_rank": 16})
    model, hd = root / "prior-model.safetensors", root / "prior-hd.safetensors"
    drive(train(tiny2d["corpus"], model, tiny2d["encoder"], config))
    drive(train(tiny2d["corpus"], hd, None, dataclasses.replace(config, method="hyperdiffusion")))
    return dict(tiny2d, model=model, hd=hd)


@pytest.fixture(scope="session")
def structured2d(tmp_path_factory):
    """The 2D design that ships, tiny: a structured Fashion-MNIST corpus (a shared SIREN and a
    code per image), an encoder, and EquiGen + HyperDiffusion code models, made once."""
    import dataclasses

    from engine.data.build import BuildConfig
    from engine.diffusion.code_denoiser import CodeDenoiserConfig
    from engine.diffusion.code_train import train_codes
    from engine.domains import IMAGES
    from engine.encoder.model import EncoderConfig, load_encoder
    from engine.encoder.pretrain import PretrainConfig, pretrain
    from engine.progress import drive
    from engine.weightspace.corpus import build_structured_corpus, load_structured
    from engine.weightspace.structured import BaseConfig, CodeFitConfig

    root = tmp_path_factory.mktemp("structured2d")
    corpus = root / "corpus"
    recipe = dataclasses.replace(
        IMAGES.structured, base=BaseConfig(rank=4, steps=300, shapes_per_step=16, points_per_shape=256, lr=1e-2,
                                      code_lr=1e-2, warmup=10),
        fit=CodeFitConfig(steps=100, points_per_shape=784, lr=1e-2))
    drive(build_structured_corpus(BuildConfig(kind="fashion-mnist", per_class=6, init_mode="structured"), corpus,
                                  recipe))
    enc = root / "enc.safetensors"
    drive(pretrain(corpus, enc, PretrainConfig(epochs=1, batch_size=16, encoder=EncoderConfig(
        width=8, depth=2, feature_dim=32, proj_dim=16))))
    base, codes, _ = load_structured(corpus)
    tiny = dataclasses.replace(IMAGES.code_train, steps=20, batch_size=16, checkpoint_every=10,
                               denoiser=CodeDenoiserConfig(width=32, depth=1))
    model, hd = root / "model.safetensors", root / "hd.safetensors"
    drive(train_codes(base, codes, model, load_encoder(enc)[0], tiny))
    drive(train_codes(base, codes, hd, None, dataclasses.replace(tiny, method="hyperdiffusion")))
    shots = bag_shots(root)
    return {"corpus": corpus, "encoder": enc, "model": model, "hd": hd, "shots": shots, "root": root}
