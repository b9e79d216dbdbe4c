"""``equigen bench quality``: every method on the same held-out shots and seeds, with numbers.

Protocol, per held-out target class of the corpus and per repeat r = 0..R-1: draw K shots from the
class' first-fit INRs (they are in the model's basin already; in a structured corpus, codes of its
shared network, read back exactly), keep the other items unseen, adapt
each model once to the shots, and generate ``samples`` INRs with every method (``equigen`` and
``shots-noise`` at every diversity value, ``hyperdiffusion`` too when its denoiser has a prior for
D to widen; ``equigen-no-perturb`` once), all with the same seed. The unseen items are split:
``samples`` of them form a "real" row (what held-out data itself scores, e.g. FID's floor at that
sample count) and the rest are the reference every row is measured against. Shots are never part
of the reference.

2D metrics on the harness' feature network (``metrics.feature_net``): FID, k-NN precision and
recall, class consistency, relative diversity and the near-copy rate (``metrics.novelty``); on the
pixels, speckle relative to the unseen real items' (``metrics.images.speckle``).
3D (``metrics.shapes``): Chamfer MMD, COV and 1-NNA on 2048 normalised surface points, the
near-copy rate by Chamfer distance, the share of samples that decode to one watertight mesh, and
the share that decode like their family: watertight with no more pieces than the family's items
typically have (the median over its decoded items; a lamp's shade and base are two by design).
Every figure is reported as mean ± std over the repeats of its mean over the target classes.
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from engine.data.dataset import INRDataset
from engine.data.store import CorpusPaths, read_manifest
from engine.decode import decode_images, is_one_watertight_piece, like_family, mesh_or_none
from engine.diffusion.code_model import CodeDiffusion
from engine.diffusion.generate import GenerateConfig
from engine.diffusion.methods import METHODS, depends_on_diversity, method_named, methods_for
from engine.diffusion.model_file import Shots, WeightDiffusion
from engine.diffusion.pipeline import adapt_recipe_for, adapt_to_inrs, generate_params, load_generator, with_shots
from engine.device import describe as describe_device
from engine.device import gpu_errors
from engine.device import resolve as resolve_device
from engine.domains import domain_of
from engine.errors import InputError
from engine.functional import Params, params_digest
from engine.inr_io import INR, load_inr
from engine.metrics.feature_net import FeatureNet, feature_net_for
from engine.metrics.images import (
    frechet_distance, pairwise_distances, precision_recall, relative_diversity, relative_speckle,
)
from engine.metrics.novelty import near_copy_rate
from engine.metrics.shapes import chamfer_matrix, mmd_cov_1nna, surface_points
from engine.progress import Progress, ProgressGen, relay
from engine.spec import INRSpec
from engine.weightspace.corpus import base_path, is_structured
from engine.weightspace.structured import load_base

REAL = "real (held-out)"


@dataclass(frozen=True)
class QualityConfig:
    methods: tuple[str, ...] | None = None  # None: every method the given models support
    shots: int = 10
    repeats: int = 3
    diversities: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0)
    samples: int | None = None  # per method, diversity and shot set; None: the domain's (engine.domains)
    classes: tuple[str, ...] | None = None  # None: the corpus' target classes
    steps: int = 50  # DDIM steps
    guidance: float | None = None  # None: each model's own default
    adapt_steps: int | None = None  # None: the model's adaptation recipe
    resolution: int = 64  # 3D: marching-cubes grid for samples and references alike
    seed: int = 0


@dataclass
class _ClassData:
    """One target class: its first-fit INRs and what every repeat reuses."""

    name: str
    index: int
    params: Params  # (N, ...)
    feats: np.ndarray | None = None  # 2D: (N, F)
    preds: np.ndarray | None = None  # 2D: the feature network's class for each item (N,)
    points: np.ndarray | None = None  # 3D: (N, 2048, 3)
    real_dist: np.ndarray | None = None  # (N, N) feature or Chamfer distances
    renders: list | None = None  # tiles for the report's grids
    pieces: int = 1  # 3D: the typical number of connected pieces of the family's meshes
    like_family: np.ndarray | None = None  # 3D: (N,) whether each item's own mesh is like its family


Model = WeightDiffusion | CodeDiffusion


def _corpus_sha(data: Path) -> str:
    """What a model must carry to be evaluated on ``data``: the digest of the corpus' shared
    initialisation (raw weights) or of its shared network (a structured corpus)."""
    if is_structured(data):
        return params_digest(load_base(base_path(CorpusPaths(data)))[0].state())
    return params_digest(load_inr(data / "init.safetensors").batched())


def _load(path, structured: bool, device: torch.device) -> Model:
    model = load_generator(path, device)
    if isinstance(model, CodeDiffusion) != structured:
        need = "a structured model ('equigen train' on this corpus)" if structured else "a raw-weight model"
        raise InputError(f"{path}: the corpus needs {need}; evaluate a model on the corpus it was trained on")
    return model


def _check_model(model: Model, spec: INRSpec, corpus_sha: str, path) -> None:
    if model.spec != spec:
        raise InputError(f"{path}: the model makes {model.spec.name!r} INRs but the corpus holds {spec.name!r}; "
                         "evaluate a model on the corpus it was trained on")
    sha = model.base_sha if isinstance(model, CodeDiffusion) else model.init_sha
    if sha != corpus_sha:
        what = "shared network" if isinstance(model, CodeDiffusion) else "shared initialisation"
        raise InputError(f"{path}: the model's {what} is not this corpus' ({sha} vs {corpus_sha}); "
                         "evaluate a model on the corpus it was trained on")


def _has_prior(model: Model) -> bool:
    """Whether D can widen the model's adapted prior."""
    if isinstance(model, CodeDiffusion):
        return model.process.prior is not None and domain_of(model.spec).code_sampling.widen_prior
    return model.denoiser.has_prior


