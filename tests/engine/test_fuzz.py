"""Seeded fuzzing of every loader and of the command line's arguments.

Each mutated file either loads as something valid and finite or ends in the engine's own
one-line error; never a traceback, an internal error, a hang or a non-finite result. Every case
runs under a time limit and the whole test under a memory budget. The seeds are fixed, so a
failure reproduces; ``EQUIGEN_FUZZ_CASES`` raises the count for a longer run.
"""

from __future__ import annotations

import io
import json
import os
import random
import resource
import time

import numpy as np
import pytest
import torch
import trimesh
from PIL import Image
from safetensors import safe_open
from safetensors.torch import save_file

from engine.bundled import bundled_model
from engine.cli import main
from engine.diffusion.pipeline import load_generator, save_generator
from engine.errors import EquigenError
from engine.fit.images import load_gray
from engine.fit.meshes import load_mesh
from engine.functional import init_from_seed
from engine.inr_io import INR, load_inr, save_inr
from engine.spec import HD_OCCUPANCY, MNIST_SIREN

CASES = int(os.environ.get("EQUIGEN_FUZZ_CASES", "120"))
SECONDS_PER_CASE = 10.0
MEMORY_BUDGET_MB = 1500


def _mutations(data: bytes, rng: random.Random, header_end: int | None = None):
    """Yield CASES mutated copies: bit flips (often in the header), byte runs, truncation,
    insertion, duplication."""
    for _ in range(CASES):
        b = bytearray(data)
        kind = rng.randrange(6)
        head = header_end if header_end and rng.random() < 0.7 else len(b)
        if kind == 0:
            for _ in range(rng.randint(1, 4)):
                b[rng.randrange(head)] ^= 1 << rng.randrange(8)
        elif kind == 1:
            at = rng.randrange(head)
            b[at:at + rng.randint(1, 16)] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        elif kind == 2:
            b = b[:rng.randrange(len(b))]
        elif kind == 3:
            at = rng.randrange(len(b))
            b[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
        elif kind == 4:
            at = rng.randrange(len(b))
            b[at:at] = b[at:at + rng.randint(1, 4096)]
        else:
            b[rng.randrange(len(b))] = rng.choice([0, 0xFF, ord("{"), ord('"'), ord("9")])
        yield bytes(b)


def _header_end(data: bytes) -> int:
    return 8 + int.from_bytes(data[:8], "little")


def _check(load, path, accept):
    """Run ``load(path)`` under the time limit: an EquigenError or an accepted result."""
    t0 = time.perf_counter()
    try:
        result = load(path)
    except EquigenError as e:
        text = str(e)
        assert "\n" not in text and len(text) < 1000, text
        ok = "refused"
    else:
        accept(result)
        ok = "loaded"
    assert time.perf_counter() - t0 < SECONDS_PER_CASE, f"{path.name} took {time.perf_counter() - t0:.1f} s"
    return ok


def _fuzz_files(tmp_path, sources, rng, head: int, load, accept):
    """CASES mutations in all, shared among ``sources`` ``[(suffix, bytes)]``, each checked with
    ``load``; ``head``: the bytes of a file's header, mutated more often."""
    for suffix, data in sources:
        for i, mutated in enumerate(_mutations(data, rng, min(len(data), head))):
            if i >= CASES // len(sources):
                break
            path = tmp_path / f"m{i}.{suffix}"
            path.write_bytes(mutated)
            _check(load, path, accept)


def _finite_inr(inr):
    assert all(bool(torch.isfinite(v).all()) for v in inr.params.values())


@pytest.fixture(scope="module", autouse=True)
def memory_budget():
    start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    yield
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - start
    assert grown < MEMORY_BUDGET_MB, f"peak memory grew by {grown:.0f} MB"


def test_fuzz_inr_safetensors(tmp_path):
    rng = random.Random(1)
    good = save_inr(tmp_path / "good.safetensors", INR.from_batch(HD_OCCUPANCY, init_from_seed(HD_OCCUPANCY, 0), 0,
                                                                 {"source": "a.obj", "iou": 0.97}))
    data = good.read_bytes()
    outcomes = []
    for i, mutated in enumerate(_mutations(data, rng, _header_end(data))):
        path = tmp_path / f"m{i}.safetensors"
        path.write_bytes(mutated)
        outcomes.append(_check(load_inr, path, _finite_inr))
    # sealed: no mutation may pass unless it changed nothing that is read
    assert outcomes.count("refused") >= 0.9 * len(outcomes)


def test_fuzz_pth(tmp_path):
    rng = random.Random(2)
    good = tmp_path / "good.pth"
    torch.save({k: v[0] for k, v in init_from_seed(MNIST_SIREN, 0).items()}, good)
    data = good.read_bytes()
    for i, mutated in enumerate(_mutations(data, rng)):
        path = tmp_path / f"m{i}.pth"
        path.write_bytes(mutated)
        _check(load_inr, path, _finite_inr)


def test_fuzz_model_file_headers(tmp_path):
    """Mutate the JSON fields of a sealed model file's header: any value of any type."""
    rng = random.Random(3)
    model = load_generator(bundled_model("glyphs-2d"))
    good = save_generator(tmp_path / "good.safetensors", model, half=True)
    with safe_open(str(good), framework="pt") as f:
        header = dict(f.metadata())
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    header.pop("content_sha256")
    junk = [-1, 0, 1, 2**70, 65536, 1e308, float("nan"), "", "x" * 300, [], {}, [1, 2], None, True, "evil", {"a": []}]
    loaded = 0
    for i in range(CASES):
        h = dict(header)
        key = rng.choice(sorted(h))
        try:
            value = json.loads(h[key])
        except json.JSONDecodeError:
            value = h[key]
        if isinstance(value, dict) and value and rng.random() < 0.8:
            value[rng.choice(sorted(value))] = rng.choice(junk)
            h[key] = json.dumps(value)
        elif rng.random() < 0.5:
            h[key] = json.dumps(rng.choice(junk))
        else:
            del h[key]
        path = tmp_path / f"h{i}.safetensors"
        save_file(tensors, str(path), metadata=h)
        loaded += _check(load_generator, path, lambda m: None) == "loaded"
    assert loaded < CASES  # the mutations do reach the checks


def test_fuzz_model_file_bytes(tmp_path):
    rng = random.Random(4)
    model = load_generator(bundled_model("glyphs-2d"))
    good = save_generator(tmp_path / "good.safetensors", model, half=True)
    data = good.read_bytes()
    for i, mutated in enumerate(_mutations(data, rng, _header_end(data))):
        path = tmp_path / "m.safetensors"
        path.write_bytes(mutated)
        _check(load_generator, path, lambda m: None)


def test_fuzz_images(tmp_path):
    rng = random.Random(5)
    a = np.zeros((64, 48), np.uint8)
    a[10:50, 12:36] = 200
    sources = []
    for fmt in ("PNG", "JPEG", "BMP", "TIFF", "GIF"):
        buf = io.BytesIO()
        Image.fromarray(a).save(buf, format=fmt)
        sources.append((fmt.lower(), buf.getvalue()))

    def accept(gray):
        assert gray.ndim == 2 and np.isfinite(gray).all() and gray.min() >= 0 and gray.max() <= 1

    _fuzz_files(tmp_path, sources, rng, 128, load_gray, accept)


def test_fuzz_meshes(tmp_path):
    rng = random.Random(6)
    box = trimesh.creation.box()
    sources = [(ext, box.export(file_type=ext)) for ext in ("obj", "ply", "stl", "off")]

    def accept(mesh):
        assert np.isfinite(mesh.vertices).all() and len(mesh.faces) > 0

    _fuzz_files(tmp_path, [(ext, d.encode() if isinstance(d, str) else d) for ext, d in sources], rng, 200,
                load_mesh, accept)


def test_fuzz_arguments(tmp_path, capsys):
    rng = random.Random(7)
    inr = save_inr(tmp_path / "g.safetensors", INR.from_batch(MNIST_SIREN, init_from_seed(MNIST_SIREN, 0), 0))
    values = ["-1", "0", "1", "2", str(2**64), str(2**70), "nan", "inf", "-inf", "1e309", "", "abc", "0.5", "-0.0"]
    commands = [
        (["info", str(inr)], []),
        (["render", str(inr), "--out", str(tmp_path / "r.png"), "--overwrite"], ["--size", "--resolution"]),
        (["generate", "--model", str(bundled_model("glyphs-2d")), "--out", str(tmp_path / "g")],
         ["-n", "--diversity", "--seed", "--steps", "--guidance", "--resolution"]),
        (["fit", str(tmp_path / "none.png"), "--out", str(tmp_path / "f")],
         ["--init-seed", "--max-steps", "--target-psnr"]),
    ]
    for _ in range(CASES):
        argv, flags = rng.choice(commands)
        argv = list(argv)
        for flag in rng.sample(flags, k=min(len(flags), rng.randint(0, 2))):
            argv += [flag, rng.choice(values)]
        if rng.random() < 0.2:
            argv = ["--threads", rng.choice(values)] + argv
        t0 = time.perf_counter()
        try:
            code = main(argv)
        except SystemExit as e:  # argparse: a value of the wrong type
            code = e.code
        err = capsys.readouterr().err
        assert code in (0, 2), (argv, err)
        assert "internal error" not in err and "Traceback" not in err, (argv, err)
        assert code == 0 or err.count("\n") == 1, (argv, err)
        assert time.perf_counter() - t0 < 30, argv
