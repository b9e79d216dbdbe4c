"""The generator: weight tokens, the denoiser, the regulariser, adaptation, sampling, the
baselines, and tiny train → adapt → generate runs in 2D and 3D."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from engine.data.build import BuildConfig, build_corpus
from engine.diffusion.adapt import AdaptConfig, adapt, trained_weighting
from engine.diffusion.denoiser import Denoiser, DenoiserConfig
from engine.diffusion.generate import GenerateConfig, blended_conditions, perturbed_conditions, sample
from engine.diffusion.model_file import load_model, save_model
from engine.diffusion.schedule import Schedule
from engine.diffusion.shots import load_shots
from engine.diffusion.tokens import flatten, from_tokens, to_tokens, token_layout, unflatten
from engine.diffusion.train import TrainConfig, diffusion_loss, train
from engine.encoder.model import EncoderConfig
from engine.encoder.pretrain import PretrainConfig, pretrain
from engine.errors import Cancelled, InputError
from engine.functional import init_params
from engine.progress import drive
from engine.spec import HD_OCCUPANCY, MNIST_SIREN

SPECS = [MNIST_SIREN, HD_OCCUPANCY, dataclasses.replace(MNIST_SIREN, name="siren-48x3", hidden=(48, 48, 48))]
TINY_DENOISER = DenoiserConfig(width=32, depth=2, heads=2)
TINY_TRAIN = TrainConfig(steps=20, batch_size=16, checkpoint_every=10, denoiser={"width": 32, "depth": 2, "heads": 2},
                         reg_items=4)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_weight_tokens_round_trip(spec):
    layout = token_layout(spec, max_token=1024)
    p = init_params(spec, 3, torch.Generator().manual_seed(0))
    flat = flatten(layout, p)
    assert flat.shape == (3, spec.num_params)
    tokens = to_tokens(layout, flat)
    assert tokens.shape == (3, layout.num_tokens, layout.token_size) and layout.token_size <= 1024
    assert torch.equal(from_tokens(layout, tokens), flat)
    back = unflatten(layout, flat)
    assert all(torch.equal(back[k], p[k]) for k in p)
    assert (tokens[:, ~layout.mask] == 0).all()
    # one token per tensor unless a tensor is larger than a token
    assert layout.num_tokens >= 2 * spec.num_layers
    if spec is MNIST_SIREN:
        assert layout.num_tokens == 6


def test_denoiser_shapes_padding_and_guidance_drop():
    layout = token_layout(HD_OCCUPANCY)
    den = Denoiser(layout, cond_dim=12, config=TINY_DENOISER)
    # adaLN-Zero and the zero output layer start as "predict the mean"; wake them up
    for w in [den.w_out, den.mod_out.weight] + [b.modulation.weight for b in den.blocks]:
        torch.nn.init.normal_(w, std=0.1)
    x = torch.randn(2, layout.num_tokens, layout.token_size)
    t = torch.tensor([5, 900])
    cond = torch.randn(2, 12)
    out = den(x, t, cond)
    assert out.shape == x.shape and (out[:, ~layout.mask] == 0).all()
    dropped = den(x, t, cond, drop=torch.tensor([True, True]))
    torch.testing.assert_close(dropped, den(x, t, None))
    assert not torch.allclose(dropped, out)


@pytest.mark.parametrize("spec", SPECS[:2], ids=lambda s: s.name)
def test_default_tokens_pass_through_the_width_without_a_bottleneck(spec):
    config = DenoiserConfig()
    layout = token_layout(spec, config.token_numbers)
    # Each token enters through an (E, width) map: with E <= width nothing has to be dropped, and
    # all tokens together have room for every weight (1024-number tokens had room for 21% in 3D).
    assert layout.token_size <= config.width
    assert layout.num_tokens * config.width >= spec.num_params


def test_skip_returns_the_input_at_low_noise_and_old_files_keep_plain_x0():
    from engine.diffusion.denoiser import denoiser_config_from_json

    layout = token_layout(HD_OCCUPANCY, 128)
    torch.manual_seed(0)
    den = Denoiser(layout, cond_dim=0, config=dataclasses.replace(TINY_DENOISER, max_token=128))
    plain = Denoiser(layout, cond_dim=0, config=dataclasses.replace(TINY_DENOISER, max_token=128, skip=False))
    shared = lambda: {k: v for k, v in den.state_dict().items() if not k.startswith("prior_")}  # noqa: E731
    for w in [den.w_out, den.mod_out.weight] + [b.modulation.weight for b in den.blocks]:
        torch.nn.init.normal_(w, std=0.1)
    plain.load_state_dict(shared())
    x = to_tokens(layout, torch.randn(2, HD_OCCUPANCY.num_params))
    with torch.no_grad():
        near_clean = den(x, torch.tensor([0, 0]))
        rel = lambda a: float((a - x).norm() / x.norm())  # noqa: E731
        assert rel(near_clean) < 0.02 and rel(plain(x, torch.tensor([0, 0]))) > 0.5
        assert rel(den(x, torch.tensor([999, 999]))) > 0.5  # at pure noise the input says nothing
    old = {"width": 192, "depth": 4, "heads": 4, "mlp_ratio": 4.0, "max_token": 1024}
    config = denoiser_config_from_json(json.dumps(old))
    assert (config.skip, config.token_numbers, config.prior_rank) == (False, 1024, 0)


def test_ddim_recovers_x0_when_the_model_knows_it():
    sched = Schedule()
    x0 = torch.randn(4, 10)
    gen = sched.ddim(lambda x, t: x0, torch.randn(4, 10), num_steps=10)
    steps = []
    try:
        while True:
            steps.append(next(gen)[0])
    except StopIteration as stop:
        torch.testing.assert_close(stop.value, x0)
    assert steps == list(range(1, 11))
    assert 0.99 < float(sched.abar[0]) and float(sched.abar[-1]) < 1e-3


def test_conditions_stay_at_the_shots_at_zero_and_spread_with_diversity():
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(5, 16)
    scale = torch.ones(16)
    at_zero = perturbed_conditions(feats, 10, 0.0, scale, 0.1, g)
    assert torch.equal(at_zero, feats[torch.arange(10) % 5])
    spreads = []
    for d in (0.25, 0.5, 1.0):
        c = perturbed_conditions(feats, 400, d, scale, 0.1, torch.Generator().manual_seed(1))
        spreads.append(float((c - feats[torch.arange(400) % 5]).norm(dim=1).mean()))
    assert spreads[0] < spreads[1] < spreads[2]
    # without the isotropic part the moves lie in the span of the shots' own variation
    c = perturbed_conditions(feats, 50, 1.0, scale, 0.0, torch.Generator().manual_seed(2))
    moves = c - feats[torch.arange(50) % 5]
    basis = torch.linalg.svd(feats - feats.mean(0), full_matrices=False)[2][:4]
    torch.testing.assert_close(moves @ basis.T @ basis, moves, atol=1e-4, rtol=1e-4)
    blend = blended_conditions(feats, (1, 3), 5)
    torch.testing.assert_close(blend[0], feats[1])
    torch.testing.assert_close(blend[-1], feats[3])


def test_regulariser_gradient_reaches_the_denoiser_not_the_frozen_encoder(tiny2d):
    model = load_model(tiny2d["model"])
    den = model.denoiser.train().requires_grad_(True)
    torch.nn.init.normal_(den.w_out, std=0.02)
    x0 = model.normalise(init_params(model.spec, 4, torch.Generator().manual_seed(0)))
    cond = torch.randn(4, model.encoder.config.feature_dim)
    grads = {}
    for lam in (0.0, 0.1):
        den.zero_grad(set_to_none=True)
        loss, parts = diffusion_loss(model, den, Schedule(), x0, cond, torch.Generator().manual_seed(3),
                                     0.0, lam, 4, "fp32")
        loss.backward()
        grads[lam] = den.w_out.grad.clone()
    assert parts["reg"] > 0
    assert all(p.grad is None and not p.requires_grad for p in model.encoder.parameters())
    assert not torch.allclose(grads[0.0], grads[0.1])


def test_edm_weighting_fits_the_networks_own_part_equally_at_every_noise_level(tiny2d):
    model = load_model(tiny2d["model"])
    x0 = torch.randn(2000, model.mean.numel(), generator=torch.Generator().manual_seed(0))  # unit variance

    def losses(config: DenoiserConfig) -> dict[str, float]:
        den = Denoiser(token_layout(model.spec, config.token_numbers), 0, config)  # its head starts at zero: x̂0 is the skip alone
        m = dataclasses.replace(model, denoiser=den, encoder=None)
        return {w: diffusion_loss(m, den, Schedule(), x0, None, torch.Generator().manual_seed(3), 0.0, 0.0, 0,
                                  "fp32", weighting=w)[0].item() for w in ("edm", "x0")}

    # with the plain skip √ᾱ·x_t the network's target (x0 − √ᾱ·x_t)/√(1−ᾱ) has unit variance at
    # every t, so its loss is 1; the x0 error of the same prediction, 1 − ᾱ on average, is about half
    skip = losses(DenoiserConfig(width=32, depth=1, heads=2, prior_rank=0))
    assert skip["edm"] == pytest.approx(1.0, abs=0.03)
    assert skip["x0"] == pytest.approx(float((1 - Schedule().abar).mean()), abs=0.03)
    # without the skip the network is all of x̂0, and the two weightings agree
    plain = losses(DenoiserConfig(width=32, depth=1, heads=2, skip=False, prior_rank=0))
    assert plain["edm"] == plain["x0"]
    with pytest.raises(InputError, match="weighting"):
        drive(train(tiny2d["corpus"], tiny2d["root"] / "never.safetensors", tiny2d["encoder"],
                    dataclasses.replace(TINY_TRAIN, weighting="snr")))


def test_model_file_is_self_contained(tiny2d):
    model = load_model(tiny2d["model"])
    assert model.method == "equigen" and model.encoder is not None and model.spec == MNIST_SIREN
    assert model.meta["train"]["recipe"]["steps"] == TINY_TRAIN.steps
    assert model.meta["classes"]["target"] == ["ankle_boot", "bag"]
    assert model.feature_scale.shape == (32,)
    hd = load_model(tiny2d["hd"])
    assert hd.method == "hyperdiffusion" and hd.encoder is None
    # the fixture changed only the denoiser's size: the 2D domain's design stays
    config = model.denoiser.config
    assert (config.width, config.depth, config.token_numbers, config.skip) == (32, 2, 1024, False)
    with pytest.raises(InputError, match="no setting colour"):
        drive(train(tiny2d["corpus"], "x.safetensors", None, TrainConfig(method="hyperdiffusion",
                                                                           denoiser={"colour": 1})))


def test_train_resumes_from_its_checkpoint(tiny2d, tmp_path):
    out = tmp_path / "m.safetensors"
    gen = train(tiny2d["corpus"], out, tiny2d["encoder"], TINY_TRAIN)
    for event in gen:
        if event.stage == "train" and event.done == 12:
            gen.close()
            break
    assert out.with_name(out.name + ".ckpt").exists() and not out.exists()
    summary = drive(train(tiny2d["corpus"], out, tiny2d["encoder"], TINY_TRAIN))
    assert summary["steps"] == 20 and out.exists()
    with pytest.raises(InputError, match="needs --encoder"):
        drive(train(tiny2d["corpus"], tmp_path / "x.safetensors", None, TINY_TRAIN))


def test_adapt_and_sample_are_deterministic_and_cancellable(tiny2d):
    model = load_model(tiny2d["model"])
    before = {k: v.clone() for k, v in model.denoiser.state_dict().items()}
    shots = drive(load_shots(model, tiny2d["shots"]))
    assert shots.names == [p.name for p in tiny2d["shots"]]
    gen = adapt(model, shots, AdaptConfig(steps=50))
    for event in gen:
        if event.done == 3:
            gen.close()
            break
    assert all(torch.equal(before[k], v) for k, v in model.denoiser.state_dict().items())
    with pytest.raises(Cancelled):
        drive(adapt(model, shots, AdaptConfig(steps=50)), should_stop=lambda: True)
    adapted = drive(adapt(model, shots, AdaptConfig(steps=5)))
    assert adapted.shots.features.shape == (5, 32)
    assert adapted.meta["adapt"]["recipe"]["weighting"] == "edm"  # as the model was trained
    del model.meta["train"]["recipe"]["weighting"]  # a file from before the weighting was recorded
    assert trained_weighting(model) == "x0"
    assert not torch.equal(next(iter(adapted.denoiser.parameters())), next(iter(model.denoiser.parameters())))
    cfg = GenerateConfig(n=6, steps=8, seed=4)
    a = drive(sample(adapted, config=cfg))
    b = drive(sample(adapted, config=cfg))
    c = drive(sample(adapted, config=dataclasses.replace(cfg, seed=5)))
    assert a["seq.0.weight"].shape == (6, 32, 2)
    assert all(torch.equal(a[k], b[k]) for k in a) and not torch.equal(a["seq.1.weight"], c["seq.1.weight"])
    with pytest.raises(Cancelled):
        drive(sample(adapted, config=cfg), should_stop=lambda: True)
    events = list(_events(sample(adapted, config=cfg)))
    assert [e.done for e in events] == list(range(1, 9))


def _events(gen):
    try:
        while True:
            yield next(gen)
    except StopIteration:
        return


def test_methods_and_user_errors(tiny2d, tmp_path):
    model = load_model(tiny2d["model"])
    shots = drive(load_shots(model, tiny2d["shots"][:2]))
    adapted = drive(adapt(model, shots, AdaptConfig(steps=2)))
    at_shots = drive(sample(adapted, config=GenerateConfig(n=4, method="shots-noise", diversity=0.0)))
    torch.testing.assert_close(at_shots["seq.1.weight"][2], shots.params["seq.1.weight"][0])
    for method in ("equigen", "equigen-no-perturb"):
        drive(sample(adapted, config=GenerateConfig(n=2, steps=3, method=method)))
    with pytest.raises(InputError, match="hyperdiffusion"):
        drive(sample(adapted, config=GenerateConfig(n=2, method="hyperdiffusion")))
    hd = load_model(tiny2d["hd"])
    hd_adapted = drive(adapt(hd, drive(load_shots(hd, tiny2d["shots"][:2])), AdaptConfig(steps=2)))
    out = drive(sample(hd_adapted, config=GenerateConfig(n=2, steps=3, method="hyperdiffusion")))
    assert out["seq.0.weight"].shape[0] == 2
    own = drive(sample(hd_adapted, config=GenerateConfig(n=2, steps=3)))  # no method: the file's own
    torch.testing.assert_close(own["seq.0.weight"], out["seq.0.weight"])
    with pytest.raises(InputError, match="trained as 'hyperdiffusion'"):
        drive(sample(hd_adapted, config=GenerateConfig(n=2, method="equigen")))
    with pytest.raises(InputError, match="cannot blend"):
        drive(sample(hd_adapted, config=GenerateConfig(n=2, method="hyperdiffusion", blend=(0, 1))))
    with pytest.raises(InputError, match="no shots"):
        drive(load_shots(model, []))
    import trimesh

    mesh = tmp_path / "box.obj"
    trimesh.creation.box().export(mesh)
    with pytest.raises(InputError, match="makes images"):
        drive(load_shots(model, [mesh]))
    with pytest.raises(InputError, match="needs shots"):
        drive(sample(model, config=GenerateConfig(n=2)))


def test_inr_shots_from_another_basin_are_refitted_and_own_ones_kept(tiny2d, tmp_path):
    from engine.fit.images import fit_images
    from engine.functional import init_from_seed
    from engine.inr_io import INR, save_inr

    model = load_model(tiny2d["model"])
    frames = np.stack([np.asarray(Image.open(p), dtype=np.float32) / 255 for p in tiny2d["shots"][:2]])
    other = drive(fit_images(frames, init_from_seed(MNIST_SIREN, 123)))
    foreign = tmp_path / "foreign.safetensors"
    save_inr(foreign, INR.from_batch(MNIST_SIREN, other.params, 0, {}))
    own = tmp_path / "own.safetensors"
    shots = drive(load_shots(model, [foreign]))
    save_inr(own, INR.from_batch(MNIST_SIREN, shots.params, 0, {"init_sha": model.init_sha}))
    refit = shots.params["seq.0.weight"][0]
    # re-fitted from the model's init: close to it, far from the foreign init
    start = model.init["seq.0.weight"][0]
    assert (refit - start).norm() < (other.params["seq.0.weight"][0] - start).norm()
    kept = drive(load_shots(model, [own]))
    assert torch.equal(kept.params["seq.0.weight"][0], refit)


def test_cli_train_adapt_generate_2d(tiny2d, tmp_path, capsys):
    from engine.cli import main

    model = tmp_path / "m.safetensors"
    assert main(["train", "--data", str(tiny2d["corpus"]), "--encoder", str(tiny2d["encoder"]),
                 "--out", str(model), "--steps", "4", "--width", "32", "--depth", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["steps"] == 4
    # 2D models default to the design measured to work on glyphs: whole-tensor tokens, plain x0
    trained = load_model(model)
    assert not trained.denoiser.config.skip and not trained.denoiser.has_prior
    assert trained.layout.num_tokens == 2 * trained.spec.num_layers
    assert trained.meta["train"]["recipe"]["denoiser"]["max_token"] == 1024
    adapted = tmp_path / "a.safetensors"
    assert main(["adapt", "--model", str(model), *map(str, tiny2d["shots"]), "--out", str(adapted),
                 "--steps", "3", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["steps"] == 3
    out = tmp_path / "gen"
    assert main(["generate", "--model", str(adapted), "-n", "3", "--diversity", "0.7", "--steps", "5",
                 "--out", str(out), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["n"] == 3 and len(r["samples"]) == 3
    for s in r["samples"]:
        im = np.asarray(Image.open(s["path"]))
        assert im.shape == (256, 256) and im.dtype == np.uint8
    assert main(["generate", "--model", str(adapted), "-n", "2", "--format", "obj", "--out", str(out)]) == 2
    assert "mesh format" in capsys.readouterr().err
    assert main(["adapt", "--model", str(tiny2d["corpus"] / "init.safetensors"), str(tiny2d["shots"][0]),
                 "--out", str(tmp_path / "x.safetensors")]) == 2
    assert "not an EquiGen model file" in capsys.readouterr().err
    assert main(["adapt", "--model", str(model), str(tiny2d["shots"][0]), "--out", str(tmp_path / "x.safetensors"),
                 "--steps", "0"]) == 2
    assert "adaptation steps must be at least 1" in capsys.readouterr().err
    assert not (tmp_path / "x.safetensors").exists()


def test_cli_generate_adapts_to_given_shots_blends_and_takes_the_files_method(tiny2d, tmp_path, capsys):
    from engine.cli import main
    from engine.inr_io import load_inr

    out = tmp_path / "blend"
    shots = [str(p) for p in tiny2d["shots"][:3]]
    assert main(["generate", "--model", str(tiny2d["model"]), "--shots", *shots, "-n", "3", "--blend", "0", "2",
                 "--steps", "3", "--format", "safetensors", "--out", str(out), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["method"] == "equigen" and len(r["samples"]) == 3
    meta = load_inr(r["samples"][1]["path"]).meta
    # one schema for every front door (the studio's session writes the same keys)
    assert {k: meta[k] for k in ("generated_by", "model", "seed", "index")} == {
        "generated_by": "equigen", "model": tiny2d["model"].name, "seed": 0, "index": 1}
    assert meta["shots"] == [Path(s).name for s in shots] and "init_sha" in meta
    # a HyperDiffusion file samples as HyperDiffusion without --method
    assert main(["generate", "--model", str(tiny2d["hd"]), "-n", "2", "--steps", "3", "--out",
                 str(tmp_path / "hd"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["method"] == "hyperdiffusion"
    assert main(["generate", "--model", str(tiny2d["hd"]), "-n", "2", "--method", "equigen",
                 "--out", str(tmp_path / "x")]) == 2
    assert "trained as 'hyperdiffusion'" in capsys.readouterr().err
    assert main(["generate", "--model", str(tiny2d["model"]), "-n", "2", "--guidance", "nan",
                 "--out", str(tmp_path / "x")]) == 2
    assert "guidance" in capsys.readouterr().err


@pytest.mark.slow
def test_tiny_3d_train_adapt_generate_gives_watertight_meshes(tmp_path):
    import trimesh

    from engine.diffusion.outputs import write_samples

    corpus = tmp_path / "corpus"
    drive(build_corpus(BuildConfig(kind="shapes3d", families=("chair", "mug"), count=2,
                                   target_classes=("mug",)), corpus))
    enc = tmp_path / "enc.safetensors"
    drive(pretrain(corpus, enc, PretrainConfig(epochs=1, batch_size=2, encoder=EncoderConfig(
        width=4, depth=2, feature_dim=16, proj_dim=8))))
    model_path = tmp_path / "model.safetensors"
    drive(train(corpus, model_path, enc, dataclasses.replace(TINY_TRAIN, steps=10, batch_size=2, reg_items=1)))
    model = load_model(model_path)
    assert model.spec == HD_OCCUPANCY and model.meta["normalisation"] == "tensor"
    assert model.denoiser.config.skip and model.denoiser.has_prior  # the 3D design
    shot = tmp_path / "cup.obj"
    trimesh.creation.cylinder(0.3, 0.6).export(shot)
    adapted = drive(adapt(model, drive(load_shots(model, [shot])), AdaptConfig(steps=3, batch_size=2)))
    save_model(tmp_path / "adapted.safetensors", adapted)
    params = drive(sample(load_model(tmp_path / "adapted.safetensors"), config=GenerateConfig(n=2, steps=4)))
    records = drive(write_samples(HD_OCCUPANCY, params, tmp_path / "out", "obj", [{}, {}], resolution=48))
    for r in records:
        assert r["path"] is not None and r["watertight"]
        assert trimesh.load(r["path"], force="mesh").is_watertight
    at_shot = drive(sample(adapted, config=GenerateConfig(n=1, method="shots-noise", diversity=0.0)))
    rec = drive(write_samples(HD_OCCUPANCY, at_shot, tmp_path / "noise", "ply", [{}], resolution=48))[0]
    assert rec["watertight"] and rec["pieces"] == 1


@pytest.mark.slow
def test_pretrain_and_train_run_data_parallel_under_torchrun(tiny2d, tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    torchrun = Path(sys.executable).parent / "torchrun"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    common = [str(torchrun), "--nproc_per_node=2", "--master_port=29541", "-m", "engine", "--threads", "1"]
    enc = tmp_path / "enc.safetensors"
    r = subprocess.run([*common, "pretrain", "--data", str(tiny2d["corpus"]), "--out", str(enc), "--epochs", "1",
                        "--batch-size", "16", "--width", "4", "--depth", "1", "--json"],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads(r.stdout.strip().splitlines()[-1])["world_size"] == 2
    out = tmp_path / "m.safetensors"
    r = subprocess.run([*common, "train", "--data", str(tiny2d["corpus"]), "--encoder", str(enc), "--out", str(out),
                        "--steps", "3", "--batch-size", "8", "--width", "32", "--depth", "1", "--json"],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["world_size"] == 2 and summary["steps"] == 3
    assert load_model(out).meta["train"]["summary"]["world_size"] == 2


def test_normalisation_floors_weights_that_never_move(tiny2d):
    from engine.diffusion.train import STD_FLOOR, normalisation_scale

    std = torch.tensor([1e-9, 0.5, 1.0, 2.0, 3.0])  # median 1
    assert torch.allclose(normalisation_scale(std), torch.tensor([STD_FLOOR, 0.5, 1.0, 2.0, 3.0]))
    model = load_model(tiny2d["model"])
    assert model.meta["normalisation"] == "element"
    assert float(model.std.min()) >= STD_FLOOR * float(model.std.median()) * (1 - 1e-6)


def test_tensor_normalisation_keeps_unseen_changes_in_range():
    from engine.diffusion.train import normalisation_scale, resolve_normalisation

    # Two tensors: the first has one element that never moved on the source split.
    std = torch.tensor([1e-9, 1.0, 1.0, 1.0, 4.0, 4.0])
    tensor_of = torch.tensor([0, 0, 0, 0, 1, 1])
    scale = normalisation_scale(std, tensor_of, "tensor")
    assert torch.allclose(scale, torch.tensor([0.75**0.5] * 4 + [4.0] * 2))
    # A new class moves the frozen element as much as the others: per tensor it stays ordinary.
    change = torch.tensor([1.0, 1.0, 1.0, 1.0, 4.0, 4.0])
    assert float((change / scale).abs().max()) < 1.2
    assert float((change / normalisation_scale(std)).abs().max()) == pytest.approx(10.0)  # floored at 0.1
    assert resolve_normalisation("auto", HD_OCCUPANCY) == "tensor"
    assert resolve_normalisation("auto", MNIST_SIREN) == "element"
    with pytest.raises(InputError, match="unknown normalisation"):
        resolve_normalisation("layer", MNIST_SIREN)
