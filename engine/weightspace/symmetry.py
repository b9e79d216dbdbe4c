"""Weight-space symmetries of MLP INRs, for any spec.

Permuting the hidden neurons of a layer (rows of ``W_l`` and ``b_l``, and the same columns of
``W_{l+1}``) leaves the network's function unchanged. This module provides random permutations
(augmentation), a smooth canonical ordering (EquiGen's "smooth augmentation": neurons along a
shortest Hamiltonian path of L1 distances, which lowers the weights' total variation), exact
geometric augmentations of the first layer, and noise/dropout augmentations.

All functions take batched Params ``{key: (B, *shape)}`` and return new tensors.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from engine.errors import InputError
from engine.functional import Params
from engine.spec import INRSpec


def _keys(spec: INRSpec, layer: int) -> tuple[str, str]:
    return f"{spec.param_prefix}.{layer}.weight", f"{spec.param_prefix}.{layer}.bias"


def permute_hidden(spec: INRSpec, params: Params, perms: list[torch.Tensor]) -> Params:
    """Apply one permutation per hidden layer; ``perms[l]`` is ``(B, hidden[l])`` of indices.

    New neuron j of hidden layer l is old neuron ``perms[l][:, j]``. The function is unchanged.
    """
    out = dict(params)
    for layer, perm in enumerate(perms):
        w_key, b_key = _keys(spec, layer)
        nxt, _ = _keys(spec, layer + 1)
        w, b, w_next = out[w_key], out[b_key], out[nxt]
        out[w_key] = torch.gather(w, 1, perm[:, :, None].expand(-1, -1, w.shape[2]))
        out[b_key] = torch.gather(b, 1, perm)
        out[nxt] = torch.gather(w_next, 2, perm[:, None, :].expand(-1, w_next.shape[1], -1))
    return out


def random_permutations(spec: INRSpec, batch: int, generator: torch.Generator | None = None) -> list[torch.Tensor]:
    """Uniformly random hidden-neuron permutations, one per hidden layer and item."""
    return [torch.argsort(torch.rand(batch, h, generator=generator), dim=1) for h in spec.hidden]


def total_variation(spec: INRSpec, params: Params) -> torch.Tensor:
    """Sum over hidden layers of |neuron j+1 − neuron j| (L1) along the permutable axes, ``(B,)``.

    Neuron j of hidden layer l is ``concat(W_l[j, :], b_l[j], W_{l+1}[:, j])``.
    """
    total = 0.0
    for layer in range(len(spec.hidden)):
        feats = neuron_features(spec, params, layer)
        total = total + (feats[:, 1:] - feats[:, :-1]).abs().sum(dim=(1, 2))
    return total


def neuron_features(spec: INRSpec, params: Params, layer: int) -> torch.Tensor:
    """``(B, hidden[layer], in + 1 + out)``: each hidden neuron's incoming weights, bias and outgoing
    weights."""
    w_key, b_key = _keys(spec, layer)
    nxt, _ = _keys(spec, layer + 1)
    return torch.cat([params[w_key], params[b_key][..., None], params[nxt].transpose(1, 2)], dim=2)


def shortest_hamiltonian_path(dist: np.ndarray, restarts: int = 4) -> np.ndarray:
    """An (approximately) shortest open path through all nodes of a symmetric distance matrix.

    Nearest-neighbour paths from the ``restarts`` most outlying nodes (largest total distance:
    natural path ends), each improved by 2-opt until no move shortens it (open-path 2-opt, which
    may also reverse a segment ending at a path end). Starts are chosen from the distances alone,
    so relabelling the nodes relabels the result: the path is a canonical form (barring exact
    ties). Returns the node order, ``(n,)``.
    """
    n = len(dist)
    if n <= 2:
        return np.arange(n)
    starts = np.argsort(-dist.sum(1), kind="stable")[: min(restarts, n)].tolist()
    best, best_len = None, math.inf
    for s in starts:
        path = _nearest_neighbour(dist, s)
        path = _two_opt(dist, path)
        length = dist[path[:-1], path[1:]].sum()
        if length < best_len - 1e-12:
            best, best_len = path, length
    return best


def _nearest_neighbour(dist: np.ndarray, start: int) -> np.ndarray:
    n = len(dist)
    seen = np.zeros(n, bool)
    path = [start]
    seen[start] = True
    for _ in range(n - 1):
        d = np.where(seen, np.inf, dist[path[-1]])
        nxt = int(np.argmin(d))
        path.append(nxt)
        seen[nxt] = True
    return np.array(path)


def _two_opt(dist: np.ndarray, path: np.ndarray) -> np.ndarray:
    """Open-path 2-opt with vectorised move evaluation."""
    n = len(path)
    path = path.copy()
    improved = True
    while improved:
        improved = False
        p = path
        # Reversing p[i..j] changes edges (p[i-1], p[i]) and (p[j], p[j+1]); either may be absent.
        prev = np.concatenate([[-1], p[:-1]])
        nxt = np.concatenate([p[1:], [-1]])
        i_idx, j_idx = np.triu_indices(n, 1)
        a, b = prev[i_idx], p[i_idx]
        c, d = p[j_idx], nxt[j_idx]
        old = np.where(a >= 0, dist[np.maximum(a, 0), b], 0) + np.where(d >= 0, dist[c, np.maximum(d, 0)], 0)
        new = np.where(a >= 0, dist[np.maximum(a, 0), c], 0) + np.where(d >= 0, dist[b, np.maximum(d, 0)], 0)
        gain = old - new
        k = int(np.argmax(gain))
        if gain[k] > 1e-12:
            i, j = i_idx[k], j_idx[k]
            path[i : j + 1] = path[i : j + 1][::-1].copy()
            improved = True
    return path


def canonical_permutations(spec: INRSpec, params: Params) -> list[torch.Tensor]:
    """Per hidden layer and item, the neuron order along a shortest Hamiltonian path of the L1
    distances between neuron features (EquiGen's smooth ordering). ``[(B, hidden[l])]``.

    The path is made canonical up to direction by starting at the end whose neuron comes first
    in a fixed ordering (larger feature norm first).
    """
    perms = []
    for layer in range(len(spec.hidden)):
        feats = neuron_features(spec, params, layer).detach().to(torch.float64)
        dist = torch.cdist(feats, feats, p=1).numpy()
        norms = feats.abs().sum(-1).numpy()
        order = []
        for b in range(feats.shape[0]):
            path = shortest_hamiltonian_path(dist[b])
            if norms[b, path[-1]] > norms[b, path[0]]:
                path = path[::-1]
            order.append(torch.from_numpy(path.copy()))
        perms.append(torch.stack(order))
    return perms


def canonicalise(spec: INRSpec, params: Params) -> Params:
    """Reorder every hidden layer's neurons smoothly; the function is unchanged, TV goes down."""
    return permute_hidden(spec, params, canonical_permutations(spec, params))


def translate_input(spec: INRSpec, params: Params, shift: torch.Tensor) -> Params:
    """Exact translation of the signal: ``f'(x) = f(x + t)`` via ``b0 += W0 t``.

    shift: ``(B, in_dim)``. Only for specs whose first layer sees raw coordinates.
    """
    _require_raw_coords(spec)
    w_key, b_key = _keys(spec, 0)
    out = dict(params)
    out[b_key] = params[b_key] + torch.einsum("bij,bj->bi", params[w_key], shift)
    return out


def rotate_input(spec: INRSpec, params: Params, rotation: torch.Tensor) -> Params:
    """Exact rotation of the input coordinates: ``f'(x) = f(R x)`` via ``W0 ← W0 R``.

    rotation: ``(B, in_dim, in_dim)`` orthogonal matrices.
    """
    _require_raw_coords(spec)
    w_key, _ = _keys(spec, 0)
    out = dict(params)
    out[w_key] = torch.bmm(params[w_key], rotation)
    return out


def rotation_2d(angles: torch.Tensor) -> torch.Tensor:
    """``(B,)`` angles in radians → ``(B, 2, 2)`` rotation matrices."""
    c, s = torch.cos(angles), torch.sin(angles)
    return torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)


def _require_raw_coords(spec: INRSpec) -> None:
    if spec.posenc_freqs:
        raise InputError(
            f"spec {spec.name!r} encodes its coordinates, so a first-layer translation or rotation "
            "is not exact; geometric weight augmentations need raw coordinates")


def add_noise(params: Params, scale: Params | float, sigma: float, generator=None) -> Params:
    """Gaussian noise ``sigma · scale`` on every weight (scale: per-key tensors or a number)."""
    out = {}
    for k, v in params.items():
        s = scale[k] if isinstance(scale, dict) else scale
        out[k] = v + sigma * s * torch.randn(v.shape, generator=generator, dtype=v.dtype)
    return out


def drop_weights(params: Params, p: float, generator=None) -> Params:
    """Zero each weight with probability ``p`` (no rescaling: the function is perturbed)."""
    return {k: v * (torch.rand(v.shape, generator=generator) >= p).to(v.dtype) for k, v in params.items()}
