"""Corpus builders on small builds: counts, splits, resume, duplicate fonts, torchrun equality,
skipped inputs, statistics and the streaming dataset."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from engine.data.build import BuildConfig, build_corpus
from engine.data.dataset import INRDataset
from engine.data.glyphs import find_fonts, select_fonts
from engine.data.store import read_manifest, read_shard_seconds, read_stats
from engine.errors import InputError
from engine.functional import forward, image_grid
from engine.progress import drive

from ..conftest import FONT_DIRS


def _build(tmp, **kw):
    out = kw.pop("out", tmp / "corpus")
    return drive(build_corpus(BuildConfig(**kw), out)), out


@pytest.fixture(scope="module")
def font_dir(tmp_path_factory):
    """Three real fonts plus a byte-identical copy of one and a renamed copy of another."""
    d = tmp_path_factory.mktemp("fonts")
    fonts = [p for p in sorted(FONT_DIRS[0].glob("*.ttf"))][:3]
    assert len(fonts) == 3, "install fonts-dejavu-core"
    for p in fonts:
        shutil.copy(p, d / p.name)
    shutil.copy(fonts[0], d / "copy_of_first.ttf")
    (d / "sub").mkdir()
    shutil.copy(fonts[1], d / "sub" / "renamed.ttf")
    return d


def test_duplicate_fonts_are_dropped(font_dir):
    sel = select_fonts(find_fonts([font_dir]))
    assert len(sel.kept) == 3
    assert len(sel.duplicates) == 2
    assert any(d.startswith("copy_of_first.ttf =") or "= copy_of_first.ttf" in d for d in sel.duplicates)


def test_glyph_corpus_classes_counts_and_splits(tmp_path, font_dir):
    summary, out = _build(tmp_path, kind="glyphs", fonts=(str(font_dir),), per_class=2,
                          target_classes=("9", "Q"))
    classes = summary["per_class"]
    assert len(classes) == 62
    assert all(v["source"] + v["target"] == 2 for v in classes.values())
    assert classes["9"] == {"source": 0, "target": 2} and classes["Q"]["target"] == 2
    assert summary["per_split"] == {"source": 120, "target": 4}
    assert summary["mean_quality"] >= 30.0
    assert summary["init_mode"] == "shared"
    manifest = read_manifest(out)
    assert manifest["source_details"]["fonts_kept"] == 3


def test_fashion_mnist_defaults_stats_and_init(tmp_path):
    summary, out = _build(tmp_path, kind="fashion-mnist", per_class=6, inits=2, chunk_size=25)
    assert summary["target_classes"] == ["ankle_boot", "bag"]
    assert summary["num_inrs"] == 120 and summary["num_items"] == 60
    index = [json.loads(line) for line in open(out / "index.jsonl")]
    assert {r["init"] for r in index if r["init_k"] == 0} == {"shared:0"}
    assert len({r["init"] for r in index if r["init_k"] == 1}) == 60  # one random init per item
    mean, std = read_stats(out)
    ds = INRDataset(out, split="source", init_k=0)
    stacked = ds.stacked()
    for k in mean:
        torch.testing.assert_close(mean[k], stacked[k].mean(0), atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(std[k], stacked[k].std(0, unbiased=False), atol=1e-5, rtol=1e-3)
    # The stored weights decode to their images.
    rec = ds[0]
    img = forward(ds.spec, {k: v[None] for k, v in rec["params"].items()}, image_grid(28))
    assert img.shape == (1, 784, 1) and float(img.std()) > 0.05


def test_target_inits_give_second_fits_only_to_held_out_items(tmp_path):
    summary, out = _build(tmp_path, kind="fashion-mnist", per_class=4, target_inits=2, chunk_size=15)
    index = [json.loads(line) for line in open(out / "index.jsonl")]
    by_split = {s: [r for r in index if r["split"] == s] for s in ("source", "target")}
    assert {r["init_k"] for r in by_split["source"]} == {0}
    assert len(by_split["source"]) == 32  # 8 source classes x 4, one fit each
    assert sorted(r["init_k"] for r in by_split["target"]) == [0] * 8 + [1] * 8
    second = INRDataset(out, split="target", init_k=1)
    first = INRDataset(out, split="target", init_k=0)
    assert sorted(r["item"] for r in second.rows) == sorted(r["item"] for r in first.rows)
    assert summary["inits"] == 1 and summary["target_inits"] == 2
    # A second fit starts elsewhere, so it is a different network that is also a good fit.
    order = {r["item"]: i for i, r in enumerate(second.rows)}
    second.rows = [second.rows[order[r["item"]]] for r in first.rows]
    a, b = first.stacked(), second.stacked()
    assert all(not torch.allclose(a[k], b[k]) for k in a)
    assert min(r["quality"] for r in by_split["target"]) >= 30.0


def test_interrupted_build_resumes_where_it_stopped(tmp_path):
    cfg = BuildConfig(kind="fashion-mnist", per_class=4, chunk_size=10)
    out = tmp_path / "c"
    gen = build_corpus(cfg, out)
    for event in gen:  # stop right after the second shard is written
        if event.stage == "build" and event.done == 2:
            gen.close()
            break
    shards = sorted((out / "shards").glob("*.safetensors"))
    assert len(shards) == 2 and read_manifest(out)["status"] == "building"
    first_bytes = shards[0].read_bytes()
    events = []
    summary = drive(build_corpus(cfg, out), on_progress=events.append)
    assert summary["status"] == "complete" and summary["num_inrs"] == 40
    assert shards[0].read_bytes() == first_bytes  # not refitted
    assert sum(e.stage == "build" for e in events) == 2  # only the two missing chunks
    # The reported fitting time covers all four chunks, not only the two this run fitted.
    chunk_seconds = [read_shard_seconds(p) for p in sorted((out / "shards").glob("*.safetensors"))]
    assert len(chunk_seconds) == 4 and min(chunk_seconds) > 0
    assert summary["fit_seconds"] == pytest.approx(sum(chunk_seconds), abs=0.1)
    with pytest.raises(InputError, match="other arguments"):
        drive(build_corpus(BuildConfig(kind="fashion-mnist", per_class=5, chunk_size=10), out))


def test_corrupt_input_is_skipped_not_fatal(tmp_path, fashion):
    root = tmp_path / "imgs"
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True)
        for i in range(3):
            Image.fromarray((fashion[i + (3 if cls == "b" else 0)] * 255).astype(np.uint8)).save(root / cls / f"{i}.png")
    (root / "b" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    summary, out = _build(tmp_path, kind="images", root=str(root), target_classes=("b",))
    assert summary["num_inrs"] == 6 and summary["skipped"] == 1
    assert "broken.png" in read_manifest(out)["skipped"][0]["item"]


def test_meshes_folder_corpus_fits_every_mesh_by_its_class_folder(tmp_path):
    import dataclasses

    import trimesh

    from engine.domains import SHAPES

    root = tmp_path / "meshes"
    makers = {"box": lambda i: trimesh.creation.box((0.4 + 0.05 * i, 0.5, 0.3)),
              "ball": lambda i: trimesh.creation.icosphere(2, radius=0.25 + 0.03 * i)}
    for name, make in makers.items():
        (root / name).mkdir(parents=True)
        for i in range(3):
            make(i).export(root / name / f"{name}{i}.obj")
    (root / "box" / "notes.txt").write_text("not a mesh")  # ignored: not a mesh suffix
    fit = dataclasses.replace(SHAPES.corpus_mesh_fit, surface_points=4000, uniform_points=4000, eval_points=2000,
                              max_steps=40)
    summary, out = _build(tmp_path, kind="meshes", root=str(root), target_classes=("ball",), mesh_fit=fit)
    assert summary["num_inrs"] == 6 and summary["skipped"] == 0
    manifest = read_manifest(out)
    assert manifest["source_classes"] == ["box"] and manifest["target_classes"] == ["ball"]
    assert manifest["spec"]["name"] == "hd-occupancy"
    ds = INRDataset(out, split="all")
    assert sorted(ds.classes) == ["ball", "box"] and len(ds) == 6
    weights = ds.stacked()
    assert all(torch.isfinite(v).all() for v in weights.values())
    assert min(r["quality"] for r in ds.rows) > 0.5  # IoU: 40 steps already hold a box or a ball


def test_inrs_corpus_imports_dwsnets_files_without_refitting(tmp_path):
    from .test_spec_and_forward import DWSNetsSiren

    root = tmp_path / "mnist-inrs"
    nets = {}
    for digit in range(10):
        for idx in range(2):
            d = root / f"mnist_png_training_{digit}_{idx}" / "checkpoints"
            d.mkdir(parents=True)
            torch.manual_seed(digit * 10 + idx)
            net = DWSNetsSiren()
            torch.save({"params": net.state_dict()}, d / "model_final.pth")
            nets[f"mnist_png_training_{digit}_{idx}/checkpoints/model_final.pth"] = net
    (root / "mnist_png_training_3_9" / "checkpoints").mkdir(parents=True)
    (root / "mnist_png_training_3_9" / "checkpoints" / "model_final.pth").write_bytes(b"truncated")
    summary, out = _build(tmp_path, kind="inrs", root=str(root))
    assert summary["num_inrs"] == 20 and summary["skipped"] == 1
    assert summary["target_classes"] == ["9"] and summary["init_mode"] == "imported"
    ds = INRDataset(out, split="all")
    for rec in (ds[0], ds[7]):
        ref = nets[rec["item"]].state_dict()
        assert all(torch.equal(rec["params"][k], ref[k]) for k in ref)


@pytest.mark.slow
def test_shapes3d_corpus(tmp_path):
    summary, out = _build(tmp_path, kind="shapes3d", families=("chair", "mug"), count=2,
                          target_classes=("mug",))
    assert summary["num_inrs"] == 4 and summary["per_split"] == {"source": 2, "target": 2}
    assert summary["mean_quality"] >= 0.93
    assert summary["spec"] == "hd-occupancy"


@pytest.mark.slow
def test_torchrun_build_equals_single_process(tmp_path):
    torchrun = Path(sys.executable).parent / "torchrun"
    args = ["data", "build", "fashion-mnist", "--per-class", "5", "--chunk-size", "10", "--json"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    single = subprocess.run([sys.executable, "-m", "engine", "--threads", "1", *args, "--out", str(tmp_path / "one")],
                            capture_output=True, text=True, env=env)
    assert single.returncode == 0, single.stderr
    multi = subprocess.run([str(torchrun), "--nproc_per_node=2", "--master_port=29533", "-m", "engine", *args,
                            "--out", str(tmp_path / "two")], capture_output=True, text=True, env=env)
    assert multi.returncode == 0, multi.stderr[-3000:]
    assert (tmp_path / "one" / "index.jsonl").read_text() == (tmp_path / "two" / "index.jsonl").read_text()
    for shard in sorted((tmp_path / "one" / "shards").iterdir()):
        a, b = load_file(shard), load_file(tmp_path / "two" / "shards" / shard.name)
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_torchrun_build_with_bad_arguments_fails_fast_on_every_rank(tmp_path):
    torchrun = Path(sys.executable).parent / "torchrun"
    result = subprocess.run(
        [str(torchrun), "--nproc_per_node=2", "--master_port=29534", "-m", "engine", "data", "build",
         "fashion-mnist", "--per-class", "1", "--target-classes", "unicorn", "--out", str(tmp_path / "x")],
        capture_output=True, text=True, timeout=120, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert result.returncode != 0
    assert result.stderr.count("unknown classes ['unicorn']") == 2


def test_dataset_rows_pass_through_the_transform(tmp_path):
    _, out = _build(tmp_path, kind="fashion-mnist", per_class=3, chunk_size=7)
    flips = []

    def negate(params):
        flips.append(1)
        return {k: -v for k, v in params.items()}

    ds = INRDataset(out, split="source", transform=negate)
    assert len(ds) == 24 and len(flips) == 0
    plain = INRDataset(out, split="source")
    torch.testing.assert_close(ds[3]["params"]["seq.0.weight"], -plain[3]["params"]["seq.0.weight"])
    assert len(flips) == 1  # one transform per row read
    batch = ds.stacked()
    assert batch["seq.1.weight"].shape == (24, 32, 32)


def test_bad_build_arguments_say_what_to_do(tmp_path):
    with pytest.raises(InputError, match="needs a root folder"):
        BuildConfig(kind="images")
    with pytest.raises(InputError, match="unknown classes"):
        _build(tmp_path, kind="fashion-mnist", per_class=1, target_classes=("unicorn",))
    with pytest.raises(InputError, match="no files in class subfolders"):
        (tmp_path / "empty").mkdir()
        _build(tmp_path, kind="images", root=str(tmp_path / "empty"), out=tmp_path / "x")


def test_data_cli(tmp_path, capsys):
    from engine.cli import main

    assert main(["data", "build", "fashion-mnist", "--out", str(tmp_path / "c"), "--per-class", "2",
                 "--target-classes", "bag,coat", "--json"]) == 0
    built = json.loads(capsys.readouterr().out)
    assert built["target_classes"] == ["bag", "coat"]
    assert main(["data", "info", str(tmp_path / "c"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["num_inrs"] == 20 and info["per_class"]["bag"] == {"source": 0, "target": 2}
    assert info["builder_args"]["per_class"] == 2
    assert main(["data", "info", str(tmp_path)]) == 2
    assert "not a corpus directory" in capsys.readouterr().err


def test_contact_sheet_shows_decoded_inrs(tmp_path):
    from engine.data.contact_sheet import LABEL_WIDTH, contact_sheet

    _, out = _build(tmp_path, kind="fashion-mnist", per_class=2)
    sheet = drive(contact_sheet(out, per_class=3, tile=32))
    assert sheet.shape == (10 * 32, LABEL_WIDTH + 3 * 32, 3)
    tiles = sheet[:, LABEL_WIDTH:]
    # Two real items per class, then one empty tile: the sheet shows what is there, nothing more.
    assert tiles[:, :64].std() > 20 and tiles[:, 64:].max() == 0
    assert sheet[:, :LABEL_WIDTH].max() > 200  # class labels are drawn


def test_glyph_solids_are_watertight_and_the_3d_font_rule_measures_detail(font_dir):
    from manifold3d import CrossSection

    from engine.data.glyphs3d import font_complexity, make_glyph_solid, outline_complexity

    font = sorted(font_dir.glob("*.ttf"))[0]
    solid = make_glyph_solid(font, "8")
    assert solid.is_watertight and solid.volume > 0
    assert 3 < font_complexity(font) < 15  # regular type passes the glyphs3d rule
    square = CrossSection.square((1.0, 1.0))
    stripes = CrossSection.batch_boolean([CrossSection.square((1.0, 0.02)).translate((0, 0.04 * i))
                                          for i in range(25)], __import__("manifold3d").OpType.Add)
    assert outline_complexity(square) == pytest.approx(4 / 3.14159265, rel=1e-3)
    assert outline_complexity(stripes) > 15 * outline_complexity(square)


def test_every_procedural_family_is_watertight_reproducible_and_numbered_for_good():
    from engine.data.shapes3d import FAMILIES, FAMILY_IDS, make_shape

    assert sorted(FAMILY_IDS) == sorted(FAMILIES) and len(FAMILIES) >= 14
    # the first nine keep the numbers they had, so adding a family never changes their shapes
    assert FAMILY_IDS[:9] == ("airplane", "bench", "bottle", "chair", "lamp", "mug", "sofa", "table", "vase")
    for family in FAMILIES:
        a, b = make_shape(family, 3), make_shape(family, 3)
        assert a.is_watertight and len(a.faces) > 0
        assert np.array_equal(a.vertices, b.vertices)
        assert not np.array_equal(a.vertices, make_shape(family, 4).vertices)
