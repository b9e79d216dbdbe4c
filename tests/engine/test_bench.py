"""The evaluation harness: metrics on known cases, and the quality and speed commands end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest

from engine.metrics.images import frechet_distance, mean_pairwise_distance, precision_recall, relative_diversity
from engine.metrics.novelty import near_copy_rate
from engine.metrics.shapes import chamfer_matrix, mmd_cov_1nna, normalise_points, surface_points


def test_fid_is_zero_for_identical_sets_and_large_for_disjoint_ones():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(400, 8))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    same = frechet_distance(a, rng.normal(size=(400, 8)))
    apart = frechet_distance(a, rng.normal(size=(400, 8)) + 3.0)
    assert same < 0.5 and apart > 60  # ‖Δμ‖² = 8 · 9 = 72


def test_fid_works_with_fewer_samples_than_features():
    rng = np.random.default_rng(1)
    assert np.isfinite(frechet_distance(rng.normal(size=(10, 32)), rng.normal(size=(50, 32))))


def test_precision_recall_and_diversity_on_known_cases():
    rng = np.random.default_rng(2)
    real = rng.normal(size=(300, 4))
    p, r = precision_recall(real, rng.normal(size=(300, 4)))
    assert p > 0.8 and r > 0.8
    p, r = precision_recall(real, rng.normal(size=(300, 4)) + 10)
    assert p == 0.0 and r == 0.0
    collapsed = np.repeat(real[:1], 50, axis=0) + 1e-3 * rng.normal(size=(50, 4))
    p, r = precision_recall(real, collapsed)
    assert p == 1.0 and r < 0.1  # all samples plausible, but they cover one point of the class
    assert relative_diversity(collapsed, real) < 0.01
    assert relative_diversity(rng.normal(size=(300, 4)), real) == pytest.approx(1.0, abs=0.05)
    assert mean_pairwise_distance(np.array([[0.0, 0.0], [3.0, 4.0]])) == pytest.approx(5.0)


def test_near_copy_rate_counts_copies_and_scores_real_items_ten_percent():
    rng = np.random.default_rng(3)
    shots = rng.normal(size=(10, 6))
    unseen = rng.normal(size=(1000, 6))
    dist = lambda a, b: np.linalg.norm(a[:, None] - b[None], axis=2)  # noqa: E731
    ref, probe = unseen[:500], unseen[500:]
    assert near_copy_rate(dist(shots, shots), dist(ref, shots)) == 1.0
    noisy_copies = shots[np.arange(40) % 10] + 1e-3 * rng.normal(size=(40, 6))
    assert near_copy_rate(dist(noisy_copies, shots), dist(ref, shots)) == 1.0
    assert near_copy_rate(dist(probe, shots), dist(ref, shots)) == pytest.approx(0.10, abs=0.04)


def test_shape_metrics_on_known_cases():
    import trimesh

    def cloud(mesh, seed):
        return surface_points(mesh, 512, seed=seed)

    spheres = np.stack([cloud(trimesh.creation.icosphere(2, radius=0.3 + 0.01 * i), i) for i in range(8)])
    boxes = np.stack([cloud(trimesh.creation.box((0.2, 0.4 + 0.02 * i, 0.8)), 10 + i) for i in range(8)])
    # normalisation: a moved, scaled copy has the same points
    moved = trimesh.creation.icosphere(2, radius=0.3).apply_scale(2.0).apply_translation((1, 2, 3))
    assert np.abs(normalise_points(cloud(moved, 0)) - spheres[0]).max() < 1e-4
    s2 = np.stack([cloud(trimesh.creation.icosphere(2, radius=0.3 + 0.01 * i), 100 + i) for i in range(8)])
    same = mmd_cov_1nna(chamfer_matrix(s2, spheres), chamfer_matrix(s2, s2), chamfer_matrix(spheres, spheres))
    apart = mmd_cov_1nna(chamfer_matrix(boxes, spheres), chamfer_matrix(boxes, boxes), chamfer_matrix(spheres, spheres))
    assert 0.2 <= same["1nna"] <= 0.8 and apart["1nna"] == 1.0
    assert same["mmd"] < apart["mmd"] / 10
    assert same["cov"] >= 0.5
    empty = surface_points(None, 512)
    assert np.all(empty == 0) and chamfer_matrix(empty[None], spheres[:1])[0, 0] > same["mmd"]


def test_bench_quality_runs_end_to_end_and_copies_are_not_novel(tiny2d_prior, tmp_path, capsys):
    from engine.cli import main

    out = tmp_path / "report"
    args = ["bench", "quality", "--model", str(tiny2d_prior["model"]), "--hyperdiffusion-model", str(tiny2d_prior["hd"]),
            "--data", str(tiny2d_prior["corpus"]), "--out", str(out), "--shots", "2", "--repeats", "2",
            "--samples", "3", "--diversities", "0,1", "--steps", "2", "--adapt-steps", "2", "--json"]
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    rows = {(e["method"], e["diversity"]): e for e in result["summary"]}
    # both models have a prior, so D widens HyperDiffusion's as well as EquiGen's
    assert set(rows) == {("real (held-out)", None), ("equigen", 0.0), ("equigen", 1.0), ("equigen-no-perturb", None),
                         ("hyperdiffusion", 0.0), ("hyperdiffusion", 1.0), ("shots-noise", 0.0), ("shots-noise", 1.0)}
    assert rows[("shots-noise", 0.0)]["near_copy"]["mean"] == 1.0  # the shots themselves: all copies
    for e in result["summary"]:
        assert e["repeats"] == 2 and {"fid", "precision", "recall", "class_consistency", "near_copy",
                                      "speckle_ratio"} <= set(e)
        assert 0 <= e["class_consistency"]["mean"] <= 1
    report = (out / "report.md").read_text()
    assert "harness' own CNN" in report and "| **equigen** | 1 |" in report
    assert (out / "quality_vs_diversity.png").stat().st_size > 1000
    assert len(list((out / "grids").glob("*.png"))) == len(result["info"]["classes"])
    assert (tiny2d_prior["corpus"] / "bench" / "feature-net.safetensors").exists()  # cached for the next run


def test_bench_quality_refuses_a_model_from_another_corpus_and_missing_baselines(tiny2d, tmp_path, capsys):
    from engine.cli import main

    base = ["bench", "quality", "--data", str(tiny2d["corpus"]), "--out", str(tmp_path / "r")]
    assert main(base + ["--model", str(tiny2d["model"]), "--methods", "hyperdiffusion"]) == 2
    assert "--hyperdiffusion-model" in capsys.readouterr().err
    assert main(base + ["--model", str(tiny2d["model"]), "--shots", "50"]) == 2
    assert "too few" in capsys.readouterr().err
    other = tmp_path / "other"
    from engine.data.build import BuildConfig, build_corpus
    from engine.progress import drive

    drive(build_corpus(BuildConfig(kind="fashion-mnist", per_class=2, seed=5, chunk_size=40), other))
    assert main(["bench", "quality", "--data", str(other), "--out", str(tmp_path / "r2"),
                 "--model", str(tiny2d["model"])]) == 2
    assert "initialisation" in capsys.readouterr().err


@pytest.mark.slow
def test_bench_speed_times_the_shipped_design_through_the_pipeline(structured2d, capsys):
    from engine.cli import main
    from engine.domains import IMAGES

    assert main(["bench", "speed", "--repeats", "2", "--only", "generator-2d,extract,thumbnails",
                 "--model-2d", str(structured2d["model"]), "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(result) >= {"machine", "generator-2d", "extract", "thumbnails"} and "fit-3d" not in result
    gen = result["generator-2d"]
    assert gen["structured"] and gen["adapt_steps"] == IMAGES.code_adapt.steps  # the recipe a user gets
    assert len(gen["adapt_runs_seconds"]) == len(gen["generate_runs_seconds"]) == 2
    assert 0 < gen["of_which_fitting_shots_seconds"] < gen["adapt_10_shots_seconds"]
    assert 0 < gen["of_which_sampling_seconds"] <= gen["generate_16_seconds"]
    assert min(gen["generate_runs_seconds"]) <= gen["generate_16_seconds"] <= max(gen["generate_runs_seconds"])
    assert result["extract"]["seconds_128"] > 0 and result["thumbnails"]["mesh_256_seconds"] > 0


@pytest.mark.slow
def test_bench_quality_3d_reports_chamfer_metrics_and_watertightness(tmp_path, capsys):
    import dataclasses

    from engine.cli import main
    from engine.data.build import BuildConfig, build_corpus
    from engine.domains import SHAPES
    from engine.diffusion.train import TrainConfig, train
    from engine.progress import drive

    corpus = tmp_path / "corpus"
    drive(build_corpus(BuildConfig(kind="shapes3d", families=("chair", "mug"), count=6,
                                   target_classes=("mug",), mesh_fit=dataclasses.replace(
                                       SHAPES.corpus_mesh_fit, max_steps=100)), corpus))
    model = tmp_path / "hd.safetensors"
    drive(train(corpus, model, None, TrainConfig(steps=5, batch_size=2, method="hyperdiffusion",
                                                 denoiser={"width": 32, "depth": 1, "heads": 2})))
    out = tmp_path / "report"
    assert main(["bench", "quality", "--hyperdiffusion-model", str(model), "--data", str(corpus), "--out", str(out),
                 "--shots", "1", "--repeats", "1", "--samples", "2", "--diversities", "0", "--steps", "2",
                 "--adapt-steps", "1", "--resolution", "32", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    rows = {(e["method"], e["diversity"]): e for e in result["summary"]}
    assert set(rows) == {("real (held-out)", None), ("hyperdiffusion", 0.0), ("shots-noise", 0.0)}
    assert rows[("shots-noise", 0.0)]["near_copy"]["mean"] == 1.0
    for key in ("mmd", "cov", "1nna", "watertight", "like_family"):
        assert key in rows[("hyperdiffusion", 0.0)]
    assert 0.0 <= rows[("real (held-out)", None)]["like_family"]["mean"] <= 1.0
    assert "MMD-CD" in (out / "report.md").read_text()
    assert (out / "grids" / "mug.png").exists()


def test_like_family_counts_pieces_against_the_family():
    import trimesh

    from engine.decode import like_family

    def boxes(n):
        return trimesh.util.concatenate([trimesh.creation.box((0.1, 0.1, 0.1)).apply_translation((0.3 * i, 0, 0))
                                         for i in range(n)])

    lamp_like = 2  # a shade over a base: two pieces by design
    assert like_family(boxes(2), lamp_like) and like_family(boxes(1), lamp_like)
    assert not like_family(boxes(3), lamp_like)
    assert not like_family(boxes(2), 1)  # a mug in two pieces is broken
    open_box = trimesh.creation.box((0.1, 0.1, 0.1))
    open_box.update_faces(np.arange(len(open_box.faces)) > 0)
    assert not like_family(open_box, lamp_like) and not like_family(None, lamp_like)


def test_speckle_sees_isolated_pixels_not_clean_strokes():
    from engine.metrics.images import relative_speckle, speckle

    clean = np.zeros((4, 28, 28), np.float32)
    clean[:, 6:22, 10:16] = 1.0  # a thick bar: only its edges differ from their median
    rng = np.random.default_rng(0)
    salted = clean.copy()
    salted[rng.random(clean.shape) < 0.03] = 1.0
    noisy = np.clip(clean + rng.normal(0, 10 / 255, clean.shape), 0, 1)
    assert speckle(np.zeros((2, 28, 28))) == 0.0
    assert speckle(clean) < speckle(noisy) < speckle(salted)
    assert abs(relative_speckle(clean, clean) - 1.0) < 1e-9
    assert relative_speckle(salted, clean) > 2.0
    assert np.isclose(speckle((clean * 255).astype(np.uint8)), speckle(clean), atol=1e-6)


def test_chamfer_matrix_equals_brute_force():
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(3, 200, 3)), rng.normal(size=(2, 150, 3))
    d = np.linalg.norm(a[:, None, :, None] - b[None, :, None], axis=-1) ** 2  # (3, 2, 200, 150)
    brute = d.min(3).mean(2) + d.min(2).mean(2)
    assert np.allclose(chamfer_matrix(a, b), brute)
    assert np.allclose(np.diag(chamfer_matrix(a, a)), 0.0)
    assert np.array_equal(chamfer_matrix(a, a), chamfer_matrix(a, a.copy()))  # the half-matrix shortcut
