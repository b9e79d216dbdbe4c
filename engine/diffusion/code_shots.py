"""Few-shot examples into a structured 3D model: every shot becomes a code of the model's base.

Meshes are sampled like the corpus (``weightspace/corpus.py``) and fitted with their code alone.
INR files made by the same base come back exactly (``SharedBase.codes_of``); any other 3D INR
(a HyperDiffusion ``.pth``, a raw-weight fit) is meshed and re-fitted, a functional re-basin.
The shots are one kind of shape, so the meshes are fitted together (``fit_together``).
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import torch

from engine.decode import extract_mesh
from engine.diffusion.code_model import CodeDiffusion
from engine.diffusion.shots import checked_shot_paths
from engine.errors import EmptyFieldError, InputError
from engine.fit.meshes import MeshFitConfig, load_mesh, normalise_mesh, sample_meshes
from engine.inr_io import INR, load_inr
from engine.progress import ProgressGen, relay
from engine.session import input_kind
from engine.weightspace.corpus import STRUCTURED_SAMPLES
from engine.weightspace.structured import CodeFitConfig, SharedBase, code_iou, fit_together

# A user's shot needs no 20k-point IoU: 4k evaluation points report its fit quality.
SHOT_SAMPLES = dataclasses.replace(STRUCTURED_SAMPLES, eval_points=4_000)


def base_codes(base: SharedBase, inr: INR, tolerance: float = 1e-4) -> torch.Tensor | None:
    """The code ``(1, D)`` of an INR this base made, or None when its weights are not the base's."""
    if inr.spec != base.spec:
        return None
    params = inr.batched()
    codes = base.codes_of(params)
    again = base.full_params(codes)
    scale = max(1.0, max(float(v.abs().max()) for v in params.values()))
    if max(float((again[k] - params[k]).abs().max()) for k in params) > tolerance * scale:
        return None
    return codes


def load_code_shots(model: CodeDiffusion, paths: list[str | os.PathLike],
                    samples: MeshFitConfig = SHOT_SAMPLES,
                    fit: CodeFitConfig = CodeFitConfig()) -> ProgressGen[tuple[list[str], torch.Tensor, list[float]]]:
    """Read, check and fit the shots; returns their names, codes ``(K, D)`` and fit IoUs
    (nan for INR files taken as they are). Every file is read before any fitting starts."""
    paths = checked_shot_paths(paths, "meshes or 3D INR files")
    base = model.base
    ready: dict[int, torch.Tensor] = {}
    meshes = []
    for i, p in enumerate(paths):
        kind = input_kind(p)
        if kind == "image":
            raise InputError(f"{p}: an image, but this model makes 3D shapes; give meshes or 3D INR files")
        if kind == "inr":
            inr = load_inr(p)
            if inr.spec.in_dim != 3:
                raise InputError(f"{p}: a 2D INR, but this model makes 3D shapes; give meshes or 3D INR files")
            codes = base_codes(base, inr)
            if codes is not None:
                ready[i] = codes
                continue
            try:
                meshes.append((i, normalise_mesh(extract_mesh(inr))))
            except EmptyFieldError:
                raise InputError(f"{p}: the INR holds no shape (it marks nothing inside); "
                                 "it cannot be re-fitted") from None
        else:
            meshes.append((i, normalise_mesh(load_mesh(p))))
    quality = [float("nan")] * len(paths)
    if meshes:
        drawn = yield from sample_meshes([m for _, m in meshes], base.spec, samples,
                                         [fit.seed + j for j in range(len(meshes))], "sample shots")
        pts = torch.from_numpy(np.stack([s.points for s in drawn]))
        lab = torch.from_numpy(np.stack([s.labels for s in drawn]))
        codes = yield from relay(fit_together(base, pts, lab, fit), "fit shots")
        iou = code_iou(base, codes, torch.from_numpy(np.stack([s.eval_points for s in drawn])),
                       torch.from_numpy(np.stack([s.eval_labels for s in drawn])))
        for j, (i, _) in enumerate(meshes):
            ready[i] = codes[j:j + 1]
            quality[i] = float(iou[j])
    return [p.name for p in paths], torch.cat([ready[i] for i in range(len(paths))]), quality
