"""Torch datasets over a corpus store, with bounded memory and hooks for weight augmentations.

``INRDataset`` is map-style: rows are read on demand from memory-mapped shards (safetensors), so
its memory does not grow with the corpus. ``ShardStream`` is iterable: it reads one shard at a
time in a seeded random order and shuffles inside it, the cheap way through 100k INRs; under
DDP and DataLoader workers each reader takes its own share of the shards.

A ``transform`` receives one INR's weights ``{key: tensor of the spec's shape}`` and returns new
weights (e.g. a random neuron permutation); the encoder's augmentations plug in here.
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from torch.utils.data import Dataset, IterableDataset, get_worker_info

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


class ShardStream(IterableDataset):
    """Iterable over a corpus, one shard in memory at a time, shuffled with ``seed + epoch``."""

    def __init__(self, root: str | os.PathLike, split: str = "source", init_k=None, classes=None,
                 transform: Transform | None = None, seed: int = 0, shuffle: bool = True,
                 canonical: bool = False):
        self._view = _CorpusView(root, split, init_k, classes, canonical)
        self.spec = self._view.spec
        self.classes = self._view.classes
        self.transform = transform
        self.seed = seed
        self.shuffle = shuffle
        self.epoch = 0
        self._by_shard: dict[str, list[dict]] = {}
        for r in self._view.rows:
            self._by_shard.setdefault(r["shard"], []).append(r)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        """Rows this process will yield in the current epoch: its share of the shards under
        torch.distributed (DataLoader workers split that share further among themselves)."""
        return sum(len(self._by_shard[s]) for s in self._my_shards())

    def _my_shards(self) -> list[str]:
        shards = sorted(self._by_shard)
        rng = np.random.default_rng(self.seed + self.epoch)
        if self.shuffle:
            shards = [shards[i] for i in rng.permutation(len(shards))]
        rank, world = 0, 1
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
        info = get_worker_info()
        if info is not None:
            rank, world = rank * info.num_workers + info.id, world * info.num_workers
        return shards[rank::world]

    def __iter__(self) -> Iterator[dict]:
        rng = np.random.default_rng(self.seed + self.epoch + 1)
        for shard in self._my_shards():
            tensors = load_shard(self._view.shard_dir / shard)
            rows = self._by_shard[shard]
            order = rng.permutation(len(rows)) if self.shuffle else range(len(rows))
            for j in order:
                r = rows[j]
                params = {k: v[r["pos"]] for k, v in tensors.items()}
                yield self._view.record(r, params, self.transform)
            del tensors


def collate(records: list[dict]) -> dict:
    """Stack records into a batch: params ``{key: (B, *shape)}``, labels ``(B,)``."""
    keys = records[0]["params"].keys()
    return {
        "params": {k: torch.stack([r["params"][k] for r in records]) for k in keys},
        "label": torch.tensor([r["label"] for r in records]),
        "class": [r["class"] for r in records],
        "item": [r["item"] for r in records],
        "init_k": torch.tensor([r["init_k"] for r in records]),
    }
