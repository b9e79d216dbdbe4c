"""Few-shot examples into the model's basin (``METHOD.md`` §7).

Weight diffusion only works on weights that share the corpus' basin, so every shot is fitted from
the model's shared initialisation: images and meshes directly, and INR files from elsewhere (any
initialisation, any width, e.g. DWSNets MNIST-INRs) by rendering them and re-fitting the result,
a functional re-basin. INR files that record the model's own init hash are taken as they are.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from engine.decode import decode_images, extract_mesh
from engine.diffusion.model_file import Shots, WeightDiffusion
from engine.errors import InputError
from engine.fit.images import ImageFitConfig, fit_images, load_gray, to_frame
from engine.fit.meshes import MeshFitConfig, fit_meshes, load_mesh, normalise_mesh
from engine.functional import concat
from engine.inr_io import load_inr
from engine.progress import ProgressGen, relay
from engine.session import input_kind

MAX_SHOTS = 64


def checked_shot_paths(paths: list[str | os.PathLike], kinds: str) -> list[Path]:
    """``paths`` as Paths; InputError when there are none or more than ``MAX_SHOTS``."""
    paths = [Path(p) for p in paths]
    if not paths:
        raise InputError(f"no shots given; give 1 to 20 {kinds} of the new class")
    if len(paths) > MAX_SHOTS:
        raise InputError(f"{len(paths)} shots is more than this tool takes ({MAX_SHOTS}); pick fewer")
    return paths


def load_shots(model: WeightDiffusion, paths: list[str | os.PathLike],
               image_config: ImageFitConfig = ImageFitConfig(),
               mesh_config: MeshFitConfig | None = None) -> ProgressGen[Shots]:
    """Read, check and fit the shots; returns them in the model's basin (features not yet set).

    Every file is read and checked before any fitting starts, so a wrong file fails at once.
    Meshes are fitted with the corpus recipe by default: the generator learned from fits made that
    way, and it is 3-4x faster than the studio's single-shape recipe.
    """
    from engine.domains import SHAPES  # the recipes import this module (via adapt)

    mesh_config = mesh_config or SHAPES.corpus_mesh_fit
    paths = checked_shot_paths(paths, "images, meshes or INR files")
    spec = model.spec
    domain = "image" if spec.in_dim == 2 else "mesh"
    frames, meshes, ready = [], [], []  # (position, data)
    for i, p in enumerate(paths):
        kind = input_kind(p)
        if kind == "inr":
            inr = load_inr(p)
            if inr.spec.in_dim != spec.in_dim:
                raise InputError(f"{p}: a {inr.spec.in_dim}D INR, but this model makes "
                                 f"{spec.in_dim}D {domain}s; give {domain}s or {spec.in_dim}D INR files")
            if inr.spec.out_dim != spec.out_dim:
                raise InputError(f"{p}: spec {inr.spec.name!r} has {inr.spec.out_dim} outputs, this model's "
                                 f"{spec.name!r} has {spec.out_dim}; it cannot be re-fitted into the model")
            if inr.spec == spec and inr.meta.get("init_sha") == model.init_sha:
                ready.append((i, inr.batched()))
            elif spec.in_dim == 2:
                frames.append((i, decode_images(inr.spec, inr.batched(), spec.grid_size, model.device)[0]))
            else:
                meshes.append((i, normalise_mesh(extract_mesh(inr, device=model.device))))
        elif kind != domain:
            raise InputError(f"{p}: {'an image' if kind == 'image' else 'a mesh'}, but this model makes "
                             f"{domain}s; give {domain}s or INR files of the same kind")
        elif kind == "image":
            frames.append((i, to_frame(load_gray(p), spec.grid_size, image_config.invert)))
        else:
            meshes.append((i, normalise_mesh(load_mesh(p))))
    fitted: dict[int, dict] = {i: prm for i, prm in ready}
    if frames:
        out = yield from relay(fit_images(np.stack([f for _, f in frames]), model.init, spec, image_config,
                                          model.device),
                               "fit shots", 0, len(paths))
        fitted |= {i: {k: v[j : j + 1] for k, v in out.params.items()} for j, (i, _) in enumerate(frames)}
    if meshes:
        out = yield from fit_meshes([m for _, m in meshes], model.init, spec, mesh_config,
                                    [mesh_config.seed + j for j in range(len(meshes))], "fit shots",
                                    names=[str(paths[i]) for i, _ in meshes], device=model.device)
        fitted |= {i: {k: v[j : j + 1] for k, v in out.params.items()} for j, (i, _) in enumerate(meshes)}
    params = concat([fitted[i] for i in range(len(paths))])
    return Shots(names=[p.name for p in paths], params={k: v.detach().float() for k, v in params.items()},
                 features=None)


@torch.inference_mode()
def with_features(model: WeightDiffusion, shots: Shots) -> Shots:
    """The shots with their encoder features ψ ``(K, feature_dim)`` (unchanged without an encoder)."""
    if model.encoder is None:
        return shots
    params = {k: v.to(model.device) for k, v in shots.params.items()}
    return Shots(shots.names, params, model.encoder(params).float())
