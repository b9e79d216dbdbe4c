"""INR files: round trips, imports of the published formats, and refusal of unsafe or broken
files with one line that names the file."""

from __future__ import annotations

import os

import pytest
import torch

from engine.errors import InvalidINRFile
from engine.functional import forward, image_grid, init_from_seed, volume_grid
from engine.inr_io import INR, load_inr, save_inr
from engine.spec import HD_OCCUPANCY, MNIST_SIREN

from .test_spec_and_forward import DWSNetsSiren, HyperDiffusionMLP3D


def test_safetensors_round_trip(tmp_path):
    p = init_from_seed(MNIST_SIREN, 3)
    inr = INR.from_batch(MNIST_SIREN, p, 0, {"source": "a.png", "psnr_db": 31.5})
    path = save_inr(tmp_path / "a.safetensors", inr)
    back = load_inr(path)
    assert back.spec == MNIST_SIREN
    assert back.meta == {"source": "a.png", "psnr_db": 31.5}
    for k in inr.params:
        assert torch.equal(back.params[k], inr.params[k])
    assert [f.name for f in tmp_path.iterdir()] == ["a.safetensors"]  # no temp files left


@pytest.mark.parametrize("wrap", [False, True])
def test_dwsnets_pth_imports_and_renders_the_same(tmp_path, wrap):
    torch.manual_seed(1)
    net = DWSNetsSiren()
    sd = net.state_dict()
    d = tmp_path / "mnist_png_training_3_17" / "checkpoints"
    d.mkdir(parents=True)
    torch.save({"params": sd} if wrap else sd, d / "model_final.pth")
    inr = load_inr(d / "model_final.pth")
    assert inr.spec == MNIST_SIREN
    coords = image_grid(28)
    with torch.no_grad():
        expected = net(coords)
    torch.testing.assert_close(forward(inr.spec, inr.batched(), coords)[0], expected, atol=1e-5, rtol=1e-5)


def test_hyperdiffusion_pth_imports_and_evaluates_the_same(tmp_path):
    torch.manual_seed(2)
    net = HyperDiffusionMLP3D()
    path = tmp_path / "occ_1a2b_jitter_0_model_final.pth"
    torch.save(net.state_dict(), path)
    inr = load_inr(path)
    assert inr.spec == HD_OCCUPANCY
    coords = volume_grid(10, HD_OCCUPANCY.domain)
    with torch.no_grad():
        expected = net(coords)
    torch.testing.assert_close(forward(inr.spec, inr.batched(), coords)[0], expected, atol=1e-5, rtol=1e-5)


class _Exploit:
    def __reduce__(self):
        return (os.system, (f"touch {os.environ['EXPLOIT_MARKER']}",))


def test_pickle_with_code_is_refused_and_never_runs(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    monkeypatch.setenv("EXPLOIT_MARKER", str(marker))
    path = tmp_path / "evil.pth"
    sd = DWSNetsSiren().state_dict()
    sd["seq.0.weight"] = _Exploit()
    torch.save(sd, path)
    with pytest.raises(InvalidINRFile, match="evil.pth.*refused"):
        load_inr(path)
    assert not marker.exists()


def test_truncated_files_are_refused(tmp_path):
    pth = tmp_path / "cut.pth"
    torch.save(DWSNetsSiren().state_dict(), pth)
    pth.write_bytes(pth.read_bytes()[:300])
    with pytest.raises(InvalidINRFile, match="cut.pth.*truncated"):
        load_inr(pth)
    st = tmp_path / "cut.safetensors"
    save_inr(st, INR.from_batch(MNIST_SIREN, init_from_seed(MNIST_SIREN, 0), 0))
    st.write_bytes(st.read_bytes()[:-100])
    with pytest.raises(InvalidINRFile, match="cut.safetensors"):
        load_inr(st)


def test_unknown_keys_and_wrong_shapes_are_refused(tmp_path):
    sd = DWSNetsSiren().state_dict()
    sd["seq.3.weight"] = torch.zeros(1, 1)
    torch.save(sd, tmp_path / "extra.pth")
    with pytest.raises(InvalidINRFile, match="extra.pth: unknown key 'seq.3.weight'"):
        load_inr(tmp_path / "extra.pth")
    sd = DWSNetsSiren().state_dict()
    sd["seq.1.weight"] = torch.zeros(32, 31)
    torch.save(sd, tmp_path / "shape.pth")
    with pytest.raises(InvalidINRFile, match=r"shape.pth: 'seq.1.weight' has shape \(32, 31\)"):
        load_inr(tmp_path / "shape.pth")
    sd = DWSNetsSiren().state_dict()
    sd["seq.2.bias"] = torch.tensor([float("nan")])
    torch.save(sd, tmp_path / "nan.pth")
    with pytest.raises(InvalidINRFile, match="NaN"):
        load_inr(tmp_path / "nan.pth")
    torch.save([1, 2, 3], tmp_path / "list.pth")
    with pytest.raises(InvalidINRFile, match="no state dict"):
        load_inr(tmp_path / "list.pth")


def test_not_an_inr(tmp_path):
    p = tmp_path / "notes.txt"
    p.write_text("hello")
    with pytest.raises(InvalidINRFile, match="not an INR file"):
        load_inr(p)
    with pytest.raises(InvalidINRFile, match="no such file"):
        load_inr(tmp_path / "missing.safetensors")


def test_bare_safetensors_state_dict_is_recognised(tmp_path):
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in HyperDiffusionMLP3D().state_dict().items()},
              str(tmp_path / "bare.safetensors"))
    assert load_inr(tmp_path / "bare.safetensors").spec == HD_OCCUPANCY
