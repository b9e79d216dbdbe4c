"""Weight-space symmetries and the equivariant encoder: exact properties, and a small
pre-training run that checkpoints, resumes and evaluates."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from engine.data.build import BuildConfig, build_corpus
from engine.data.dataset import INRDataset
from engine.encoder.evaluate import evaluate_encoder
from engine.encoder.layers import EquivariantLayer
from engine.encoder.model import EncoderConfig, WeightEncoder, load_encoder
from engine.encoder.pretrain import PretrainConfig, epoch_order, nt_xent, pretrain
from engine.functional import forward, image_grid, init_from_seed, init_params, volume_grid
from engine.progress import drive
from engine.spec import HD_OCCUPANCY, MNIST_SIREN
from engine.weightspace import symmetry


SPECS = [MNIST_SIREN, HD_OCCUPANCY, dataclasses.replace(MNIST_SIREN, name="siren-48x3", hidden=(48, 48, 48))]


def _coords(spec):
    return image_grid(28) if spec.in_dim == 2 else volume_grid(12, spec.domain)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_random_permutations_preserve_the_function(spec):
    g = torch.Generator().manual_seed(0)
    p = init_params(spec, 4, g)
    q = symmetry.permute_hidden(spec, p, symmetry.random_permutations(spec, 4, g))
    assert any(not torch.equal(p[k], q[k]) for k in p)
    x = _coords(spec)
    torch.testing.assert_close(forward(spec, q, x), forward(spec, p, x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("spec", SPECS[:2], ids=lambda s: s.name)
def test_canonicalisation_lowers_tv_keeps_the_function_and_is_canonical(spec, fitted_shape, fashion):
    if spec.is_3d:
        p = fitted_shape[0].batched()
    else:
        from engine.fit.images import fit_images

        p = drive(fit_images(fashion[:3], init_from_seed(spec, 0))).params
    c = symmetry.canonicalise(spec, p)
    assert (symmetry.total_variation(spec, c) < 0.8 * symmetry.total_variation(spec, p)).all()
    x = _coords(spec)
    ref = forward(spec, p, x)
    torch.testing.assert_close(forward(spec, c, x), ref, atol=1e-3 * float(ref.abs().max()), rtol=1e-4)
    shuffled = symmetry.permute_hidden(spec, p, symmetry.random_permutations(spec, len(c[next(iter(c))])))
    again = symmetry.canonicalise(spec, shuffled)
    assert all(torch.allclose(again[k], c[k]) for k in c)


def test_path_solver_finds_the_line():
    rng = torch.Generator().manual_seed(3)
    pts = torch.rand(40, generator=rng).sort().values[torch.randperm(40, generator=rng)]
    dist = (pts[:, None] - pts[None, :]).abs().double().numpy()
    path = symmetry.shortest_hamiltonian_path(dist)
    assert sorted(path.tolist()) == list(range(40))
    length = dist[path[:-1], path[1:]].sum()
    assert length == pytest.approx(float(pts.max() - pts.min()), rel=1e-9)  # optimal: sorted order


def test_geometric_augmentations_are_exact():
    spec = MNIST_SIREN
    p = init_from_seed(spec, 1, batch=2)
    x = image_grid(28)
    t = torch.tensor([[0.2, -0.1], [0.0, 0.3]])
    moved = symmetry.translate_input(spec, p, t)
    torch.testing.assert_close(forward(spec, moved, x), forward(spec, p, (x[None] + t[:, None]).contiguous()), atol=1e-4, rtol=1e-4)
    r = symmetry.rotation_2d(torch.tensor([0.5, -1.0]))
    turned = symmetry.rotate_input(spec, p, r)
    rx = torch.einsum("bij,nj->bni", r, x)
    torch.testing.assert_close(forward(spec, turned, x), forward(spec, p, rx), atol=1e-4, rtol=1e-4)
    with pytest.raises(Exception, match="raw coordinates"):
        symmetry.translate_input(HD_OCCUPANCY, init_from_seed(HD_OCCUPANCY, 0), torch.zeros(1, 3))


def test_noise_and_dropout():
    p = init_from_seed(MNIST_SIREN, 0, batch=8)
    g = torch.Generator().manual_seed(0)
    noisy = symmetry.add_noise(p, 1.0, 0.1, g)
    assert 0.05 < float((noisy["seq.1.weight"] - p["seq.1.weight"]).std()) < 0.15
    dropped = symmetry.drop_weights(p, 0.25, g)
    zero_share = float((dropped["seq.1.weight"] == 0).float().mean())
    assert 0.2 < zero_share < 0.3


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_encoder_is_invariant_and_its_layers_equivariant(spec):
    torch.manual_seed(0)
    enc = WeightEncoder(spec, EncoderConfig(width=8, depth=3, feature_dim=32, proj_dim=16)).eval()
    g = torch.Generator().manual_seed(1)
    p = init_params(spec, 3, g)
    perms = symmetry.random_permutations(spec, 3, g)
    q = symmetry.permute_hidden(spec, p, perms)
    with torch.no_grad():
        a, b = enc(p), enc(q)
        rel = ((a - b).norm(dim=1) / a.norm(dim=1)).max()
        assert rel <= 1e-4
        # Intermediate feature maps permute exactly as the weights do.
        fp, fq = enc.features(p), enc.features(q)
    # W_l's rows follow hidden layer l's permutation, its columns hidden layer l-1's.
    for layer in range(spec.num_layers):
        w_exp, b_exp = fp[0][layer], fp[1][layer]
        if layer < len(perms):
            w_exp = w_exp[torch.arange(3)[:, None], perms[layer]]
            b_exp = b_exp[torch.arange(3)[:, None], perms[layer]]
        if layer > 0:
            w_exp = torch.stack([w_exp[i][:, perms[layer - 1][i]] for i in range(3)])
        torch.testing.assert_close(fq[0][layer], w_exp, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(fq[1][layer], b_exp, atol=1e-4, rtol=1e-4)


def test_3d_probes_are_clipped_logits_on_the_lattice_and_old_files_keep_theirs(tmp_path):
    from engine.encoder.model import PROBE_LOGIT_CLIP, encoder_config_from_json, save_encoder

    p = init_from_seed(HD_OCCUPANCY, 0)
    p["layers.3.bias"] = p["layers.3.bias"] + 40.0  # far inside everywhere: saturated probabilities
    small = EncoderConfig(feature_dim=32, proj_dim=16, probe_lattice=6)
    enc = WeightEncoder(HD_OCCUPANCY, small).eval()
    values = enc.probe_values(p)
    assert values.shape == (1, 6 ** 3)
    assert torch.allclose(values, torch.full_like(values, PROBE_LOGIT_CLIP))
    legacy = WeightEncoder(HD_OCCUPANCY, dataclasses.replace(small, probe_logits=False)).eval()
    assert torch.allclose(legacy.probe_values(p), torch.ones(1, 6 ** 3))
    # Files written before the probe fields existed were 10³ lattices of probabilities.
    old_header = {k: v for k, v in dataclasses.asdict(small).items() if k not in ("probe_lattice", "probe_logits")}
    config = encoder_config_from_json(json.dumps(old_header))
    assert (config.probe_lattice, config.probe_logits, config.probes) == (10, False, True)
    saved = save_encoder(tmp_path / "e.safetensors", enc)
    again, _ = load_encoder(saved)
    assert again.config == small and torch.equal(again(p), enc(p))


def test_single_layer_is_equivariant_not_merely_invariant():
    layer = EquivariantLayer(3, 2, 4)
    ws = [torch.randn(2, 5, 3, 2), torch.randn(2, 6, 5, 2), torch.randn(2, 1, 6, 2)]
    bs = [torch.randn(2, 5, 2), torch.randn(2, 6, 2), torch.randn(2, 1, 2)]
    p0, p1 = torch.randperm(5), torch.randperm(6)
    ws_p = [ws[0][:, p0], ws[1][:, p1][:, :, p0], ws[2][:, :, p1]]
    bs_p = [bs[0][:, p0], bs[1][:, p1], bs[2]]
    out, out_p = layer((ws, bs)), layer((ws_p, bs_p))
    torch.testing.assert_close(out_p[0][1], out[0][1][:, p1][:, :, p0])
    torch.testing.assert_close(out_p[1][0], out[1][0][:, p0])
    assert not torch.allclose(out[0][1], out[0][1][:, p1])  # features do depend on the neuron


def test_nt_xent_prefers_matching_views():
    z = torch.randn(16, 8)
    assert nt_xent(z, z, 0.1) < nt_xent(z, torch.randn(16, 8), 0.1)
    # one group per item is plain NT-Xent; class groups reward same-class neighbours
    other = torch.randn(16, 8)
    torch.testing.assert_close(nt_xent(z, other, 0.1, torch.arange(16)), nt_xent(z, other, 0.1))
    classes = torch.arange(16) % 2
    clustered = torch.nn.functional.one_hot(classes, 8).float() + 0.01 * torch.randn(16, 8)
    assert nt_xent(clustered, clustered, 0.1, classes) < nt_xent(z, z, 0.1, classes)


def test_epoch_order_gives_every_small_batch_same_class_positives():
    item_class = torch.arange(58).repeat_interleave(22)[torch.randperm(58 * 22)]  # 58 classes
    order = epoch_order(item_class, 4, torch.Generator().manual_seed(0))
    assert sorted(order.tolist()) == list(range(len(item_class)))  # every item once per epoch
    for start in range(0, 58 * 20 - 31, 32):  # the front holds whole groups of 4: batches of 32
        counts = torch.bincount(item_class[order[start : start + 32]])
        assert counts[counts > 0].min() >= 4
    plain = epoch_order(item_class, 1, torch.Generator().manual_seed(0))
    assert torch.bincount(item_class[plain[:32]]).max() < 4  # what plain shuffling gives
    again = epoch_order(item_class, 4, torch.Generator().manual_seed(0))
    assert torch.equal(order, again)


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("enc") / "corpus"
    drive(build_corpus(BuildConfig(kind="fashion-mnist", per_class=12, inits=2, chunk_size=60), out))
    return out


def test_encoder_runs_on_a_mixed_batch_from_the_store(tiny_corpus):
    ds = INRDataset(tiny_corpus, split="all")
    picks = [0, len(ds) // 2, len(ds) - 1]  # different classes, splits and inits
    batch = {k: torch.stack([ds[i]["params"][k] for i in picks]) for k in ds[0]["params"]}
    assert len({ds[i]["class"] for i in picks}) > 1 and len({ds[i]["init_k"] for i in picks}) > 1
    psi = WeightEncoder(ds.spec)(batch)
    assert psi.shape == (3, EncoderConfig().feature_dim) and torch.isfinite(psi).all()


def test_pretrain_checkpoints_resumes_and_evaluates(tiny_corpus, tmp_path):
    cfg = PretrainConfig(epochs=4, batch_size=32, checkpoint_every=2,
                         encoder=EncoderConfig(width=8, depth=2, feature_dim=32, proj_dim=16))
    out = tmp_path / "enc.safetensors"
    gen = pretrain(tiny_corpus, out, cfg)
    for event in gen:
        if event.done == 3:
            gen.close()
            break
    ckpt = out.with_name(out.name + ".ckpt")
    assert ckpt.exists() and not out.exists()
    summary = drive(pretrain(tiny_corpus, out, cfg))
    assert summary["steps"] == summary["steps_planned"] == 4 * (96 // 32)
    assert out.exists() and not ckpt.exists()
    enc, meta = load_encoder(out)
    assert meta["pretrain"]["steps"] == 12 and enc.spec == MNIST_SIREN
    report = evaluate_encoder(enc, tiny_corpus, k=3)
    assert set(report["knn_accuracy"]) == {"encoder", "random_encoder", "raw_weights"}
    assert report["retrieval_queries"] == 24 and report["invariance_error"] < 1e-4


def test_pretrain_and_eval_cli(tiny_corpus, tmp_path, capsys):
    from engine.cli import main

    out = tmp_path / "e.safetensors"
    assert main(["pretrain", "--data", str(tiny_corpus), "--out", str(out), "--epochs", "1",
                 "--batch-size", "32", "--width", "8", "--depth", "2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["steps"] == 3
    assert main(["eval-encoder", "--encoder", str(out), "--data", str(tiny_corpus), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["target_classes"] == ["ankle_boot", "bag"] and 0 <= r["knn_accuracy"]["encoder"] <= 1
    assert main(["eval-encoder", "--encoder", str(tiny_corpus / "init.safetensors"), "--data", str(tiny_corpus)]) == 2
    assert "not an EquiGen encoder file" in capsys.readouterr().err


def test_canonical_copies_are_cached_per_corpus_and_read_like_shards(tiny_corpus, capsys):
    from engine.cli import main
    from engine.data.canonical import canonical_dir, canonicalise_corpus

    first = drive(canonicalise_corpus(tiny_corpus))
    assert first["recomputed"] == first["shards"] > 0
    assert first["mean_tv_after"] < 0.8 * first["mean_tv_before"]
    copies = sorted(canonical_dir(tiny_corpus).iterdir())
    stamps = [p.stat().st_mtime_ns for p in copies]
    assert drive(canonicalise_corpus(tiny_corpus))["recomputed"] == 0  # cached
    assert [p.stat().st_mtime_ns for p in copies] == stamps
    raw = INRDataset(tiny_corpus, split="target")
    canon = INRDataset(tiny_corpus, split="target", canonical=True)
    p, c = raw.stacked(), canon.stacked()
    want = symmetry.canonicalise(raw.spec, p)
    assert all(torch.equal(c[k], want[k]) for k in want)
    x = image_grid(28)
    torch.testing.assert_close(forward(raw.spec, c, x), forward(raw.spec, p, x), atol=1e-4, rtol=1e-4)
    assert canon[0]["item"] == raw[0]["item"]
    assert main(["data", "canonicalise", str(tiny_corpus), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["recomputed"] == 0
