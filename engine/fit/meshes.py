"""Meshes → 3D occupancy INRs, the HyperDiffusion way.

A mesh is centred and scaled to max |coord| = 0.475, sampled near its surface (σ = 0.01 jitter)
and uniformly in the domain, and labelled inside/outside by the generalized winding number
(libigl's fast winding number), which stays meaningful for meshes with holes. Networks are fitted
in a batch with BCE on logits; quality is the volumetric IoU on separate uniform points.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import igl
import numpy as np
import torch
import trimesh

from engine.checks import at_least, between, positive
from engine.errors import InputError
from engine.fit.loop import FitOutcome, LoopConfig, fit_loop
from engine.functional import Params, forward, repeat_params
from engine.precision import mixed_precision
from engine.progress import ProgressGen, relay
from engine.spec import HD_OCCUPANCY, INRSpec

MESH_SUFFIXES = (".obj", ".ply", ".stl", ".off", ".glb", ".gltf")
NORMALISED_EXTENT = 0.475


@dataclass(frozen=True)
class MeshFitConfig:
    """Defaults for this 2-core CPU; the paper's sampling (100k near-surface + 100k uniform)."""

    surface_points: int = 100_000
    uniform_points: int = 100_000
    jitter: float = 0.01
    # A second, tighter band of near-surface points: parts a few voxels thick (stems, legs) are
    # mostly near-surface, and the σ = 0.01 band alone labels them as much outside as inside.
    fine_points: int = 0
    fine_jitter: float = 0.003
    eval_points: int = 50_000
    points_per_step: int = 8192
    lr: float = 1e-2
    lr_final: float = 1e-3
    max_steps: int = 800
    check_every: int = 25
    target_iou: float = 0.95
    batch_size: int = 8
    seed: int = 0
    precision: str = "auto"  # "auto": bf16 matmuls where the CPU/GPU does them natively, else fp32

    def __post_init__(self):
        at_least("near-surface points", self.surface_points, 1)
        at_least("uniform points", self.uniform_points, 1)
        at_least("fine near-surface points", self.fine_points, 0)
        at_least("evaluation points", self.eval_points, 1)
        at_least("points per step", self.points_per_step, 1)
        positive("the fitting learning rate", self.lr)
        positive("the final fitting learning rate", self.lr_final)
        at_least("fitting steps", self.max_steps, 1)
        at_least("the quality check interval", self.check_every, 1)
        between("the target IoU", self.target_iou, 0, 1)
        at_least("the fitting batch size", self.batch_size, 1)


@dataclass(frozen=True)
class OccupancySamples:
    """Training and evaluation points of one shape, in the domain's units."""

    points: np.ndarray  # (P, 3) float32
    labels: np.ndarray  # (P,) float32, 1 inside
    eval_points: np.ndarray  # (E, 3) uniform
    eval_labels: np.ndarray  # (E,)


MAX_FACES = 5_000_000  # a mesh of this many triangles takes ~2 GB to label by winding numbers


def check_encloses_volume(samples: OccupancySamples, name: str) -> None:
    """InputError unless the mesh the samples label has an inside and an outside: a flat or
    degenerate mesh labels every point outside, and its fit would be an empty shape scored
    IoU 1."""
    inside_share = float(np.concatenate([samples.labels, samples.eval_labels]).mean())
    if inside_share == 0.0:
        raise InputError(f"{name}: the mesh encloses no volume (it is flat, degenerate or its surface has no "
                         "inside); give a solid or closed mesh")
    if inside_share == 1.0:
        raise InputError(f"{name}: the mesh's inside fills the whole domain; check that it is a closed surface")


