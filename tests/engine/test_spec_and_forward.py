"""Specs are data that round-trips; the batched functional forward equals plain nn.Modules."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from engine.errors import SpecError
from engine.functional import forward, image_grid, init_params, volume_grid
from engine.spec import HD_OCCUPANCY, MNIST_SIREN, INRSpec, get_spec


class DWSNetsSiren(nn.Module):
    """The DWSNets/EquiGen MNIST-INR network, written as its authors do."""

    def __init__(self):
        super().__init__()
        self.seq = nn.Sequential(nn.Linear(2, 32), nn.Linear(32, 32), nn.Linear(32, 1))

    def forward(self, x):
        x = torch.sin(30 * self.seq[0](x))
        x = torch.sin(30 * self.seq[1](x))
        return self.seq[2](x) + 0.5


class HyperDiffusionMLP3D(nn.Module):
    """HyperDiffusion's occupancy MLP with its NeRF Embedder (multires 4, include_input)."""

    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(27, 128), nn.Linear(128, 128),
                                     nn.Linear(128, 128), nn.Linear(128, 1)])

    @staticmethod
    def embed(x):
        freqs = 2.0 ** torch.linspace(0.0, 3.0, 4)
        out = [x]
        for f in freqs:
            out += [torch.sin(x * f), torch.cos(x * f)]
        return torch.cat(out, -1)

    def forward(self, x):
        h = self.embed(x)
        for layer in self.layers[:-1]:
            h = torch.relu(layer(h))
        return self.layers[-1](h)


def test_builtin_param_counts_and_keys():
    assert MNIST_SIREN.num_params == 1185
    assert HD_OCCUPANCY.num_params == 36737
    assert dict(MNIST_SIREN.param_shapes()) == {
        k: tuple(v.shape) for k, v in DWSNetsSiren().state_dict().items()}
    assert dict(HD_OCCUPANCY.param_shapes()) == {
        k: tuple(v.shape) for k, v in HyperDiffusionMLP3D().state_dict().items()}


@pytest.mark.parametrize("spec", [MNIST_SIREN, HD_OCCUPANCY])
def test_spec_round_trips_through_json(spec):
    again = INRSpec.from_json(spec.to_json())
    assert again == spec
    assert get_spec(spec.name) is spec


def test_bad_specs_are_refused():
    with pytest.raises(SpecError):
        INRSpec(name="x", in_dim=4, hidden=(8,))
    with pytest.raises(SpecError):
        INRSpec(name="x", in_dim=2, hidden=(8,), activation="tanh")
    with pytest.raises(SpecError):
        INRSpec.from_json('{"name": "x", "in_dim": 2, "hidden": [8], "colour": 1}')
    with pytest.raises(SpecError):
        get_spec("no-such-spec")


@pytest.mark.parametrize("spec,module_cls", [(MNIST_SIREN, DWSNetsSiren), (HD_OCCUPANCY, HyperDiffusionMLP3D)])
def test_functional_forward_matches_module(spec, module_cls):
    torch.manual_seed(0)
    modules = [module_cls() for _ in range(3)]
    params = {k: torch.stack([m.state_dict()[k] for m in modules]) for k, _ in spec.param_shapes()}
    coords = image_grid(28) if spec.in_dim == 2 else volume_grid(12, spec.domain)
    shared = forward(spec, params, coords)
    per_item = forward(spec, params, coords.unsqueeze(0).expand(3, -1, -1).contiguous())
    with torch.no_grad():
        expected = torch.stack([m(coords) for m in modules])
    assert shared.shape == (3, coords.shape[0], 1)
    torch.testing.assert_close(shared, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(per_item, expected, atol=1e-5, rtol=1e-5)


def test_another_mlp_spec_needs_no_new_code():
    wide = dataclasses.replace(MNIST_SIREN, name="siren-64x3", hidden=(64, 64, 64))
    params = init_params(wide, batch=2)
    out = forward(wide, params, image_grid(16))
    assert out.shape == (2, 256, 1)
    assert wide.num_params == (2 * 64 + 64) + 2 * (64 * 64 + 64) + 65
    assert INRSpec.from_json(wide.to_json()) == wide


def test_image_grid_is_xy_ordered():
    g = image_grid(4).reshape(4, 4, 2)
    assert torch.all(g[0, :, 0] == torch.linspace(-1, 1, 4))  # x runs along a row
    assert torch.all(g[:, 0, 1] == torch.linspace(-1, 1, 4))  # y runs down a column


def test_siren_first_layer_init_is_sirens_own():
    p = init_params(MNIST_SIREN, batch=64, generator=torch.Generator().manual_seed(0))
    w0 = p["seq.0.weight"]
    assert w0.abs().max() <= 0.5 and w0.abs().max() > 0.45  # U(±1/fan_in), fan_in = 2
    w1 = p["seq.1.weight"]
    assert w1.abs().max() <= (6 / 32) ** 0.5 / 30 + 1e-7
