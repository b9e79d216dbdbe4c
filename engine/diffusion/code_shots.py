"""Few-shot examples into a structured model: every shot becomes a code of the model's base.

Meshes are sampled like the corpus (``weightspace/corpus.py``), images become frames as any 2D
input does, and both are fitted with their code alone. INR files made by the same base come back
exactly (``SharedBase.codes_of``); any other INR of the domain (a HyperDiffusion ``.pth``, a
raw-weight fit, a DWSNets MNIST-INR) is rendered or meshed and re-fitted, a functional re-basin.
The shots are one kind of shape, so they are fitted together (``fit_together``).
"""

from __future__ import annotations

import os

import numpy as np
import torch

from engine.decode import decode_images, mesh_or_none
from engine.diffusion.code_model import CodeDiffusion
from engine.diffusion.shots import checked_shot_paths
from engine.domains import domain_of
from engine.errors import InputError
from engine.fit.images import load_gray, to_frame
from engine.fit.meshes import MeshFitConfig, check_encloses_volume, load_mesh, normalise_mesh, sample_meshes
from engine.functional import image_grid
from engine.inr_io import INR, load_inr
from engine.progress import ProgressGen, relay
from engine.session import input_kind
from engine.weightspace.structured import CodeFitConfig, SharedBase, code_quality, fit_together

def base_codes(base: SharedBase, inr: INR, tolerance: float = 1e-4) -> torch.Tensor | None:
    """The code ``(1, D)`` of an INR this base made, or None when its weights are not the base's."""
    if inr.spec != base.spec:
        return None
    params = {k: v.to(base.mean_code.device) for k, v in inr.batched().items()}
    codes = base.codes_of(params)
    again = base.full_params(codes)
    scale = max(1.0, max(float(v.abs().max()) for v in params.values()))
    if max(float((again[k] - params[k]).abs().max()) for k in params) > tolerance * scale:
        return None
    return codes


def load_code_shots(model: CodeDiffusion, paths: list[str | os.PathLike],
                    samples: MeshFitConfig | None = None,
                    fit: CodeFitConfig | None = None,
                    invert: str = "auto") -> ProgressGen[tuple[list[str], torch.Tensor, list[float]]]:
    """Read, check and fit the shots; returns their names, codes ``(K, D)`` and fit qualities
    (IoU for meshes, PSNR in dB for images; nan for INR files taken as they are). Every file is
    read before any fitting starts. A 2D model takes images and 2D INR files, a 3D one meshes
    and 3D INR files; ``fit`` defaults to the domain's corpus recipe (shots are fitted as the
    corpus' held-out items were)."""
    base = model.base
    spec = base.spec
    two_d = spec.in_dim == 2
    fit = fit or domain_of(spec).structured.fit
    samples = samples or domain_of(spec).shot_samples
    domain, kinds = ("image", "images or 2D INR files") if two_d else ("mesh", "meshes or 3D INR files")
    paths = checked_shot_paths(paths, kinds)
    ready: dict[int, torch.Tensor] = {}
    todo = []  # (position, frame or mesh) to fit
    for i, p in enumerate(paths):
        kind = input_kind(p)
        if kind == "inr":
            inr = load_inr(p)
            if inr.spec.in_dim != spec.in_dim or inr.spec.out_dim != spec.out_dim:
                raise InputError(f"{p}: a {inr.spec.in_dim}D INR of {inr.spec.out_dim} output(s), but this model "
                                 f"makes {spec.in_dim}D {domain}s; give {kinds}")
            codes = base_codes(base, inr)
            if codes is not None:
                ready[i] = codes
                continue
            if two_d:
                todo.append((i, decode_images(inr.spec, inr.batched(), spec.grid_size, model.device)[0]))
                continue
            mesh = mesh_or_none(inr, device=model.device)
            if mesh is None:
                raise InputError(f"{p}: the INR holds no shape (it marks nothing inside); it cannot be re-fitted")
            todo.append((i, normalise_mesh(mesh)))
        elif kind != domain:
            raise InputError(f"{p}: {'an image' if kind == 'image' else 'a mesh'}, but this model makes "
                             f"{domain}s; give {kinds}")
        elif two_d:
            todo.append((i, to_frame(load_gray(p), spec.grid_size, invert)))
        else:
            todo.append((i, normalise_mesh(load_mesh(p))))
    quality = [float("nan")] * len(paths)
    if todo:
        if two_d:
            pixels = torch.from_numpy(np.stack([f.reshape(-1) for _, f in todo]).astype(np.float32))
            pts = ev = image_grid(spec.grid_size, spec.domain).expand(len(todo), -1, -1)
            lab = ev_lab = pixels
        else:
            drawn = yield from sample_meshes([m for _, m in todo], spec, samples,
                                             [fit.seed + j for j in range(len(todo))], "sample shots")
            for (i, _), sample in zip(todo, drawn):
                check_encloses_volume(sample, str(paths[i]))
            pts = torch.from_numpy(np.stack([s.points for s in drawn]))
            lab = torch.from_numpy(np.stack([s.labels for s in drawn]))
            ev = torch.from_numpy(np.stack([s.eval_points for s in drawn]))
            ev_lab = torch.from_numpy(np.stack([s.eval_labels for s in drawn]))
        codes = yield from relay(fit_together(base, pts, lab, fit), "fit shots")
        fitted, _ = code_quality(base, codes, ev, ev_lab)
        for j, (i, _) in enumerate(todo):
            ready[i] = codes[j:j + 1]
            quality[i] = float(fitted[j])
    return [p.name for p in paths], torch.cat([ready[i] for i in range(len(paths))]), quality
