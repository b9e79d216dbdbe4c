"""The device choice: names, clear errors, and the structured generator computing where it is
told (every network and tensor of an adapted model on the device, INRs back on the CPU). The
CUDA case runs where a GPU is present and is skipped otherwise."""

from __future__ import annotations

import pytest
import torch

from engine.bundled import bundled_model, examples_dir
from engine.cli import main
from engine.device import describe, resolve
from engine.diffusion.code_train import CodeAdaptConfig
from engine.diffusion.generate import GenerateConfig
from engine.diffusion.pipeline import adapt_to_files, generate_params, load_generator
from engine.errors import InputError
from engine.progress import drive

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def test_names_resolve_and_unknown_ones_are_refused():
    assert resolve("cpu") == torch.device("cpu")
    assert resolve("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert describe(torch.device("cpu")).startswith("CPU (")
    with pytest.raises(InputError, match="unknown device 'tpu'"):
        resolve("tpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_a_gpu_asked_for_without_one_ends_in_one_line(tmp_path, capsys):
    with pytest.raises(InputError, match="no CUDA GPU.*use --device cpu"):
        resolve("cuda")
    code = main(["generate", "--model", str(bundled_model("glyphs-2d")), "--out", str(tmp_path / "o"),
                 "--device", "cuda"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "--device cpu" in err


def _commands(parser, prefix=()):
    """Every leaf subcommand of the CLI as ``(words, parser)``."""
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _commands(sub, prefix + (name,))
            return
    yield prefix, parser


def test_every_command_that_computes_takes_a_device():
    from engine.cli import build_parser

    only_files = {("info",), ("convert",), ("data", "info"), ("data", "canonicalise")}  # read and write, no network
    commands = dict(_commands(build_parser()))
    assert only_files < set(commands) and len(commands) > 10
    for words, parser in commands.items():
        has = any("--device" in a.option_strings for a in parser._actions)
        assert has == (words not in only_files), " ".join(words)


def _tensors(model):
    yield from model.base.state_dict().values()
    yield from model.denoiser.state_dict().values()
    if model.encoder is not None:
        yield from model.encoder.state_dict().values()
    yield from (model.mean, model.std, model.process.schedule.abar)
    if model.process.prior is not None:
        yield from (model.process.prior.mean, model.process.prior.basis)
    yield from (model.shots.codes, model.shots.features)


@pytest.mark.parametrize("device", DEVICES)
def test_fit_adapt_and_sample_run_on_the_requested_device(device):
    model = load_generator(bundled_model("glyphs-2d"), device)
    shots = sorted((examples_dir() / "nines").glob("*.png"))[:3]  # images: their codes are fitted
    adapted = drive(adapt_to_files(model, shots, CodeAdaptConfig(steps=3, batch_size=6)))
    assert {t.device.type for t in _tensors(adapted)} == {device}
    params = drive(generate_params(adapted, GenerateConfig(n=2, steps=5)))
    assert all(v.device.type == "cpu" and bool(torch.isfinite(v).all()) for v in params.values())
    assert model.device.type == device and load_generator(bundled_model("glyphs-2d")).device.type == "cpu"


def _forward_spy(monkeypatch, module):
    """Record the devices of every network evaluation ``module.forward`` makes."""
    seen = set()
    real = module.forward

    def spy(spec, params, coords):
        seen.update({v.device.type for v in params.values()} | {coords.device.type})
        return real(spec, params, coords)

    monkeypatch.setattr(module, "forward", spy)
    return seen


@pytest.mark.parametrize("device", DEVICES)
def test_fitting_computes_on_the_requested_device_and_returns_cpu_weights(device, monkeypatch):
    import numpy as np

    import engine.fit.images as images
    from engine.fit.images import ImageFitConfig, fit_images
    from engine.functional import init_from_seed
    from engine.spec import MNIST_SIREN

    seen = _forward_spy(monkeypatch, images)
    frames = np.zeros((2, 28, 28), np.float32)
    frames[:, 8:20, 10:18] = 1.0
    out = drive(fit_images(frames, init_from_seed(MNIST_SIREN, 0), MNIST_SIREN, ImageFitConfig(max_steps=20),
                           resolve(device)))
    assert seen == {device}
    assert all(v.device.type == "cpu" for v in out.params.values()) and out.quality.device.type == "cpu"


@pytest.mark.parametrize("device", DEVICES)
def test_a_training_step_runs_on_the_requested_device_and_the_file_is_device_free(device, tmp_path):
    import dataclasses

    from engine.diffusion.code_denoiser import CodeDenoiser, CodeDenoiserConfig
    from engine.diffusion.code_model import load_code_model
    from engine.diffusion.code_train import CodeTrainConfig, train_codes
    from engine.spec import MNIST_SIREN
    from engine.weightspace.structured import SharedBase

    base = SharedBase(MNIST_SIREN, 2, torch.Generator().manual_seed(0))
    codes = torch.randn(8, base.code_dim, generator=torch.Generator().manual_seed(1)) * 0.1
    seen = set()
    real = CodeDenoiser.forward

    def spy(self, x, t, cond=None, drop=None):
        seen.update({x.device.type, t.device.type, next(self.parameters()).device.type})
        return real(self, x, t, cond, drop)

    config = dataclasses.replace(CodeTrainConfig(), method="hyperdiffusion", steps=3, batch_size=4, warmup=1,
                                 denoiser=CodeDenoiserConfig(width=16, depth=1))
    out = tmp_path / "m.safetensors"
    CodeDenoiser.forward = spy
    try:
        model = drive(train_codes(base, codes, out, None, config, device=resolve(device)))
    finally:
        CodeDenoiser.forward = real
    assert seen == {device} and model.device.type == device
    assert load_code_model(out).device.type == "cpu"  # written from the CPU, read back anywhere


@pytest.mark.parametrize("device", DEVICES)
def test_the_shared_part_learns_on_the_requested_device(device):
    from engine.functional import image_grid
    from engine.spec import MNIST_SIREN
    from engine.weightspace.structured import BaseConfig, train_base

    frames = torch.rand(6, 28 * 28, generator=torch.Generator().manual_seed(0))
    grid = image_grid(28).expand(6, -1, -1)
    base, codes, _ = drive(train_base(MNIST_SIREN, grid, frames, BaseConfig(
        rank=2, steps=3, shapes_per_step=3, points_per_shape=64, warmup=1), device=resolve(device)))
    assert base.mean_code.device.type == device and codes.device.type == "cpu"
    assert all(v.device.type == "cpu" for v in base.state().values())


@pytest.mark.parametrize("device", DEVICES)
def test_a_raw_weight_model_adapts_and_samples_on_the_requested_device(device, tiny2d):
    from engine.diffusion.adapt import AdaptConfig

    model = load_generator(tiny2d["model"], device)
    assert model.device.type == device
    adapted = drive(adapt_to_files(model, tiny2d["shots"][:3], AdaptConfig(steps=2, batch_size=6)))
    tensors = [*adapted.denoiser.state_dict().values(), adapted.mean, adapted.std,
               *adapted.init.values(), *adapted.shots.params.values()]
    if adapted.encoder is not None:
        tensors += [*adapted.encoder.state_dict().values(), adapted.shots.features]
    assert {t.device.type for t in tensors} == {device}
    params = drive(generate_params(adapted, GenerateConfig(n=2, steps=4)))
    assert all(v.device.type == "cpu" and bool(torch.isfinite(v).all()) for v in params.values())


@pytest.mark.parametrize("device", DEVICES)
def test_images_and_meshes_decode_on_the_requested_device_into_cpu_results(device, monkeypatch):
    import numpy as np

    import engine.decode as decode
    from engine.inr_io import load_inr

    glyph = load_inr(sorted((examples_dir() / "nines").glob("*.safetensors"))[0])
    shape = load_inr(sorted(examples_dir().glob("shape_*.safetensors"))[0])
    on_cpu = decode.decode_images(glyph.spec, glyph.batched())
    mesh_on_cpu = decode.extract_mesh(shape, 32)
    seen = _forward_spy(monkeypatch, decode)
    image = decode.decode_images(glyph.spec, glyph.batched(), device=resolve(device))
    mesh = decode.extract_mesh(shape, 32, resolve(device))
    assert seen == {device}
    assert isinstance(image, np.ndarray) and np.abs(image - on_cpu).max() < 1e-4
    assert abs(mesh.volume - mesh_on_cpu.volume) < 1e-3 * abs(mesh_on_cpu.volume)


@pytest.mark.parametrize("device", DEVICES)
def test_the_feature_network_trains_and_describes_on_the_requested_device(device):
    import numpy as np

    from engine.metrics.feature_net import FeatureNetConfig, train_feature_net

    rng = np.random.default_rng(0)
    images = rng.random((24, 28, 28)).astype(np.float32)
    labels = np.arange(24) % 2
    net, accuracy = drive(train_feature_net(images, labels, ["a", "b"], FeatureNetConfig(epochs=1, batch_size=8),
                                            resolve(device)))
    assert {p.device.type for p in net.parameters()} == {device}
    feats, preds = net.describe(images[:5])
    assert isinstance(feats, np.ndarray) and feats.shape == (5, 32) and preds.shape == (5,)
    assert 0.0 <= accuracy <= 1.0


@pytest.mark.parametrize("device", DEVICES)
def test_bench_quality_computes_on_the_requested_device_and_says_so(device, tiny2d, tmp_path, monkeypatch):
    import engine.decode as decode
    from engine.bench.quality import QualityConfig, evaluate_quality
    from engine.bench.report import write_report

    from engine.data.store import read_manifest

    seen = _forward_spy(monkeypatch, decode)
    first_class = read_manifest(tiny2d["corpus"])["target_classes"][0]
    config = QualityConfig(methods=("equigen",), shots=2, repeats=1, diversities=(0.5,), samples=2, steps=2,
                           adapt_steps=1, classes=(first_class,))
    result = drive(evaluate_quality(tiny2d["model"], tiny2d["corpus"], config, device=device))
    assert seen == {device}  # the real items and the samples decoded where the model computes
    assert result["info"]["device"] == describe(resolve(device))
    assert f"computed on {describe(resolve(device))}" in write_report(result, tmp_path / "r").read_text()


@pytest.mark.parametrize("device", DEVICES)
def test_the_encoder_is_evaluated_where_it_is(device, tiny2d, monkeypatch):
    from engine.encoder.evaluate import evaluate_encoder
    from engine.encoder.model import WeightEncoder, load_encoder

    seen = set()
    real = WeightEncoder.forward

    def spy(self, params):
        seen.update({v.device.type for v in params.values()} | {self.norm_mean.device.type})
        return real(self, params)

    monkeypatch.setattr(WeightEncoder, "forward", spy)
    encoder, _ = load_encoder(tiny2d["encoder"])
    result = evaluate_encoder(encoder.to(resolve(device)), tiny2d["corpus"], k=2)
    assert seen == {device} and 0.0 <= result["knn_accuracy"]["encoder"] <= 1.0
