"""Broken images, meshes, arguments and output places: one clear message before any work, no
silent wrong output, nothing overwritten. Every fixture is made here."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import trimesh
from PIL import Image

from engine.atomic import remove_stale_temporaries
from engine.cli import main
from engine.diffusion.outputs import write_samples
from engine.errors import InputError
from engine.fit.images import ImageFitConfig, load_gray
from engine.fit.meshes import load_mesh
from engine.functional import init_from_seed
from engine.inr_io import INR, load_inr, save_inr
from engine.session import fit_files
from engine.spec import HD_OCCUPANCY, MNIST_SIREN
from engine.progress import drive


def _run(argv, capsys):
    code = main(argv)
    err = capsys.readouterr().err
    return code, err


# -- images --------------------------------------------------------------------------------------

def test_an_image_of_too_many_pixels_is_refused_before_decoding(tmp_path):
    path = tmp_path / "huge.png"
    Image.new("L", (4200, 4200)).save(path)  # 17.6 megapixels, a few kB on disk
    with pytest.raises(InputError, match="huge.png: the image is 4200 × 4200 pixels"):
        load_gray(path)


def test_a_large_jpeg_is_decoded_at_a_smaller_scale(tmp_path):
    path = tmp_path / "photo.jpg"
    a = np.zeros((4000, 5000, 3), np.uint8)
    a[1000:3000, 1500:3500] = 255
    Image.fromarray(a).save(path, quality=80)
    gray = load_gray(path)
    assert max(gray.shape) <= 1024 and 0.9 < gray.max() <= 1.0


def test_float_images_in_0_1_keep_their_values_and_nan_ones_are_refused(tmp_path):
    yy, xx = np.mgrid[:64, :64]
    disk = ((yy - 32) ** 2 + (xx - 32) ** 2 < 400).astype(np.float32)
    path = tmp_path / "disk.tif"
    Image.fromarray(disk, mode="F").save(path)
    assert load_gray(path).max() == pytest.approx(1.0)
    reports = drive(fit_files([path], tmp_path / "out", image_config=ImageFitConfig(max_steps=300)))
    assert load_inr(reports[0].output).meta["psnr_db"] > 20  # not a blank INR
    disk[3, 3] = np.nan
    Image.fromarray(disk, mode="F").save(tmp_path / "nan.tif")
    with pytest.raises(InputError, match="nan.tif: the image holds NaN"):
        load_gray(tmp_path / "nan.tif")


# -- meshes --------------------------------------------------------------------------------------

def test_nan_vertices_name_the_file(tmp_path):
    mesh = trimesh.creation.box()
    mesh.vertices[0, 0] = np.nan
    path = tmp_path / "nan.obj"
    path.write_text("".join(f"v {x} {y} {z}\n" for x, y, z in mesh.vertices)
                    + "".join(f"f {a + 1} {b + 1} {c + 1}\n" for a, b, c in mesh.faces))
    with pytest.raises(InputError, match="nan.obj: the mesh has NaN"):
        load_mesh(path)


def test_a_flat_mesh_is_refused_instead_of_scoring_iou_1(tmp_path):
    path = tmp_path / "sheet.obj"
    path.write_text("v -1 -1 0\nv 1 -1 0\nv 1 1 0\nv -1 1 0\nf 1 2 3\nf 1 3 4\n")
    with pytest.raises(InputError, match="sheet.obj: the mesh encloses no volume"):
        drive(fit_files([path], tmp_path / "out"))
    assert not list((tmp_path / "out").glob("*.safetensors"))


# -- outputs -------------------------------------------------------------------------------------

def _glyph(folder, name="a.png", value=255):
    folder.mkdir(parents=True, exist_ok=True)
    a = np.zeros((28, 28), np.uint8)
    a[6:22, 10:18] = value
    Image.fromarray(a).save(folder / name)
    return folder / name


def test_fitting_never_replaces_a_file_and_records_the_source(tmp_path):
    cfg = ImageFitConfig(max_steps=20)
    first = _glyph(tmp_path / "one")
    second = _glyph(tmp_path / "two", value=128)
    out = tmp_path / "out"
    a = drive(fit_files([first], out, image_config=cfg))[0]
    b = drive(fit_files([second], out, image_config=cfg))[0]
    c = drive(fit_files([first, first], out, image_config=cfg))
    names = sorted(p.name for p in out.iterdir())
    assert names == ["a-2.safetensors", "a-3.safetensors", "a-4.safetensors", "a.safetensors"]
    assert {a.output, b.output, c[0].output, c[1].output} == {str(out / n) for n in names}
    assert load_inr(a.output).meta["source_path"] == str(first.resolve())
    assert load_inr(b.output).meta["source_sha256"] != load_inr(a.output).meta["source_sha256"]


def test_generated_samples_number_on_instead_of_replacing(tmp_path):
    params = init_from_seed(MNIST_SIREN, 0)
    params = {k: v.expand(3, *v.shape[1:]).clone() for k, v in params.items()}
    metas = [{"index": i} for i in range(3)]
    drive(write_samples(MNIST_SIREN, params, tmp_path, "safetensors", metas))
    drive(write_samples(MNIST_SIREN, params, tmp_path, "png", metas))
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "sample-000.safetensors", "sample-001.safetensors", "sample-002.safetensors",
        "sample-003.png", "sample-004.png", "sample-005.png"]
    bad = {k: v.clone() for k, v in params.items()}
    bad["seq.0.weight"][1, 0, 0] = float("nan")
    with pytest.raises(Exception, match="NaN or infinite"):
        drive(write_samples(MNIST_SIREN, bad, tmp_path / "nan", "png", metas))
    assert not list((tmp_path / "nan").iterdir())


def test_files_get_the_users_mode_not_0600(tmp_path):
    path = save_inr(tmp_path / "m.safetensors", INR.from_batch(MNIST_SIREN, init_from_seed(MNIST_SIREN, 0), 0))
    umask = os.umask(0o022)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_temporaries_of_killed_writers_are_cleaned(tmp_path):
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = int(done.stdout)
    stale = tmp_path / f".a.glb.tmp-{dead}-x1y2.glb"
    mine = tmp_path / f".b.glb.tmp-{os.getpid()}-x1y2.glb"
    old_library, new_library = tmp_path / ".tmpAb12Cd", tmp_path / ".tmpXy34Zw"
    for p in (stale, mine, old_library, new_library):
        p.write_bytes(b"half")
    os.utime(old_library, (time.time() - 3600, time.time() - 3600))
    assert sorted(remove_stale_temporaries(tmp_path)) == sorted([stale, old_library])
    assert mine.exists() and new_library.exists()


def test_outputs_are_checked_before_the_work(tmp_path, capsys):
    inr = save_inr(tmp_path / "g.safetensors", INR.from_batch(MNIST_SIREN, init_from_seed(MNIST_SIREN, 0), 0))
    a_file = tmp_path / "taken.txt"
    a_file.write_text("mine")
    code, err = _run(["generate", "--model", "resources/models/glyphs-2d.safetensors", "--out", str(a_file)], capsys)
    assert code == 2 and "taken.txt: is a file" in err and err.count("\n") == 1
    code, err = _run(["render", str(inr), "--out", str(tmp_path / "r.png")], capsys)
    assert code == 0
    code, err = _run(["render", str(inr), "--out", str(tmp_path / "r.png")], capsys)
    assert code == 2 and "r.png: exists; pass --overwrite" in err
    assert _run(["render", str(inr), "--out", str(tmp_path / "r.png"), "--overwrite"], capsys)[0] == 0
    code, err = _run(["fit", str(_glyph(tmp_path / "in")), "--out", str(a_file)], capsys)
    assert code == 2 and "is a file" in err and a_file.read_text() == "mine"


@pytest.mark.parametrize("argv, words", [
    (["fit", "X", "--out", "o", "--max-steps", "-5"], "fitting steps must be at least 1"),
    (["fit", "X", "--out", "o", "--init-seed", str(2**64)], "seed must be a whole number"),
    (["render", "G", "--out", "r.png", "--size", "0"], "image size in pixels"),
    (["render", "G", "--out", "r.png", "--size", "100000"], "image size in pixels"),
    (["mesh", "G3", "--out", "m.obj", "--resolution", "5000"], "mesh resolution"),
    (["generate", "--model", "M", "--out", "o", "--seed", str(2**70)], "seed must be a whole number"),
    (["generate", "--model", "M", "--out", "o", "--guidance", "nan"], "guidance"),
    (["generate", "--model", "M", "--out", "o", "-n", "-3"], "number of samples"),
    (["--threads", "-1", "info", "G"], "--threads must be at least 1"),
])
def test_absurd_arguments_end_in_one_line(tmp_path, capsys, argv, words):
    inr = save_inr(tmp_path / "g.safetensors", INR.from_batch(MNIST_SIREN, init_from_seed(MNIST_SIREN, 0), 0))
    shape = save_inr(tmp_path / "s.safetensors", INR.from_batch(HD_OCCUPANCY, init_from_seed(HD_OCCUPANCY, 0), 0))
    image = _glyph(tmp_path / "in")
    swap = {"X": str(image), "G": str(inr), "G3": str(shape), "M": "resources/models/glyphs-2d.safetensors", "o": str(tmp_path / "o"),
            "r.png": str(tmp_path / "r.png"), "m.obj": str(tmp_path / "m.obj")}
    code, err = _run([swap.get(a, a) for a in argv], capsys)
    assert code == 2 and words in err and err.count("\n") == 1, err
    assert not (tmp_path / "o").exists() and not (tmp_path / "r.png").exists()


def test_torch_warnings_do_not_come_before_a_clean_message(tmp_path, capsys):
    bad = tmp_path / "noise.pth"
    bad.write_bytes(os.urandom(3000))
    code, err = _run(["info", str(bad)], capsys)
    assert code == 2 and err.startswith("equigen: error:") and err.count("\n") == 1
    assert torch.__version__  # the suite runs the CPU build
