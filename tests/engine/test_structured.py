"""The structured 3D weight space, the diffusion process over codes and its denoiser."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from engine.diffusion.code_denoiser import CodeDenoiser, CodeDenoiserConfig
from engine.diffusion.prior import fit_prior
from engine.diffusion.process import DiffusionProcess, ProcessConfig
from engine.errors import InputError
from engine.fit.meshes import MeshFitConfig, normalise_mesh, sample_occupancy
from engine.functional import forward
from engine.progress import drive
from engine.spec import HD_OCCUPANCY, INRSpec
from engine.weightspace.structured import (
    BaseConfig, CodeFitConfig, SharedBase, code_iou, fit_codes, fit_together, load_base, save_base, train_base,
)

SMALL = INRSpec(name="small-occupancy", in_dim=3, hidden=(32, 32), activation="relu", posenc_freqs=2,
                output="occupancy_logit", domain=(-0.5, 0.5), param_prefix="layers")


def test_a_code_is_a_complete_inr_of_the_spec_and_comes_back_from_it():
    base = SharedBase(HD_OCCUPANCY, generator=torch.Generator().manual_seed(0))
    codes = torch.randn(3, base.code_dim, generator=torch.Generator().manual_seed(1)) * 0.1
    params = base.full_params(codes)
    assert {k: tuple(v.shape[1:]) for k, v in params.items()} == dict(HD_OCCUPANCY.param_shapes())
    pts = torch.rand(200, 3) - 0.5
    assert torch.allclose(forward(HD_OCCUPANCY, params, pts)[..., 0], base.outputs(codes, pts), atol=1e-5)
    assert torch.allclose(base.codes_of(params), codes, atol=1e-6)
    # per shape: hidden biases, readout and output bias (3·128 + 128 + 1), rank-16 factors
    assert base.code_dim == 513 + 16 * (27 + 128 + 128)


def test_base_file_round_trips_and_refuses_other_files(tmp_path):
    base = SharedBase(SMALL, rank=4, generator=torch.Generator().manual_seed(0))
    path = save_base(tmp_path / "base.safetensors", base, {"corpus": "test"})
    again, meta = load_base(path)
    codes = torch.randn(2, base.code_dim) * 0.1
    pts = torch.rand(50, 3) - 0.5
    assert torch.equal(again.outputs(codes, pts), base.outputs(codes, pts))
    assert meta == {"corpus": "test"}
    (tmp_path / "junk.safetensors").write_bytes(b"not a file")
    with pytest.raises(InputError, match="unreadable"):
        load_base(tmp_path / "junk.safetensors")
    with pytest.raises(InputError, match="no such"):
        load_base(tmp_path / "missing.safetensors")


def _samples(meshes):
    config = MeshFitConfig(surface_points=3000, fine_points=1000, uniform_points=2000, eval_points=4000)
    s = [sample_occupancy(normalise_mesh(m), SMALL, config, seed=i) for i, m in enumerate(meshes)]
    return (torch.from_numpy(np.stack([x.points for x in s])), torch.from_numpy(np.stack([x.labels for x in s])),
            torch.from_numpy(np.stack([x.eval_points for x in s])), torch.from_numpy(np.stack([x.eval_labels for x in s])))


def test_a_tiny_base_learns_its_shapes_and_new_shapes_fit_into_it_by_their_code_alone():
    shapes = [trimesh.creation.box((0.6, 0.3 + 0.1 * i, 0.4)) for i in range(3)]
    shapes += [trimesh.creation.cylinder(0.2 + 0.05 * i, 0.8) for i in range(3)]
    pts, lab, ev, evl = _samples(shapes)
    config = BaseConfig(steps=300, shapes_per_step=6, points_per_shape=512, lr=3e-3, warmup=20)
    base, codes, summary = drive(train_base(SMALL, pts, lab, config))
    assert codes.shape == (6, base.code_dim)
    assert float(code_iou(base, codes, ev, evl).mean()) > 0.8
    # a shape it never saw (a box of other proportions), fitted with the shared part frozen
    new_pts, new_lab, new_ev, new_evl = _samples([trimesh.creation.box((0.5, 0.45, 0.5))])
    frozen = {k: v.clone() for k, v in base.state().items()}
    z = drive(fit_codes(base, new_pts, new_lab, CodeFitConfig(steps=150, points_per_shape=512)))
    assert all(torch.equal(v, base.state()[k]) for k, v in frozen.items())
    assert float(code_iou(base, z, new_ev, new_evl)[0]) > float(code_iou(base, torch.zeros_like(z), new_ev, new_evl)[0])
    assert float(code_iou(base, z, new_ev, new_evl)[0]) > 0.8
    # shapes of one kind fitted together end nearer each other than fitted alone, as well fitted
    two_pts, two_lab, two_ev, two_evl = _samples([trimesh.creation.box((0.5, 0.45, 0.5)),
                                                  trimesh.creation.box((0.55, 0.4, 0.45))])
    cfg = CodeFitConfig(steps=150, points_per_shape=512)
    alone = drive(fit_codes(base, two_pts, two_lab, cfg))
    together = drive(fit_together(base, two_pts, two_lab, cfg))
    assert (together[0] - together[1]).norm() < (alone[0] - alone[1]).norm()
    assert code_iou(base, together, two_ev, two_evl).min() > 0.8


def test_process_skip_is_the_wiener_filter_and_ddim_ends_at_the_prediction():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(400, 6, generator=g) * torch.tensor([3.0, 2.0, 1.0, 0.5, 0.2, 0.1])
    proc = DiffusionProcess(6, ProcessConfig(prior_rank=6))
    proc.set_prior(fit_prior(x, 6))
    # with a zero network, x̂0 is E[x0 | x_t]: nearly x_t / √ᾱ at low noise, the mean at high noise
    t_lo, t_hi = torch.tensor([0]), torch.tensor([999])
    x_t = proc.add_noise(x[:1], t_lo, torch.zeros(1, 6))
    assert torch.allclose(proc.predict_x0(torch.zeros(1, 6), x_t, t_lo), x[:1], atol=0.02)
    far = proc.predict_x0(torch.zeros(1, 6), torch.randn(1, 6, generator=g), t_hi)
    assert torch.allclose(far, x.mean(0, keepdim=True), atol=0.05)
    # the network's share is √(1 − ᾱ): EDM weights make it count equally at every level
    t = torch.tensor([10, 500])
    assert torch.allclose(proc.output_scale(t) ** 2 * proc.loss_weight(t), torch.ones(2))
    ts = proc.timesteps(5)
    assert ts[0] == 999 and ts[-1] == 0
    x0_hat = torch.randn(2, 6, generator=g)
    assert torch.equal(proc.step(torch.randn(2, 6), x0_hat, 0, None), x0_hat)
    # one DDIM step keeps x̂0 and the implied noise: x_next = √ᾱ' x̂0 + √(1−ᾱ') ε̂
    a, a2 = proc.schedule.abar[500], proc.schedule.abar[250]
    eps = torch.randn(2, 6, generator=g)
    x500 = a.sqrt() * x0_hat + (1 - a).sqrt() * eps
    assert torch.allclose(proc.step(x500, x0_hat, 500, 250), a2.sqrt() * x0_hat + (1 - a2).sqrt() * eps, atol=1e-5)


def test_widening_the_prior_spreads_the_skip_along_its_directions_only():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 4, generator=g) * torch.tensor([2.0, 1.0, 0.3, 0.3])
    proc = DiffusionProcess(4, ProcessConfig(prior_rank=2))
    proc.set_prior(fit_prior(x, 2))
    x_t = torch.randn(1, 4, generator=g)
    t = torch.tensor([600])
    narrow, wide = proc.skip(x_t, t), proc.skip(x_t, t, widen=2.0)
    # widening trusts x_t more along the principal directions: the answer moves away from the mean
    mean = proc.prior.mean
    assert float((wide - mean).norm()) > float((narrow - mean).norm())


def test_code_denoiser_starts_at_zero_and_honours_condition_dropout():
    net = CodeDenoiser(10, 4, CodeDenoiserConfig(width=32, depth=2))
    x, t = torch.randn(3, 10), torch.tensor([0, 10, 999])
    assert torch.equal(net(x, t, torch.randn(3, 4)), torch.zeros(3, 10))
    torch.nn.init.normal_(net.out.weight)
    for block in net.blocks:
        torch.nn.init.normal_(block.modulation.weight, std=0.1)
    cond = torch.randn(3, 4)
    dropped = net(x, t, cond, drop=torch.ones(3, dtype=torch.bool))
    assert torch.allclose(dropped, net(x, t, None))
    assert not torch.allclose(net(x, t, cond), dropped)
    assert CodeDenoiser(10, 0)(x, t).shape == (3, 10)


def test_base_training_resumes_from_its_checkpoint_to_the_same_result(tmp_path):
    pts, lab, _, _ = _samples([trimesh.creation.box((0.6, 0.4, 0.3)), trimesh.creation.icosphere(radius=0.3)])
    config = BaseConfig(steps=40, shapes_per_step=1, points_per_shape=256, warmup=5)
    whole, whole_codes, _ = drive(train_base(SMALL, pts, lab, config))
    ckpt = tmp_path / "base.ckpt"
    run = train_base(SMALL, pts, lab, config, checkpoint=ckpt, checkpoint_every=20)
    for event in run:
        if event.done >= 25:  # stop after the step-20 checkpoint: steps 21-25 are lost
            run.close()
            break
    resumed, codes, _ = drive(train_base(SMALL, pts, lab, config, checkpoint=ckpt, checkpoint_every=20))
    assert torch.equal(codes, whole_codes)
    assert all(torch.equal(v, whole.state()[k]) for k, v in resumed.state().items())
    with pytest.raises(InputError, match="another run"):
        drive(train_base(SMALL, pts, lab, BaseConfig(steps=41), checkpoint=ckpt))


def _tiny_generator_inputs():
    from engine.encoder.model import EncoderConfig, WeightEncoder

    base = SharedBase(SMALL, rank=4, generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(1)
    codes = torch.randn(24, base.code_dim, generator=g) * 0.05
    codes[:12, :32] += 0.3  # two "families"
    encoder = WeightEncoder(SMALL, EncoderConfig(feature_dim=16, probe_dim=16, probe_lattice=4, proj_dim=8))
    return base, codes, encoder


def test_code_generator_trains_adapts_and_samples_complete_inrs_end_to_end(tmp_path):
    from engine.diffusion.code_model import load_code_model
    from engine.diffusion.code_sample import sample_codes
    from engine.diffusion.code_train import CodeAdaptConfig, CodeTrainConfig, adapt_codes, train_codes
    from engine.diffusion.generate import GenerateConfig

    base, codes, encoder = _tiny_generator_inputs()
    config = CodeTrainConfig(steps=30, batch_size=8, denoiser=CodeDenoiserConfig(width=32, depth=2),
                             process=ProcessConfig(prior_rank=4), checkpoint_every=10)
    model = drive(train_codes(base, codes, tmp_path / "m.safetensors", encoder, config))
    again = load_code_model(tmp_path / "m.safetensors")
    x_t, t = torch.randn(2, base.code_dim), torch.tensor([5, 500])
    assert torch.allclose(again.denoiser(x_t, t, torch.zeros(2, 16)), model.denoiser(x_t, t, torch.zeros(2, 16)), atol=1e-5)
    assert torch.allclose(again.process.prior.basis, model.process.prior.basis)
    assert not (tmp_path / "m.safetensors.ckpt").exists()

    before = {k: v.clone() for k, v in again.denoiser.state_dict().items()}
    adapted = drive(adapt_codes(again, ["a", "b", "c"], codes[12:15], CodeAdaptConfig(steps=5, batch_size=6)))
    assert all(torch.equal(v, again.denoiser.state_dict()[k]) for k, v in before.items())  # the original stays
    assert adapted.shots.features.shape == (3, 16)
    for method in ("equigen", "equigen-no-perturb", "shots-noise"):
        out = drive(sample_codes(adapted, GenerateConfig(n=4, steps=5, method=method, diversity=0.5)))
        assert out.shape == (4, base.code_dim) and torch.isfinite(out).all()
        params = adapted.base.full_params(out)
        assert {k: tuple(v.shape[1:]) for k, v in params.items()} == dict(SMALL.param_shapes())
    same = drive(sample_codes(adapted, GenerateConfig(n=4, steps=5, seed=3)))
    assert torch.equal(same, drive(sample_codes(adapted, GenerateConfig(n=4, steps=5, seed=3))))
    with pytest.raises(InputError, match="hyperdiffusion"):
        drive(sample_codes(adapted, GenerateConfig(n=2, steps=2, method="hyperdiffusion")))
    path = tmp_path / "adapted.safetensors"
    from engine.diffusion.code_model import save_code_model
    save_code_model(path, adapted, half=True)
    back = load_code_model(path)
    assert back.shots.names == ["a", "b", "c"] and torch.equal(back.shots.codes, adapted.shots.codes)


def test_training_stops_at_its_time_limit_resumes_and_refuses_another_runs_checkpoint(tmp_path):
    import dataclasses

    from engine.diffusion.code_model import load_code_model
    from engine.diffusion.code_train import CodeTrainConfig, train_codes

    base, codes, encoder = _tiny_generator_inputs()
    out = tmp_path / "m.safetensors"
    config = CodeTrainConfig(steps=40, batch_size=8, denoiser=CodeDenoiserConfig(width=32, depth=1),
                             process=ProcessConfig(prior_rank=4), checkpoint_every=10, max_minutes=1e-9)
    model = drive(train_codes(base, codes, out, encoder, config))
    train = model.meta["train"]
    assert train["stopped_by_time_limit"] and train["steps"] < 40
    assert (tmp_path / "m.safetensors.ckpt").exists()  # kept, so the same command finishes the job
    with pytest.raises(InputError, match="another run"):
        drive(train_codes(base, codes, out, encoder, dataclasses.replace(config, lr=1e-3)))
    done = drive(train_codes(base, codes, out, encoder, dataclasses.replace(config, max_minutes=None)))
    assert done.meta["train"]["steps"] == 40 and not done.meta["train"]["stopped_by_time_limit"]
    assert load_code_model(out).meta["train"]["steps"] == 40 and not (tmp_path / "m.safetensors.ckpt").exists()


def test_guidance_scale_one_samples_exactly_as_unguided(tmp_path):
    from engine.diffusion.code_sample import sample_codes
    from engine.diffusion.code_train import CodeAdaptConfig, CodeTrainConfig, adapt_codes, train_codes
    from engine.diffusion.generate import GenerateConfig

    base, codes, encoder = _tiny_generator_inputs()
    config = CodeTrainConfig(steps=5, batch_size=8, denoiser=CodeDenoiserConfig(width=32, depth=1),
                             process=ProcessConfig(prior_rank=4))
    model = drive(train_codes(base, codes, tmp_path / "m.safetensors", encoder, config))
    adapted = drive(adapt_codes(model, ["a", "b"], codes[:2], CodeAdaptConfig(steps=2)))
    one = drive(sample_codes(adapted, GenerateConfig(n=3, steps=4, seed=2, guidance=1.0)))
    # a scale a hair above 1 runs the guided (conditional + unconditional) pass: u + s·(c − u) → c
    barely = drive(sample_codes(adapted, GenerateConfig(n=3, steps=4, seed=2, guidance=1.0 + 1e-7)))
    torch.testing.assert_close(one, barely, atol=1e-4, rtol=1e-4)
    two = drive(sample_codes(adapted, GenerateConfig(n=3, steps=4, seed=2, guidance=2.0)))
    assert not torch.allclose(one, two)


def test_hyperdiffusion_in_the_code_space_needs_no_encoder(tmp_path):
    from engine.diffusion.code_sample import sample_codes
    from engine.diffusion.code_train import CodeAdaptConfig, CodeTrainConfig, adapt_codes, train_codes
    from engine.diffusion.generate import GenerateConfig

    base, codes, _ = _tiny_generator_inputs()
    config = CodeTrainConfig(method="hyperdiffusion", steps=10, batch_size=8,
                             denoiser=CodeDenoiserConfig(width=32, depth=1), process=ProcessConfig(prior_rank=4))
    model = drive(train_codes(base, codes, tmp_path / "hd.safetensors", None, config))
    assert model.encoder is None and model.denoiser.cond_dim == 0
    adapted = drive(adapt_codes(model, ["x", "y"], codes[:2], CodeAdaptConfig(steps=3)))
    out = drive(sample_codes(adapted, GenerateConfig(n=3, steps=4, method="hyperdiffusion", diversity=1.0)))
    assert out.shape == (3, base.code_dim)
    with pytest.raises(InputError, match="encoder"):
        drive(train_codes(base, codes, tmp_path / "x.safetensors", None, CodeTrainConfig(steps=1)))


@pytest.mark.slow
def test_tiny_structured_corpus_to_generated_meshes_through_the_cli(tmp_path, capsys):
    """The whole 3D design on a tiny corpus: build → pretrain → train → adapt on a mesh → generate."""
    import json

    from engine.cli import main
    from engine.data.build import BuildConfig
    from engine.diffusion.code_model import load_code_model
    from engine.diffusion.code_train import CodeAdaptConfig
    from engine.encoder.model import EncoderConfig
    from engine.encoder.pretrain import PretrainConfig, pretrain
    from engine.weightspace.corpus import StructuredRecipe, build_structured_corpus, load_structured

    corpus = tmp_path / "corpus"
    recipe = StructuredRecipe(
        samples=MeshFitConfig(surface_points=3000, fine_points=1000, uniform_points=2000, eval_points=2000),
        base=BaseConfig(rank=4, steps=80, shapes_per_step=4, points_per_shape=512, warmup=10),
        fit=CodeFitConfig(steps=40, points_per_shape=512), refit_source=True)
    summary = drive(build_structured_corpus(
        BuildConfig(kind="shapes3d", families=("chair", "mug", "table"), count=2, target_classes=("mug",),
                    init_mode="structured"), corpus, recipe))
    assert summary["status"] == "complete" and summary["num_inrs"] == 6 and summary["init_mode"] == "structured"
    base, codes, rows = load_structured(corpus)
    assert codes.shape == (4, base.code_dim) and {r["class"] for r in rows} == {"chair", "table"}
    # with refit_source, source codes are refitted the way shots are (per class, base frozen)
    from engine.data.store import CorpusPaths, read_jsonl, read_manifest
    from engine.weightspace.corpus import load_samples
    from engine.weightspace.structured import fit_together

    paths = CorpusPaths(corpus)
    samples = load_samples(paths, [0], INRSpec.from_dict(read_manifest(corpus)["spec"]))
    plan = read_jsonl(paths.plan)
    chairs = [i for i, g in enumerate(samples["plan_index"].tolist()) if plan[g]["class"] == "chair"]
    at = torch.tensor(chairs)
    refit = drive(fit_together(base, samples["points"][at], samples["labels"][at], recipe.fit))
    assert torch.allclose(codes[[i for i, r in enumerate(rows) if r["class"] == "chair"]], refit, atol=1e-5)
    # held-out items are stored as codes too, and their codes are the INRs in the shards
    from engine.data.dataset import INRDataset

    _, target_codes, target_rows = load_structured(corpus, split="target")
    held = INRDataset(corpus, split="target")
    assert [r["item"] for r in target_rows] == [r["item"] for r in held.rows]
    stored = held.stacked()
    made = base.full_params(target_codes)
    assert all(torch.allclose(made[k], stored[k], atol=1e-5) for k in stored)
    # a resumed build changes nothing
    again = drive(build_structured_corpus(BuildConfig(kind="shapes3d", families=("chair", "mug", "table"), count=2,
                                                      target_classes=("mug",), init_mode="structured"), corpus, recipe))
    assert again["num_inrs"] == 6
    enc = tmp_path / "enc.safetensors"
    drive(pretrain(corpus, enc, PretrainConfig(epochs=1, batch_size=2, encoder=EncoderConfig(
        width=4, depth=2, feature_dim=16, proj_dim=8, probe_lattice=4, probe_dim=16))))
    model = tmp_path / "model.safetensors"
    assert main(["train", "--data", str(corpus), "--encoder", str(enc), "--out", str(model), "--steps", "8",
                 "--batch-size", "4", "--width", "32", "--depth", "1", "--prior-rank", "3", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["steps"] == 8
    shot = tmp_path / "cup.obj"
    trimesh.creation.cylinder(0.3, 0.6).export(shot)
    adapted = tmp_path / "adapted.safetensors"
    assert main(["adapt", "--model", str(model), str(shot), "--out", str(adapted), "--steps", "3", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["steps"] == 3
    assert load_code_model(adapted).shots.names == ["cup.obj"]
    out = tmp_path / "gen"
    assert main(["generate", "--model", str(adapted), "-n", "2", "--steps", "4", "--method", "shots-noise",
                 "--diversity", "0", "--resolution", "48", "--out", str(out), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["n"] == 2 and r["watertight"] == 2
    assert all(trimesh.load(s["path"], force="mesh").is_watertight for s in r["samples"])
    assert main(["generate", "--model", str(adapted), "-n", "2", "--steps", "4", "--format", "safetensors",
                 "--out", str(tmp_path / "inrs"), "--json"]) == 0
    files = [s["path"] for s in json.loads(capsys.readouterr().out)["samples"]]
    # a generated INR file is a complete INR of the spec, and the model takes it back exactly
    from engine.diffusion.code_shots import base_codes
    from engine.inr_io import load_inr
    inr = load_inr(files[0])
    assert inr.spec == HD_OCCUPANCY and base_codes(load_code_model(adapted).base, inr) is not None
    # the studio's session drives the same model: adapt on the shots once, then sample
    from engine.diffusion.generate import GenerateConfig
    from engine.diffusion.session import GenerationSession

    session = GenerationSession(model, adapt_config=CodeAdaptConfig(steps=2))
    previews = drive(session.generate([shot, files[0]], GenerateConfig(n=2, steps=3), thumbnail_resolution=32))
    assert len(previews) == 2 and session.info.domain == "3d" and session.is_adapted_to([shot, files[0]])
    assert all(p.inr.meta["base_sha"] == session.model.base_sha for p in previews)
