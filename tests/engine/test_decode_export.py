"""Decoding INRs into images and meshes, and exporting them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from engine.decode import (
    decode_images, dense_occupancy_grid, extract_mesh, grid_to_mesh, mesh_or_none, occupancy_grid, render_image,
)
from engine.errors import EmptyFieldError, InputError
from engine.export import export_mesh, export_png
from engine.functional import init_from_seed
from engine.inr_io import INR
from engine.spec import HD_OCCUPANCY, MNIST_SIREN


def test_coarse_to_fine_equals_dense_and_evaluates_less(fitted_shape):
    inr, _ = fitted_shape
    fast, stats = occupancy_grid(inr.spec, inr.batched(), 96)
    dense = dense_occupancy_grid(inr.spec, inr.batched(), 96)
    assert np.array_equal(fast > 0, dense > 0)
    assert stats.fraction < 0.5
    a = grid_to_mesh(fast, inr.spec.domain)
    b = grid_to_mesh(dense, inr.spec.domain)
    assert len(a.vertices) == len(b.vertices)
    np.testing.assert_allclose(a.vertices, b.vertices, atol=1e-5)


def test_extracted_mesh_is_watertight_and_matches_the_source(fitted_shape):
    inr, _ = fitted_shape
    mesh = extract_mesh(inr, 64)
    assert mesh.is_watertight and mesh.volume > 0
    lo, hi = mesh.bounds
    assert np.all(lo > -0.5) and np.all(hi < 0.5)
    assert np.abs(mesh.vertices).max() == pytest.approx(0.475, abs=0.03)


def test_empty_and_full_fields_give_clear_errors():
    params = init_from_seed(HD_OCCUPANCY, 0)
    empty = INR.from_batch(HD_OCCUPANCY, params, 0)
    empty.params["layers.3.bias"].fill_(-1e3)
    with pytest.raises(EmptyFieldError, match="empty"):
        extract_mesh(empty, 32)
    full = INR.from_batch(HD_OCCUPANCY, params, 0)
    full.params["layers.3.bias"].fill_(1e3)
    with pytest.raises(EmptyFieldError, match="fills its whole domain"):
        extract_mesh(full, 32)
    # where many shapes are meshed, an empty one is recorded as nothing, never an error
    assert mesh_or_none(empty, 32) is None and mesh_or_none(full, 32) is None


def test_one_watertight_piece():
    from engine.decode import is_one_watertight_piece

    box = trimesh.creation.box((0.2, 0.2, 0.2))
    two = trimesh.util.concatenate([box, box.copy().apply_translation((0.5, 0, 0))])
    opened = box.copy()
    opened.update_faces(np.arange(len(box.faces)) != 0)  # one triangle gone: a hole
    assert is_one_watertight_piece(box) and not is_one_watertight_piece(two)
    assert not is_one_watertight_piece(opened) and not is_one_watertight_piece(None)


def test_wrong_dimension_is_refused():
    two_d = INR.from_batch(MNIST_SIREN, init_from_seed(MNIST_SIREN, 0), 0)
    with pytest.raises(InputError, match="2D INR"):
        extract_mesh(two_d)
    with pytest.raises(InputError):
        decode_images(HD_OCCUPANCY, init_from_seed(HD_OCCUPANCY, 0))


def test_image_decoding_at_any_resolution(fashion):
    from engine.fit.images import fit_images
    from engine.progress import drive

    out = drive(fit_images(fashion[:2], init_from_seed(MNIST_SIREN, 0)))
    native = decode_images(MNIST_SIREN, out.params)
    assert native.shape == (2, 28, 28)
    assert np.abs(native - fashion[:2]).mean() < 0.03
    assert decode_images(MNIST_SIREN, out.params, 112).shape == (2, 112, 112)
    inr = INR.from_batch(MNIST_SIREN, out.params, 0)
    for continuous, tolerance in ((False, 0.04), (True, 0.08)):
        img = render_image(inr, 280, continuous)
        assert img.shape == (280, 280) and img.dtype == np.uint8
        pooled = torch.nn.functional.avg_pool2d(torch.tensor(img, dtype=torch.float32)[None, None] / 255, 10)
        assert float((pooled[0, 0] - torch.tensor(fashion[0])).abs().mean()) < tolerance


@pytest.mark.parametrize("ext", ["obj", "ply", "stl", "glb"])
def test_exported_meshes_reload_with_the_same_vertex_count(tmp_path, ext, fitted_shape):
    mesh = extract_mesh(fitted_shape[0], 48)
    path = export_mesh(mesh, tmp_path / f"shape.{ext}")
    back = trimesh.load(path, force="mesh")
    assert len(back.vertices) == len(mesh.vertices)
    assert len(back.faces) == len(mesh.faces)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"shape.{ext}"]  # no .mtl, no temp file


def test_unknown_mesh_format_is_refused(tmp_path):
    with pytest.raises(InputError, match="unknown mesh format .xyz"):
        export_mesh(trimesh.creation.box(), tmp_path / "a.xyz")


def test_png_export(tmp_path):
    from PIL import Image

    export_png(np.linspace(0, 1, 64).reshape(8, 8), tmp_path / "a.png")
    a = np.asarray(Image.open(tmp_path / "a.png"))
    assert a.shape == (8, 8) and a[0, 0] == 0 and a[-1, -1] == 255


def test_offscreen_mesh_render_is_not_blank():
    from engine.render import MeshRenderer

    with MeshRenderer(96) as r:
        img = r.render(trimesh.creation.icosphere(2, radius=0.4))
    assert img.shape == (96, 96, 3)
    centre = img[40:56, 40:56].astype(float).mean()
    corner = img[:8, :8].astype(float).mean()
    assert centre > corner + 60  # a lit shape on a dark background
