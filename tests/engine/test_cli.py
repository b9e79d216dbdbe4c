"""The equigen CLI contract: command names, --json lines, one-line errors with exit ≠ 0."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import trimesh
from PIL import Image

from engine.cli import main

from .test_spec_and_forward import DWSNetsSiren


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def inputs(tmp_path, fashion):
    Image.fromarray((fashion[0] * 255).astype(np.uint8)).save(tmp_path / "shirt.png")
    Image.fromarray((fashion[1] * 255).astype(np.uint8)).convert("RGBA").resize((56, 84)).save(tmp_path / "tall.png")
    trimesh.creation.capsule(0.5, 0.25).export(tmp_path / "pill.ply")
    return tmp_path


def test_fit_info_render_mesh_round_trip(capsys, inputs):
    d = inputs
    code, out, err = _run(capsys, "fit", d / "shirt.png", d / "tall.png", d / "pill.ply", "--out", d / "inrs", "--json")
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["metric"] for r in rows] == ["psnr_db", "psnr_db", "iou"]
    assert rows[0]["quality"] >= 30 and rows[2]["quality"] >= 0.95
    assert all(r["seconds"] > 0 for r in rows)

    code, out, _ = _run(capsys, "info", d / "inrs" / "pill.safetensors", "--json")
    info = json.loads(out)
    assert code == 0 and info["spec"] == "hd-occupancy" and info["num_params"] == 36737
    assert info["meta"]["source"] == "pill.ply" and info["meta"]["init"] == "seed:0"

    code, _, err = _run(capsys, "render", d / "inrs" / "shirt.safetensors", "--out", d / "shirt_out.png", "--size", 64)
    assert code == 0, err
    assert Image.open(d / "shirt_out.png").size == (64, 64)
    code, _, err = _run(capsys, "render", d / "inrs" / "pill.safetensors", "--out", d / "pill.png", "--size", 64, "--resolution", 48)
    assert code == 0, err
    assert np.asarray(Image.open(d / "pill.png")).std() > 10

    code, out, _ = _run(capsys, "mesh", d / "inrs" / "pill.safetensors", "--out", d / "pill.obj", "--resolution", 48, "--json")
    row = json.loads(out)
    assert code == 0 and row["watertight"] and row["vertices"] > 100
    assert len(trimesh.load(d / "pill.obj", force="mesh").vertices) == row["vertices"]


def test_convert_dwsnets_pth(capsys, tmp_path):
    torch.save(DWSNetsSiren().state_dict(), tmp_path / "model_final.pth")
    code, out, err = _run(capsys, "convert", tmp_path / "model_final.pth", "--out", tmp_path / "m.safetensors", "--json")
    assert code == 0, err
    assert json.loads(out)["spec"] == "mnist-siren"
    code, out, _ = _run(capsys, "info", tmp_path / "m.safetensors")
    assert "mnist-siren" in out and "1,185" in out


@pytest.mark.parametrize("argv,needle", [
    (["info", "missing.safetensors"], "no such file"),
    (["fit", "notes.txt", "--out", "x"], "unsupported file type .txt"),
    (["fit", "--out", "x"], "required: INPUT"),
    (["mesh", "two_d.safetensors", "--out", "a.obj"], "2D INR has no mesh"),
    (["render", "two_d.safetensors", "--out", "a.jpg"], "must end in .png"),
    (["convert", "evil.pth", "--out", "a.safetensors"], "refused"),
    (["nonsense"], "invalid choice"),
])
def test_errors_are_one_line_with_nonzero_exit(capsys, tmp_path, monkeypatch, argv, needle):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("x")
    from engine.functional import init_from_seed
    from engine.inr_io import INR, save_inr
    from engine.spec import MNIST_SIREN

    save_inr("two_d.safetensors", INR.from_batch(MNIST_SIREN, init_from_seed(MNIST_SIREN, 0), 0))
    torch.save({"x": __import__("os").system}, "evil.pth")
    try:
        code = main(argv)
    except SystemExit as e:  # argparse errors
        code = e.code
    out, err = capsys.readouterr()
    assert code != 0
    assert len(err.strip().splitlines()) == 1, err
    assert needle in err
    assert "Traceback" not in err


def test_fit_from_an_init_file_records_it_and_checks_its_spec(capsys, inputs):
    d = inputs
    from engine.functional import init_from_seed
    from engine.inr_io import INR, load_inr, save_inr
    from engine.spec import HD_OCCUPANCY, MNIST_SIREN

    save_inr(d / "start.safetensors", INR.from_batch(MNIST_SIREN, init_from_seed(MNIST_SIREN, 42), 0))
    code, out, err = _run(capsys, "fit", d / "shirt.png", "--out", d / "o", "--init", d / "start.safetensors", "--json")
    assert code == 0, err
    assert load_inr(d / "o" / "shirt.safetensors").meta["init"] == "file:start.safetensors"
    save_inr(d / "start3d.safetensors", INR.from_batch(HD_OCCUPANCY, init_from_seed(HD_OCCUPANCY, 0), 0))
    code, _, err = _run(capsys, "fit", d / "shirt.png", "--out", d / "o2", "--init", d / "start3d.safetensors")
    assert code == 2 and "initial weights are for spec 'hd-occupancy'" in err
    assert not (d / "o2").exists() or not any((d / "o2").iterdir())