def load_mesh(path: str | os.PathLike) -> trimesh.Trimesh:
    """Read OBJ/PLY/STL/OFF/GLB as one triangle mesh (a scene's parts are concatenated)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        loaded = trimesh.load(str(path), force="mesh", process=False)
    except Exception as e:  # trimesh raises many types for malformed files
        raise InputError(f"{path}: not a readable mesh ({str(e).splitlines()[0][:120] or type(e).__name__})") from None
    if not isinstance(loaded, trimesh.Trimesh) or len(loaded.faces) == 0:
        raise InputError(f"{path}: the file holds no triangles (point clouds are not supported)")
    if len(loaded.faces) > MAX_FACES:
        raise InputError(f"{path}: {len(loaded.faces):,} triangles is more than the {MAX_FACES:,} fitting "
                         "reads; decimate the mesh first")
    if not np.isfinite(loaded.vertices).all():
        raise InputError(f"{path}: the mesh has NaN or infinite vertex coordinates")
    if loaded.faces.min() < 0 or loaded.faces.max() >= len(loaded.vertices):
        raise InputError(f"{path}: the mesh's triangles name vertices it does not have")
    extent = loaded.vertices.max(0) - loaded.vertices.min(0)
    if not (extent > 0).any():
        raise InputError(f"{path}: the mesh is degenerate (all vertices at one point)")
    return loaded


def normalise_mesh(mesh: trimesh.Trimesh, extent: float = NORMALISED_EXTENT) -> trimesh.Trimesh:
    """Centre on the bounding box and scale so that max |coord| = extent (a copy)."""
    m = mesh.copy()
    lo, hi = m.bounds
    m.apply_translation(-(lo + hi) / 2.0)
    radius = float(np.abs(m.vertices).max())
    if not np.isfinite(radius) or radius <= 0:
        raise InputError("the mesh is degenerate (all vertices at one point)")
    m.apply_scale(extent / radius)
    return m


def inside(mesh: trimesh.Trimesh, points: np.ndarray) -> np.ndarray:
    """Generalized winding number > 0.5, for ``points (P, 3)``; bool ``(P,)``."""
    v = np.ascontiguousarray(mesh.vertices, dtype=np.float64)
    f = np.ascontiguousarray(mesh.faces, dtype=np.int64)
    w = igl.fast_winding_number(v, f, np.ascontiguousarray(points, dtype=np.float64))
    return np.abs(w) > 0.5


def sample_occupancy(
    mesh: trimesh.Trimesh, spec: INRSpec = HD_OCCUPANCY, config: MeshFitConfig = MeshFitConfig(),
    seed: int = 0,
) -> OccupancySamples:
    """Near-surface and uniform samples with winding-number labels for a normalised mesh."""
    rng = np.random.default_rng(seed)
    lo, hi = spec.domain
    n_near, n_fine = config.surface_points, config.fine_points
    surface, _ = trimesh.sample.sample_surface(mesh, n_near + n_fine, seed=int(rng.integers(2**31)))
    near = surface[:n_near] + rng.normal(0.0, config.jitter, (n_near, 3))
    fine = surface[n_near:] + rng.normal(0.0, config.fine_jitter, (n_fine, 3))
    uniform = rng.uniform(lo, hi, (config.uniform_points, 3))
    pts = np.clip(np.concatenate([near, fine, uniform]), lo, hi)
    ev = rng.uniform(lo, hi, (config.eval_points, 3))
    return OccupancySamples(
        pts.astype(np.float32), inside(mesh, pts).astype(np.float32),
        ev.astype(np.float32), inside(mesh, ev).astype(np.float32),
    )


def _sample_job(job):
    mesh, spec, config, seed = job
    return sample_occupancy(mesh, spec, config, seed)


def sample_meshes(meshes: list[trimesh.Trimesh], spec: INRSpec, config: MeshFitConfig,
                  seeds: list[int], stage: str = "sample") -> ProgressGen[list[OccupancySamples]]:
    """``sample_occupancy`` of each normalised mesh with its seed, in helper processes
    (``engine.helpers``): libigl's winding numbers hold the GIL for ~2 s a mesh, which would
    freeze every other thread of the caller. Same samples as in-process; one event per mesh."""
    from engine.helpers import run_apart

    return (yield from run_apart(_sample_job, [(m, spec, config, s) for m, s in zip(meshes, seeds)], stage))


def iou_from_logits(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Volumetric IoU per item: logits and labels ``(B, P)``; returns ``(B,)``."""
    pred = logits > 0
    gt = labels > 0.5
    inter = (pred & gt).sum(dim=1).float()
    union = (pred | gt).sum(dim=1).float()
    return torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(inter))