def _methods(config: QualityConfig, model: Model | None, hd: Model | None) -> list[str]:
    available = set()
    for m in (model, hd):
        if m is not None:
            available.update(methods_for(m.method))
    if config.methods is None:
        return [m for m in METHODS if m in available]
    for m in config.methods:
        method_named(m)
        if m not in available:
            need = ("--hyperdiffusion-model (a model from 'equigen train --method hyperdiffusion')"
                    if METHODS[m].samples == "hyperdiffusion" else "--model with an EquiGen model")
            raise InputError(f"method {m!r} needs {need}")
    return list(config.methods)


def _decode_meshes(spec: INRSpec, params: Params, resolution: int, device: torch.device) -> list:
    n = next(iter(params.values())).shape[0]
    return [mesh_or_none(INR.from_batch(spec, params, i), resolution, device) for i in range(n)]


def _seed(config: QualityConfig, class_index: int, repeat: int) -> int:
    return config.seed * 1_000_003 + class_index * 1009 + repeat


def evaluate_quality(model_path: str | os.PathLike | None, data: str | os.PathLike,
                     config: QualityConfig = QualityConfig(),
                     hyperdiffusion_path: str | os.PathLike | None = None,
                     device: str | torch.device = "cpu") -> ProgressGen[dict]:
    """Run the protocol; returns ``{"runs": [...], "summary": [...], "info": {...}, "grids": {...}}``.

    Adaptation, sampling, decoding and the feature network compute on ``device``
    (``engine.device`` names); marching cubes and the metrics on the CPU. A seed gives the same
    shot sets and draws on any device. Yields Progress for rendering, adapting and generating;
    closing the generator cancels.
    """
    target = resolve_device(device)
    with gpu_errors(target):
        return (yield from _evaluate(model_path, data, config, hyperdiffusion_path, target))


