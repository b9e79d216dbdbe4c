"""A new user's first 3D run: the bundled model and example pack, adapted, 16 meshes exported."""

from __future__ import annotations


import pytest
import trimesh

from engine.bundled import bundled_model, examples_dir
from engine.diffusion.code_model import CodeDiffusion
from engine.diffusion.generate import GenerateConfig
from engine.diffusion.session import GenerationSession
from engine.progress import drive
from engine.session import export_previews, open_files

MODEL_3D = bundled_model("shapes-3d")
PACK = examples_dir() / "mugs"


def test_the_example_pack_holds_ten_shots_as_meshes_and_as_inr_files():
    meshes, inrs = sorted(PACK.glob("*.obj")), sorted(PACK.glob("*.safetensors"))
    assert len(meshes) == 10 and len(inrs) == 10
    assert [p.stem for p in meshes] == [p.stem for p in inrs]
    mesh = trimesh.load(meshes[0], force="mesh")
    assert mesh.is_watertight and max(mesh.extents) <= 1.0 + 1e-6


@pytest.mark.slow
def test_first_run_bundled_model_and_pack_to_sixteen_watertight_exported_meshes(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "fresh-user-data"))
    assert sum(p.stat().st_size for p in MODEL_3D.parent.iterdir()) <= 40e6
    session = GenerationSession(MODEL_3D)
    assert isinstance(session.model, CodeDiffusion) and session.info.domain == "3d"
    shots = sorted(PACK.glob("*.safetensors"))
    opened = drive(open_files(shots, tmp_path / "fresh-user-data" / "fitted"))
    assert not opened.problems and len(opened.previews) == 10
    previews = drive(session.generate(shots, GenerateConfig(n=16, seed=0, diversity=0.5)))
    assert len(previews) == 16 and session.is_adapted_to(shots)
    written = drive(export_previews(previews, tmp_path / "export", ".obj"))
    assert len(written) == 16
    for path in written:
        again = trimesh.load(path, force="mesh")
        assert again.is_watertight, path.name
        assert len(again.faces) > 100


MODEL_2D = bundled_model("glyphs-2d")
PACK_2D = examples_dir() / "nines"


def test_the_2d_example_pack_holds_ten_held_out_nines_as_images_and_as_inr_files():
    from PIL import Image

    images, inrs = sorted(PACK_2D.glob("*.png")), sorted(PACK_2D.glob("*.safetensors"))
    assert len(images) == 10 and [p.stem for p in images] == [p.stem for p in inrs]
    assert Image.open(images[0]).size == (28, 28)
    model = GenerationSession(MODEL_2D).model
    assert "9" in model.meta["classes"]["target"] and "9" not in model.meta["classes"]["source"]


@pytest.mark.slow
def test_first_run_bundled_2d_model_and_pack_to_sixteen_exported_images(tmp_path):
    import numpy as np
    from PIL import Image

    session = GenerationSession(MODEL_2D)
    assert isinstance(session.model, CodeDiffusion) and session.info.domain == "2d"
    shots = sorted(PACK_2D.glob("*.png"))  # what an artist drops in: images, fitted into the base
    previews = drive(session.generate(shots, GenerateConfig(n=16, seed=0)))
    assert len(previews) == 16 and session.is_adapted_to(shots)
    for size in (28, 256):
        written = drive(export_previews(previews, tmp_path / f"png{size}", image_size=size))
        assert len(written) == 16
        pixels = np.stack([np.asarray(Image.open(p)) for p in written])
        assert pixels.shape[1:3] == (size, size)
        assert all(0 < im.mean() < 200 and im.std() > 10 for im in pixels)  # drawn, not blank or flat


def test_the_fashion_model_and_its_pack_of_held_out_bags():
    model = GenerationSession(bundled_model("fashion-2d")).model
    assert isinstance(model, CodeDiffusion) and set(model.meta["classes"]["target"]) == {"bag", "ankle_boot"}
    pack = examples_dir() / "bags"
    assert len(list(pack.glob("*.png"))) == 10 and len(list(pack.glob("*.safetensors"))) == 10
