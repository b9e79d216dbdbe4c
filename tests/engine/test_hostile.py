"""Hostile and broken files: each ends in one clear message naming the file, within a bounded
time and memory, and nothing wrong is ever returned. Every fixture is made here."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
import zipfile

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from engine.bundled import bundled_model
from engine.diffusion.pipeline import load_generator
from engine.errors import DamagedFile, EquigenError, InputError, InvalidINRFile, shown
from engine.functional import init_from_seed
from engine.inr_io import INR, load_inr, save_inr
from engine.spec import MNIST_SIREN
from engine.tensor_files import HASH_KEY
from engine.torch_import import read_state_dict


def _one_line(e: pytest.ExceptionInfo, name: str) -> None:
    text = str(e.value)
    assert "\n" not in text and name in text and len(text) < 400, text


# -- text in messages ---------------------------------------------------------------------------

def test_user_data_in_messages_is_short_and_printable():
    key = (1,)
    for _ in range(60):  # a DAG whose repr would be 2^60 long
        key = (key, key)
    assert len(shown(key)) < 200
    assert "\x1b" not in shown("name\x1b[2J\nspec: forged") and "\\x1b" in shown("name\x1b[2J")


# -- .pth files ----------------------------------------------------------------------------------

def _zip_with_pickle(path, pickle_bytes: bytes) -> None:
    """A torch.save archive whose data.pkl is replaced by ``pickle_bytes``."""
    base = path.with_suffix(".base")
    torch.save({"a": torch.zeros(1)}, base)
    with zipfile.ZipFile(base) as src, zipfile.ZipFile(path, "w") as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            dst.writestr(info, pickle_bytes if info.filename.endswith("data.pkl") else data)
    base.unlink()


def _nested_key_pickle(depth: int) -> bytes:
    """{((…(1,)…), (…)): 0} with ``depth`` levels sharing references: tiny on disk, exponential
    to hash (the unpickler never returns) or to print."""
    body = bytearray(b"\x80\x02K\x01\x85q\x01")
    for i in range(1, depth + 1):
        body += bytes([ord("h"), i, ord("h"), i, 0x86, ord("q"), i + 1])
    return bytes(body + b"}" + bytes([ord("h"), depth + 1]) + b"K\x00s.")


def test_a_key_nested_forty_deep_is_stopped_by_the_time_limit(tmp_path):
    path = tmp_path / "nested.pth"
    _zip_with_pickle(path, _nested_key_pickle(40))
    assert path.stat().st_size < 2000
    t0 = time.perf_counter()
    with pytest.raises(InvalidINRFile, match="did not load within 2 s") as e:
        read_state_dict(path, seconds=2)
    assert time.perf_counter() - t0 < 10
    _one_line(e, "nested.pth")


def test_a_nested_key_that_loads_is_refused_and_quoted_short(tmp_path):
    path = tmp_path / "nested.pth"
    _zip_with_pickle(path, _nested_key_pickle(12))
    with pytest.raises(InvalidINRFile, match="is not a parameter name") as e:
        load_inr(path)
    _one_line(e, "nested.pth")


def test_a_zip_bomb_is_refused_from_its_directory(tmp_path):
    big = tmp_path / "big.pth"
    torch.save({"seq.0.weight": torch.zeros(8_000_000)}, big)  # 32 MB of zeros
    bomb = tmp_path / "bomb.pth"
    with zipfile.ZipFile(big) as src, zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info.filename))
    assert bomb.stat().st_size < 1_000_000
    t0 = time.perf_counter()
    with pytest.raises(InvalidINRFile, match="unpacks to 31 MB") as e:
        load_inr(bomb)
    assert time.perf_counter() - t0 < 1.0  # nothing was inflated
    _one_line(e, "bomb.pth")


def test_random_bytes_and_foreign_keys_get_their_own_message(tmp_path):
    rnd = tmp_path / "noise.pth"
    rnd.write_bytes(random.Random(0).randbytes(4000))
    with pytest.raises(InvalidINRFile, match="noise.pth: not a PyTorch file"):
        load_inr(rnd)
    ints = tmp_path / "ints.pth"
    torch.save({7: torch.zeros(3)}, ints)
    with pytest.raises(InvalidINRFile, match="ints.pth: key 7 is not a parameter name"):
        load_inr(ints)


def test_a_load_that_does_not_finish_in_time_is_stopped(tmp_path):
    path = tmp_path / "slow.pth"
    torch.save({k: torch.zeros(s) for k, s in MNIST_SIREN.param_shapes()}, path)
    with pytest.raises(InvalidINRFile, match="did not load within") as e:
        read_state_dict(path, seconds=0.0)
    _one_line(e, "slow.pth")
    assert set(read_state_dict(path)) == {k for k, _ in MNIST_SIREN.param_shapes()}


# -- INR files -----------------------------------------------------------------------------------

def _forged_inr(tmp_path, name: str, **spec_fields) -> os.PathLike:
    spec = MNIST_SIREN.to_dict() | spec_fields
    params = {k: v[0].contiguous() for k, v in init_from_seed(MNIST_SIREN, 0).items()}
    path = tmp_path / name
    save_file(params, str(path), metadata={"format": "equigen-inr", "spec": json.dumps(spec), "meta": "{}"})
    return path


@pytest.mark.parametrize("field, value", [("w0", float("nan")), ("w0", float("inf")), ("w0", 1e30),
                                          ("output_offset", float("nan")), ("domain", [-1, float("inf")]),
                                          ("grid_size", 1), ("hidden", [1 << 20]), ("in_dim", "2")])
def test_absurd_spec_values_are_refused(tmp_path, field, value):
    path = _forged_inr(tmp_path, "absurd.safetensors", **{field: value})
    with pytest.raises(InvalidINRFile) as e:
        load_inr(path)
    _one_line(e, "absurd.safetensors")
    assert field in str(e.value)


def test_metadata_that_is_not_an_object_is_refused(tmp_path):
    path = tmp_path / "meta.safetensors"
    params = {k: v[0].contiguous() for k, v in init_from_seed(MNIST_SIREN, 0).items()}
    save_file(params, str(path), metadata={"spec": MNIST_SIREN.to_json(), "meta": "[1, 2]"})
    with pytest.raises(InvalidINRFile, match="not a JSON object"):
        load_inr(path)


def test_every_flipped_bit_is_refused_or_changes_nothing(tmp_path):
    inr = INR.from_batch(MNIST_SIREN, init_from_seed(MNIST_SIREN, 5), 0, {"source": "a.png"})
    good = save_inr(tmp_path / "good.safetensors", inr)
    data = good.read_bytes()
    rng = random.Random(0)
    refused = 0
    for i in range(60):
        flipped = bytearray(data)
        pos = rng.randrange(len(data))
        flipped[pos] ^= 1 << rng.randrange(8)
        bad = tmp_path / f"flip{i}.safetensors"
        bad.write_bytes(bytes(flipped))
        try:
            back = load_inr(bad)
        except EquigenError as e:
            assert "\n" not in str(e) and bad.name in str(e)
            refused += 1
            continue
        assert back.meta == inr.meta and all(torch.equal(back.params[k], v) for k, v in inr.params.items())
    assert refused >= 55


def test_a_damaged_sealed_file_says_so(tmp_path):
    path = save_inr(tmp_path / "d.safetensors", INR.from_batch(MNIST_SIREN, init_from_seed(MNIST_SIREN, 1), 0))
    data = bytearray(path.read_bytes())
    data[-5] ^= 0x10  # inside the last tensor: still a valid safetensors file
    path.write_bytes(bytes(data))
    with pytest.raises(DamagedFile, match="d.safetensors: damaged file"):
        load_inr(path)


# -- model files ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def shipped():
    path = bundled_model("glyphs-2d")
    with safe_open(str(path), framework="pt") as f:
        header = dict(f.metadata())
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    header.pop(HASH_KEY, None)
    return header, tensors


def _forge(tmp_path, shipped, header_change=None, tensor_change=None):
    header, tensors = dict(shipped[0]), dict(shipped[1])
    if header_change:
        header_change(header)
    if tensor_change:
        tensor_change(tensors)
    path = tmp_path / "forged.safetensors"
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path), metadata=header)
    return path


def _set(key, value):
    return lambda h: h.__setitem__(key, value)


def _pop(key):
    return lambda h: h.pop(key)


def _json_set(key, field, value):
    def change(h):
        d = json.loads(h[key])
        d[field] = value
        h[key] = json.dumps(d)
    return change


@pytest.mark.parametrize("header_change, tensor_change, words", [
    (_json_set("denoiser", "width", 65536), None, "width"),
    # within the bounds, but the 34-billion-number network it implies is only ever built on the meta device
    (lambda h: h.__setitem__("denoiser", json.dumps({"width": 4096, "depth": 64, "mlp_ratio": 16.0})), None,
     "implies"),
    (_pop("method"), None, "unknown method"),
    (_set("method", "evil"), None, "unknown method 'evil'"),
    (_pop("spec"), None, "damaged model file"),
    (_set("spec", "{not json"), None, "damaged model file"),
    (_json_set("denoiser", "colour", "red"), None, "damaged model file"),
    (_set("denoiser", "[1, 2]"), None, "damaged model file"),
    (_json_set("spec", "hidden", [64, 64]), None, "damaged"),
    (_set("meta", "[1]"), None, "not a JSON dict"),
    (_set("meta", "7"), None, "not a JSON dict"),
    (_set("cond_dim", "7"), None, "cond_dim"),
    (_set("shots", "{\"a\": 1}"), None, "not a JSON list"),
    (None, lambda t: t.__setitem__("stats.mean", t["stats.mean"][:-3]), "stats.mean"),
    (None, lambda t: t.__setitem__("stats.std", torch.zeros_like(t["stats.std"])), "not positive"),
    (None, lambda t: t.__setitem__("stats.std", torch.full_like(t["stats.std"], float("inf"))), "infinite"),
    (None, lambda t: t["denoiser.inp.weight"].__setitem__((0, 0), float("nan")), "NaN"),
    (None, lambda t: t.pop("encoder.probe_mlp.0.weight", None) or t.pop(next(k for k in t if k.startswith("encoder."))),
     "missing"),
])
def test_forged_model_headers_and_tensors_are_refused_before_anything_is_built(
        tmp_path, shipped, header_change, tensor_change, words):
    path = _forge(tmp_path, shipped, header_change, tensor_change)
    t0 = time.perf_counter()
    with pytest.raises(InputError) as e:
        load_generator(path)
    assert time.perf_counter() - t0 < 10
    _one_line(e, "forged.safetensors")
    assert words in str(e.value)


def test_the_cli_refuses_a_forged_model_in_one_line(tmp_path, shipped):
    path = _forge(tmp_path, shipped, _json_set("denoiser", "width", 65536))
    r = subprocess.run([sys.executable, "-m", "engine", "generate", "--model", str(path), "-n", "1",
                        "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "forged.safetensors" in r.stderr
    assert not (tmp_path / "out").exists()


def test_info_shows_escapes_instead_of_obeying_them(tmp_path):
    inr = INR.from_batch(MNIST_SIREN, init_from_seed(MNIST_SIREN, 0), 0,
                         {"name": "glyph\x1b[2J\nspec:       forged"})
    path = save_inr(tmp_path / "ansi.safetensors", inr)
    r = subprocess.run([sys.executable, "-m", "engine", "info", str(path)], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0 and "\x1b" not in r.stdout and "\\x1b[2J" in r.stdout
    assert sum(line.startswith("spec:") for line in r.stdout.splitlines()) == 1