def _evaluate(model_path, data, config: QualityConfig, hyperdiffusion_path,
              device: torch.device) -> ProgressGen[dict]:
    t_start = time.perf_counter()
    if model_path is None and hyperdiffusion_path is None:
        raise InputError("give a model to evaluate (--model, and/or --hyperdiffusion-model)")
    data = Path(data)
    manifest = read_manifest(data)
    spec = INRSpec.from_dict(manifest["spec"])
    structured = is_structured(data)
    corpus_sha = _corpus_sha(data)
    model = _load(model_path, structured, device) if model_path is not None else None
    hd = _load(hyperdiffusion_path, structured, device) if hyperdiffusion_path is not None else None
    if hd is not None and hd.method != "hyperdiffusion":
        raise InputError(f"{hyperdiffusion_path}: not a HyperDiffusion model; train one with "
                         "'equigen train --method hyperdiffusion'")
    for m, p in ((model, model_path), (hd, hyperdiffusion_path)):
        if m is not None:
            _check_model(m, spec, corpus_sha, p)
    methods = _methods(config, model, hd)
    classes = list(config.classes or manifest.get("target_classes") or [])
    if not classes:
        raise InputError(f"{data}: the corpus has no held-out target classes; build it with --target-classes")
    two_d = spec.in_dim == 2
    n_samples = config.samples or domain_of(spec).bench_samples
    net, net_info = (yield from relay(feature_net_for(data, device=device))) if two_d else (None, None)

    class_data = []
    for ci, name in enumerate(classes):
        ds = INRDataset(data, split="all", init_k=0, classes=[name])
        if len(ds) == 0:
            raise InputError(f"{data}: no items of class {name!r}; choose from {', '.join(ds.classes)}")
        if len(ds) < config.shots + 4:
            raise InputError(f"{data}: class {name!r} has {len(ds)} items, too few for {config.shots} shots "
                             "plus held-out references; use fewer --shots")
        cd = _ClassData(name, ds.class_index(name), ds.stacked())
        if two_d:
            images = decode_images(spec, cd.params, device=device)
            cd.feats, cd.preds = net.describe(images)
            cd.real_dist = pairwise_distances(cd.feats, cd.feats)
            cd.renders = list(images)
        else:
            meshes = yield from _relay_meshes(spec, cd.params, config.resolution, f"decode {name}", device)
            cd.points = np.stack([surface_points(m, seed=i) for i, m in enumerate(meshes)])
            yield Progress(f"chamfer {name}", 0, 1)
            cd.real_dist = chamfer_matrix(cd.points, cd.points)
            yield Progress(f"chamfer {name}", 1, 1)
            cd.renders = meshes
            cd.pieces = int(np.median([m.body_count for m in meshes if m is not None] or [1]))
            cd.like_family = np.array([like_family(m, cd.pieces) for m in meshes])
        class_data.append(cd)

    runs, grids = [], {}
    owners = {"equigen": model, "hyperdiffusion": hd}  # the model each trained-as kind samples

    def diverse(m: str) -> bool:
        owner = owners.get(METHODS[m].samples)
        return depends_on_diversity(m, owner is not None and _has_prior(owner))

    plan = [(m, d) for m in methods for d in (config.diversities if diverse(m) else (None,))]
    total = len(class_data) * config.repeats * (len(plan) + 1)
    done = 0
    for cd in class_data:
        n_items = next(iter(cd.params.values())).shape[0]
        for r in range(config.repeats):
            seed = _seed(config, cd.index, r)
            rng = np.random.default_rng(seed)
            order = rng.permutation(n_items)
            shot_idx = order[: config.shots]
            unseen = order[config.shots :]
            n_probe = min(n_samples, len(unseen) // 2)
            probe_idx, ref_idx = unseen[:n_probe], unseen[n_probe:]
            shots = Shots([f"{cd.name}-{i}" for i in shot_idx],
                          {k: v[torch.as_tensor(shot_idx)] for k, v in cd.params.items()}, None)
            adapted = {}
            for key, base in owners.items():
                if base is None or not any(METHODS[m].samples == key for m in methods):
                    continue  # shots-noise needs no adaptation: it only perturbs the shots
                recipe = adapt_recipe_for(base)
                recipe = dataclasses.replace(recipe, seed=r, steps=config.adapt_steps or recipe.steps)
                adapted[key] = yield from relay(adapt_to_inrs(base, shots.names, shots.params, recipe),
                                                f"adapt {cd.name} #{r + 1} ({key})")
            ctx = _RunContext(cd, shot_idx, ref_idx, two_d, net, config, device)
            runs.append(dict(ctx.measure_real(probe_idx), **{"class": cd.name, "repeat": r, "method": REAL,
                                                             "diversity": None}))
            done += 1
            yield Progress("generate", done, total, f"{cd.name} #{r + 1}: real")
            for method, d in plan:
                if METHODS[method].samples is None:  # shots-noise: any model's normalisation, the shots
                    owner = with_shots(model or hd, shots.names, shots.params)
                else:
                    owner = adapted[METHODS[method].samples]
                gen_cfg = GenerateConfig(n=n_samples, diversity=d if d is not None else 0.0, seed=seed,
                                         method=method, steps=config.steps, guidance=config.guidance)
                params = yield from relay(generate_params(owner, gen_cfg), f"sample {cd.name} #{r + 1} {method}")
                metrics, tiles = yield from ctx.measure(spec, params)
                runs.append(dict(metrics, **{"class": cd.name, "repeat": r, "method": method, "diversity": d}))
                if r == 0 and (d is None or d == _grid_diversity(config)):
                    grids.setdefault(cd.name, {"shots": [cd.renders[i] for i in shot_idx]})[method] = tiles
                done += 1
                yield Progress("generate", done, total, f"{cd.name} #{r + 1}: {method}"
                               + ("" if d is None else f" D={d}"))
    info = {
        "corpus": str(data), "corpus_kind": manifest.get("kind"), "spec": spec.name,
        "model": None if model_path is None else str(model_path),
        "hyperdiffusion_model": None if hyperdiffusion_path is None else str(hyperdiffusion_path),
        "methods": methods, "classes": classes, "samples": n_samples, "config": asdict(config),
        "grid_diversity": _grid_diversity(config),
        "feature_net": net_info and {k: v for k, v in net_info.items() if k != "classes"},
        "device": describe_device(device),
        "seconds": round(time.perf_counter() - t_start, 1),
    }
    return {"info": info, "runs": runs, "summary": summarise(runs), "grids": grids}


def _grid_diversity(config: QualityConfig) -> float:
    """The diversity value whose samples the report shows: 0.5 when measured, else the largest."""
    return 0.5 if 0.5 in config.diversities else max(config.diversities)


def _relay_meshes(spec: INRSpec, params: Params, resolution: int, stage: str,
                  device: torch.device) -> ProgressGen[list]:
    n = next(iter(params.values())).shape[0]
    meshes = []
    for i in range(n):
        meshes += _decode_meshes(spec, {k: v[i : i + 1] for k, v in params.items()}, resolution, device)
        yield Progress(stage, i + 1, n)
    return meshes


class _RunContext:
    """Measures one shot set's samples against its references (what all methods share)."""

    def __init__(self, cd: _ClassData, shot_idx: np.ndarray, ref_idx: np.ndarray, two_d: bool,
                 net: FeatureNet | None, config: QualityConfig, device: torch.device):
        self.cd, self.shot_idx, self.ref_idx, self.two_d, self.net, self.config, self.device = \
            cd, shot_idx, ref_idx, two_d, net, config, device
        self.ref_to_shots = cd.real_dist[np.ix_(ref_idx, shot_idx)]

    def measure_real(self, probe_idx: np.ndarray) -> dict:
        """The metrics of held-out real items, as if they were samples (what the data itself scores)."""
        cd = self.cd
        probe_to_shots = cd.real_dist[np.ix_(probe_idx, self.shot_idx)]
        if self.two_d:
            return self._image_metrics(cd.feats[probe_idx], cd.preds[probe_idx], probe_to_shots,
                                       np.stack([cd.renders[i] for i in probe_idx]))
        return self._shape_metrics(cd.real_dist[np.ix_(probe_idx, self.ref_idx)],
                                   cd.real_dist[np.ix_(probe_idx, probe_idx)], probe_to_shots,
                                   watertight=None, like_family=float(np.mean(cd.like_family[probe_idx])))

    def measure(self, spec: INRSpec, params: Params) -> ProgressGen[tuple[dict, list]]:
        cd = self.cd
        if self.two_d:
            images = decode_images(spec, params, device=self.device)
            feats, preds = self.net.describe(images)
            to_shots = pairwise_distances(feats, cd.feats[self.shot_idx])
            return self._image_metrics(feats, preds, to_shots, images), list(images[:16])
        meshes = yield from _relay_meshes(spec, params, self.config.resolution, "decode samples", self.device)
        points = np.stack([surface_points(m, seed=i) for i, m in enumerate(meshes)])
        to_ref = chamfer_matrix(points, cd.points[self.ref_idx])
        to_self = chamfer_matrix(points, points)
        to_shots = chamfer_matrix(points, cd.points[self.shot_idx])
        watertight = float(np.mean([is_one_watertight_piece(m) for m in meshes]))
        like = float(np.mean([like_family(m, cd.pieces) for m in meshes]))
        return self._shape_metrics(to_ref, to_self, to_shots, watertight, like), meshes[:8]

    def _image_metrics(self, feats: np.ndarray, preds: np.ndarray, to_shots: np.ndarray,
                       images: np.ndarray) -> dict:
        ref = self.cd.feats[self.ref_idx]
        ref_images = np.stack([self.cd.renders[i] for i in self.ref_idx])
        precision, recall = precision_recall(ref, feats)
        return {
            "fid": frechet_distance(feats, ref),
            "precision": precision, "recall": recall,
            "class_consistency": float(np.mean(preds == self.cd.index)),
            "diversity_ratio": relative_diversity(feats, ref),
            "near_copy": near_copy_rate(to_shots, self.ref_to_shots),
            "speckle_ratio": relative_speckle(images, ref_images),
        }

    def _shape_metrics(self, to_ref: np.ndarray, to_self: np.ndarray, to_shots: np.ndarray,
                       watertight: float | None, like_family: float) -> dict:
        ref_ref = self.cd.real_dist[np.ix_(self.ref_idx, self.ref_idx)]
        out = mmd_cov_1nna(to_ref, to_self, ref_ref)
        out["near_copy"] = near_copy_rate(to_shots, self.ref_to_shots)
        out["watertight"] = watertight
        out["like_family"] = like_family
        return out


def summarise(runs: list[dict]) -> list[dict]:
    """Per (method, diversity): each metric's mean over target classes, then mean ± std over repeats."""
    groups: dict[tuple, list[dict]] = {}
    for run in runs:
        groups.setdefault((run["method"], run["diversity"]), []).append(run)
    out = []
    for (method, diversity), rows in groups.items():
        metrics = [k for k, v in rows[0].items() if k not in ("class", "repeat", "method", "diversity")]
        entry = {"method": method, "diversity": diversity, "classes": len({r["class"] for r in rows}),
                 "repeats": len({r["repeat"] for r in rows})}
        for m in metrics:
            per_repeat = []
            for rep in sorted({r["repeat"] for r in rows}):
                vals = [r[m] for r in rows if r["repeat"] == rep and r[m] is not None]
                if vals:
                    per_repeat.append(float(np.mean(vals)))
            if per_repeat:
                entry[m] = {"mean": float(np.mean(per_repeat)), "std": float(np.std(per_repeat))}
        out.append(entry)
    return out
