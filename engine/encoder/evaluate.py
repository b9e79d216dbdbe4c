"""Checking the encoder instead of trusting it, on classes it never saw (the target split).

- k-NN class accuracy (leave-one-out, cosine on standardised features) from ψ, against two
  references on the same rows: the raw flattened weights (per-element normalised with the
  corpus statistics) and a randomly initialised encoder of the same shape;
- retrieval: for each item's second fit (another initialisation), is the nearest first fit that
  of the same item? (needs a corpus built with ``--inits 2`` or more);
- invariance: relative change of ψ under random hidden-neuron permutations.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from engine.data.dataset import INRDataset
from engine.data.store import read_stats
from engine.encoder.model import WeightEncoder
from engine.errors import InputError
from engine.functional import Params
from engine.weightspace.symmetry import permute_hidden, random_permutations


@torch.inference_mode()
def embed(encoder: WeightEncoder, params: Params, batch: int = 256) -> torch.Tensor:
    """Features ``(N, feature_dim)`` on the CPU of N weight sets, computed where the encoder is."""
    n = next(iter(params.values())).shape[0]
    device = encoder.norm_mean.device
    return torch.cat([encoder({k: v[s : s + batch].to(device) for k, v in params.items()}).cpu()
                      for s in range(0, n, batch)])


def flatten(params: Params, mean: Params, std: Params) -> torch.Tensor:
    """Per-element normalised weights as vectors, ``(N, num_params)``."""
    return torch.cat([((v - mean[k]) / std[k].clamp_min(1e-6)).flatten(1) for k, v in params.items()], 1)


def _standardise(x: torch.Tensor) -> torch.Tensor:
    x = (x - x.mean(0)) / x.std(0).clamp_min(1e-6)
    return torch.nn.functional.normalize(x, dim=1)


def knn_accuracy(features: torch.Tensor, labels: np.ndarray, k: int = 5) -> float:
    """Leave-one-out k-NN accuracy with cosine similarity on standardised features."""
    f = _standardise(features.float())
    sim = f @ f.T
    sim.fill_diagonal_(-float("inf"))
    nn_idx = sim.topk(k, dim=1).indices.numpy()
    votes = labels[nn_idx]
    pred = np.array([np.bincount(v, minlength=labels.max() + 1).argmax() for v in votes])
    return float((pred == labels).mean())


def retrieval_accuracy(queries: torch.Tensor, gallery: torch.Tensor) -> float:
    """Share of queries whose nearest gallery row (cosine, standardised jointly) has its index."""
    both = _standardise(torch.cat([queries, gallery]).float())
    q, g = both[: len(queries)], both[len(queries) :]
    return float(((q @ g.T).argmax(1) == torch.arange(len(q))).float().mean())


def invariance_error(encoder: WeightEncoder, params: Params, seed: int = 0) -> float:
    """Mean relative change ``|ψ(Pw) − ψ(w)| / |ψ(w)|`` over random hidden permutations."""
    g = torch.Generator().manual_seed(seed)
    n = next(iter(params.values())).shape[0]
    permuted = permute_hidden(encoder.spec, params, random_permutations(encoder.spec, n, g))
    a, b = embed(encoder, params), embed(encoder, permuted)
    return float(((a - b).norm(dim=1) / a.norm(dim=1).clamp_min(1e-12)).mean())


def evaluate_encoder(encoder: WeightEncoder, data: str | os.PathLike, k: int = 5, seed: int = 0,
                     max_items: int = 4000) -> dict:
    """All three checks on the target split of ``data``; see the module docstring. The encoders
    compute where ``encoder`` is; the weights are read and compared on the CPU."""
    first = INRDataset(data, split="target", init_k=0)
    if len(first) < k + 1:
        raise InputError(f"{data}: the target split has too few INRs ({len(first)}) to evaluate on")
    if first.spec != encoder.spec:
        raise InputError(f"the encoder is for spec {encoder.spec.name!r}, the corpus holds {first.spec.name!r}")
    rng = np.random.default_rng(seed)
    keep = np.sort(rng.choice(len(first), min(max_items, len(first)), replace=False))
    first.rows = [first.rows[i] for i in keep]
    params = first.stacked()
    labels = first.labels()
    mean, std = read_stats(data)
    torch.manual_seed(seed)
    random_encoder = WeightEncoder(encoder.spec, encoder.config, encoder.norm_mean.clone(),
                                   encoder.norm_std.clone()).to(encoder.norm_mean.device).eval()
    feats = {"encoder": embed(encoder, params), "random_encoder": embed(random_encoder, params),
             "raw_weights": flatten(params, mean, std)}
    result: dict = {
        "target_classes": sorted(set(r["class"] for r in first.rows)),
        "num_inrs": len(first), "k": k,
        "knn_accuracy": {name: knn_accuracy(f, labels, k) for name, f in feats.items()},
        "chance": float(np.bincount(labels).max() / len(labels)),
    }
    second = INRDataset(data, split="target", init_k=1)
    by_item = {r["item"]: i for i, r in enumerate(first.rows)}
    pairs = [(j, by_item[r["item"]]) for j, r in enumerate(second.rows) if r["item"] in by_item]
    if pairs:
        second.rows = [second.rows[j] for j, _ in pairs]
        q_params = second.stacked()
        gallery_idx = torch.tensor([i for _, i in pairs])
        q_feats = {"encoder": embed(encoder, q_params), "random_encoder": embed(random_encoder, q_params),
                   "raw_weights": flatten(q_params, mean, std)}
        result["retrieval_accuracy"] = {
            name: retrieval_accuracy(q_feats[name], feats[name][gallery_idx]) for name in feats}
        result["retrieval_queries"] = len(pairs)
    else:
        result["retrieval_accuracy"] = None
        result["retrieval_note"] = "the corpus has no second fits; build it with --inits 2"
    sub = {kk: v[:256] for kk, v in params.items()}
    result["invariance_error"] = invariance_error(encoder, sub, seed)
    return result