def fit_occupancy(
    samples: list[OccupancySamples],
    init: Params,
    spec: INRSpec = HD_OCCUPANCY,
    config: MeshFitConfig = MeshFitConfig(),
    device: torch.device | None = None,
) -> ProgressGen[FitOutcome]:
    """Fit one occupancy INR per sample set, all in one batch, on ``device`` (the CPU by
    default; the weights come back on the CPU); quality is IoU.

    init: one weight set ``(1, *shape)`` shared by all, or ``(B, *shape)``.
    """
    device = device or torch.device("cpu")
    b = len(samples)
    pts = torch.from_numpy(np.stack([s.points for s in samples])).to(device)
    lab = torch.from_numpy(np.stack([s.labels for s in samples])).to(device)
    ev_pts = torch.from_numpy(np.stack([s.eval_points for s in samples])).to(device)
    ev_lab = torch.from_numpy(np.stack([s.eval_labels for s in samples])).to(device)
    gen = torch.Generator().manual_seed(config.seed)  # draws on the CPU: the same fit on every device
    start = repeat_params(init, b) if next(iter(init.values())).shape[0] == 1 else init
    start = {k: v.to(device) for k, v in start.items()}
    n_pts = pts.shape[1]
    autocast = mixed_precision(config.precision, device)
    def loss_fn(params: Params, active: torch.Tensor, step: int):
        idx = torch.randint(0, n_pts, (active.numel(), config.points_per_step), generator=gen).to(device)
        p = torch.gather(pts[active.to(device)], 1, idx.unsqueeze(-1).expand(-1, -1, 3))
        y = torch.gather(lab[active.to(device)], 1, idx)
        with autocast:
            logits = forward(spec, params, p).squeeze(-1)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), y, reduction="none")
        return loss.mean(dim=1), None

    def quality_fn(params: Params, active: torch.Tensor) -> torch.Tensor:
        logits = forward(spec, params, ev_pts[active.to(device)]).squeeze(-1)
        return iou_from_logits(logits, ev_lab[active.to(device)])

    loop = LoopConfig(
        lr=config.lr, max_steps=config.max_steps, target=config.target_iou,
        check_every=config.check_every, progress_every=config.check_every,
        lr_final=config.lr_final,
    )
    return (yield from fit_loop(start, loss_fn, quality_fn, loop, stage="fit meshes"))


def fit_meshes(meshes: list[trimesh.Trimesh], init: Params, spec: INRSpec, config: MeshFitConfig,
               seeds: list[int], stage: str = "fit", names: list[str] | None = None,
               device: torch.device | None = None) -> ProgressGen[FitOutcome]:
    """Sample and fit normalised meshes, ``config.batch_size`` at a time: the one way the studio,
    ``equigen fit`` and a model's shots turn meshes into INRs. Corpus builds run the same two
    steps (``sample_occupancy``, ``fit_occupancy``) in their own processes, reusing the samples
    for every initialisation. ``init``: one weight set ``(1, *shape)``; ``seeds``: one sampling
    seed per mesh; ``names``: what messages call each mesh (its file). A mesh that encloses no
    volume is refused (``check_encloses_volume``). Returns one outcome for all."""
    from engine.functional import concat

    outcomes = []
    for s in range(0, len(meshes), config.batch_size):
        part = meshes[s:s + config.batch_size]
        samples = yield from relay(sample_meshes(part, spec, config, seeds[s:s + len(part)]), "sample", s, len(meshes))
        for i, sample in enumerate(samples):
            check_encloses_volume(sample, names[s + i] if names else f"mesh {s + i + 1}")
        outcomes.append((yield from relay(fit_occupancy(samples, init, spec, config, device), stage)))
    return FitOutcome(params=concat([o.params for o in outcomes]),
                      quality=torch.cat([o.quality for o in outcomes]),
                      steps=torch.cat([o.steps for o in outcomes]),
                      reached=torch.cat([o.reached for o in outcomes]),
                      seconds=sum(o.seconds for o in outcomes))
