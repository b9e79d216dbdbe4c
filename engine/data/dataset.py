"""Torch datasets over a corpus store, with bounded memory and hooks for weight augmentations.

``INRDataset`` is map-style: rows are read on demand from memory-mapped shards (safetensors), so
browsing a corpus costs no more memory than the rows read. The trainers take a whole split at
once (``INRDataset.stacked``): the glyph corpus' 17,400 source INRs are 82 MB in float32.

A ``transform`` receives one INR's weights ``{key: tensor of the spec's shape}`` and returns new
weights (e.g. a random neuron permutation); the encoder's augmentations plug in here.
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from torch.utils.data import Dataset

from engine.data.canonical import canonical_dir, canonicalise_corpus, missing_canonical
from engine.data.store import CorpusPaths, load_shard, read_jsonl, read_manifest
from engine.errors import InputError
from engine.progress import drive
from engine.spec import INRSpec

log = logging.getLogger(__name__)

Transform = Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]


def _select(rows: list[dict], split: str, init_k, classes) -> list[dict]:
    if split not in ("source", "target", "all"):
        raise InputError("split must be 'source', 'target' or 'all'")
    out = rows if split == "all" else [r for r in rows if r["split"] == split]
    if init_k is not None:
        ks = {init_k} if isinstance(init_k, int) else set(init_k)
        out = [r for r in out if r["init_k"] in ks]
    if classes is not None:
        out = [r for r in out if r["class"] in set(classes)]
    return out


class _CorpusView:
    def __init__(self, root, split, init_k, classes, canonical=False):
        self.root = Path(root)
        self.manifest = read_manifest(self.root)
        if self.manifest["status"] != "complete":
            raise InputError(f"{root}: the corpus is not finished; run its build command again to complete it")
        self.spec = INRSpec.from_dict(self.manifest["spec"])
        self.classes: list[str] = self.manifest["classes"]
        self.class_index = {c: i for i, c in enumerate(self.classes)}
        self.paths = CorpusPaths(self.root)
        self.rows = _select(read_jsonl(self.paths.index), split, init_k, classes)
        self.shard_dir = self.paths.shards
        if canonical:
            if missing_canonical(self.root, {r["shard"] for r in self.rows}):
                log.info("%s: computing the canonical copies of its shards (cached)", root)
                drive(canonicalise_corpus(self.root))
            self.shard_dir = canonical_dir(self.root)

    def record(self, r: dict, params: dict[str, torch.Tensor], transform: Transform | None) -> dict:
        if transform is not None:
            params = transform(params)
        return {"params": params, "label": self.class_index[r["class"]], "class": r["class"],
                "item": r["item"], "init_k": r["init_k"], "split": r["split"]}


class INRDataset(Dataset):
    """Map-style dataset of a corpus' INRs.

    split: ``"source"``, ``"target"`` or ``"all"``. init_k: keep only these fits (0 = the first,
    shared-init fit; None = all). Each item is ``{"params": {key: tensor}, "label": int,
    "class": str, "item": str, "init_k": int, "split": str}``. canonical: read the smoothly
    canonicalised weights (computed once per corpus and cached, see ``data.canonical``).
    """

    def __init__(self, root: str | os.PathLike, split: str = "source", init_k=None, classes=None,
                 transform: Transform | None = None, max_open_shards: int = 8, canonical: bool = False):
        self._view = _CorpusView(root, split, init_k, classes, canonical)
        self.spec = self._view.spec
        self.classes = self._view.classes
        self.rows = self._view.rows
        self.transform = transform
        self._handles: OrderedDict[str, object] = OrderedDict()
        self._max_open = max_open_shards
        self._keys = [k for k, _ in self.spec.param_shapes()]

    def __len__(self) -> int:
        return len(self.rows)

    def _handle(self, shard: str):
        h = self._handles.get(shard)
        if h is None:
            h = safe_open(str(self._view.shard_dir / shard), framework="pt")
            self._handles[shard] = h
            if len(self._handles) > self._max_open:
                self._handles.popitem(last=False)
        else:
            self._handles.move_to_end(shard)
        return h

    def __getitem__(self, i: int) -> dict:
        r = self.rows[i]
        h = self._handle(r["shard"])
        params = {k: h.get_slice(k)[r["pos"] : r["pos"] + 1][0] for k in self._keys}
        return self._view.record(r, params, self.transform)

    def class_index(self, name: str) -> int:
        return self._view.class_index[name]

    def labels(self) -> np.ndarray:
        return np.array([self._view.class_index[r["class"]] for r in self.rows])

    def stacked(self) -> dict[str, torch.Tensor]:
        """All selected rows' weights as ``{key: (N, *shape)}``, read shard by shard."""
        out = {k: torch.empty((len(self.rows), *s)) for k, s in self.spec.param_shapes()}
        by_shard: dict[str, list[tuple[int, int]]] = {}
        for i, r in enumerate(self.rows):
            by_shard.setdefault(r["shard"], []).append((i, r["pos"]))
        for shard, pairs in by_shard.items():
            tensors = load_shard(self._view.shard_dir / shard)
            dst = torch.tensor([a for a, _ in pairs])
            src = torch.tensor([b for _, b in pairs])
            for k in out:
                out[k][dst] = tensors[k][src]
        return out

    def __getstate__(self):  # handles are per process (DataLoader workers)
        state = self.__dict__.copy()
        state["_handles"] = OrderedDict()
        return state
