"""The corpus store: a directory of sharded INR weights with an index and statistics.

Layout::

    DIR/corpus.json         what was built and how (kind, spec, init mode, arguments, splits, status)
    DIR/items.jsonl         the build plan: every item with its class, split and chunk
    DIR/init.safetensors    the shared initial weights (shared-init corpora)
    DIR/shards/chunk-NNNNN.safetensors   stacked weights {key: (rows, *shape)}; row records and
                            skipped items in the metadata; one per chunk of the plan
    DIR/index.jsonl         one line per INR: shard, position, item, class, split, init, quality
    DIR/stats.safetensors   per-element mean and std of the weights over the source split

A shard is written atomically when its chunk is done, so an interrupted build resumes at the
first missing shard.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from engine.atomic import atomic_write_bytes
from engine.errors import InputError
from engine.functional import Params
from engine.spec import INRSpec
from engine.tensor_files import read_header, read_tensors, write_tensors

CORPUS_FORMAT = "equigen-corpus"
CORPUS_VERSION = 1


@dataclass(frozen=True)
class CorpusPaths:
    root: Path

    @property
    def manifest(self) -> Path:
        return self.root / "corpus.json"

    @property
    def plan(self) -> Path:
        return self.root / "items.jsonl"

    @property
    def init(self) -> Path:
        return self.root / "init.safetensors"

    @property
    def shards(self) -> Path:
        return self.root / "shards"

    def shard(self, chunk: int) -> Path:
        return self.shards / f"chunk-{chunk:05d}.safetensors"

    @property
    def index(self) -> Path:
        return self.root / "index.jsonl"

    @property
    def stats(self) -> Path:
        return self.root / "stats.safetensors"


def write_json(path: Path, obj) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def write_jsonl(path: Path, rows: list[dict]) -> None:
    atomic_write_bytes(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows).encode())


def read_jsonl(path: Path) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def read_manifest(root: str | os.PathLike) -> dict:
    """corpus.json of a corpus directory; InputError with a hint when it is not one."""
    p = CorpusPaths(Path(root)).manifest
    if not p.exists():
        raise InputError(f"{root}: not a corpus directory (no corpus.json); build one with "
                         "'equigen data build'")
    try:
        m = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise InputError(f"{p}: corrupt ({e}); rebuild the corpus") from None
    if m.get("format") != CORPUS_FORMAT:
        raise InputError(f"{p}: not an EquiGen corpus manifest")
    return m


def write_shard(path: Path, spec: INRSpec, params: Params | None, rows: list[dict],
                skipped: list[dict], seconds: float | None = None) -> None:
    """Write one chunk's stacked weights and row records (an empty chunk still gets a file).

    ``seconds`` is the wall time spent loading and fitting the chunk; the manifest sums it so that
    a resumed or multi-process build still reports the whole cost of its corpus."""
    if params is None or not rows:
        tensors = {k: torch.zeros((0, *shape)) for k, shape in spec.param_shapes()}
    else:
        tensors = {k: v.detach().to(torch.float32).contiguous() for k, v in params.items()}
    meta = {"rows": json.dumps(rows), "skipped": json.dumps(skipped)}
    if seconds is not None:
        meta["seconds"] = f"{seconds:.3f}"
    write_tensors(path, tensors, meta)


def read_shard_records(path: Path) -> tuple[list[dict], list[dict]]:
    meta, _ = read_header(path, InputError)
    try:
        return json.loads(meta.get("rows", "[]")), json.loads(meta.get("skipped", "[]"))
    except json.JSONDecodeError:
        raise InputError(f"{path}: damaged shard; delete it and build again to redo it") from None


def read_shard_seconds(path: Path) -> float | None:
    """The fitting seconds recorded in a shard, or None for shards written before they were."""
    value = read_header(path, InputError)[0].get("seconds")
    return float(value) if value is not None else None


def load_shard(path: Path) -> dict[str, torch.Tensor]:
    """A shard's stacked weights ``{key: (n, *shape)}``, its content hash checked."""
    return read_tensors(path, InputError)[1]


class RunningMoments:
    """Per-element mean and std accumulated over batches (float64 sums)."""

    def __init__(self):
        self.n = 0
        self.s: dict[str, torch.Tensor] = {}
        self.s2: dict[str, torch.Tensor] = {}

    def add(self, params: Params) -> None:
        for k, v in params.items():
            v = v.to(torch.float64)
            if k not in self.s:
                self.s[k] = torch.zeros(v.shape[1:], dtype=torch.float64)
                self.s2[k] = torch.zeros(v.shape[1:], dtype=torch.float64)
            self.s[k] += v.sum(0)
            self.s2[k] += (v * v).sum(0)
        self.n += next(iter(params.values())).shape[0]

    def result(self) -> tuple[Params, Params]:
        if self.n == 0:
            raise InputError("no INRs in the source split to compute statistics from")
        mean = {k: (v / self.n) for k, v in self.s.items()}
        std = {k: (self.s2[k] / self.n - mean[k] ** 2).clamp_min(0).sqrt() for k in self.s}
        return ({k: v.float() for k, v in mean.items()}, {k: v.float() for k, v in std.items()})


def write_stats(path: Path, mean: Params, std: Params, count: int) -> None:
    tensors = {f"mean/{k}": v.contiguous() for k, v in mean.items()}
    tensors.update({f"std/{k}": v.contiguous() for k, v in std.items()})
    write_tensors(path, tensors, {"count": str(count), "over": "source split, first init"})


def read_stats(root: str | os.PathLike) -> tuple[Params, Params]:
    """Per-element ``(mean, std)`` of the source split's weights, keyed like the spec."""
    t = read_tensors(CorpusPaths(Path(root)).stats, InputError)[1]
    mean = {k[5:]: v for k, v in t.items() if k.startswith("mean/")}
    std = {k[4:]: v for k, v in t.items() if k.startswith("std/")}
    return mean, std


def summarise(root: str | os.PathLike) -> dict:
    """What ``equigen data info`` prints: counts per class and split, quality, spec, arguments."""
    root = Path(root)
    m = read_manifest(root)
    paths = CorpusPaths(root)
    rows = read_jsonl(paths.index) if paths.index.exists() else _rows_from_shards(paths)
    per_class: dict[str, dict[str, int]] = {}
    per_split: dict[str, int] = {}
    qualities = [r["quality"] for r in rows if r.get("quality") is not None]
    for r in rows:
        c = per_class.setdefault(r["class"], {"source": 0, "target": 0})
        c[r["split"]] += 1
        per_split[r["split"]] = per_split.get(r["split"], 0) + 1
    size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    done = len(list(paths.shards.glob("chunk-*.safetensors"))) if paths.shards.exists() else 0
    return {
        "path": str(root),
        "kind": m["kind"],
        "status": m["status"],
        "chunks_done": done,
        "chunks": m["chunks"],
        "spec": m["spec"]["name"],
        "spec_details": m["spec"],
        "init_mode": m["init_mode"],
        "inits": m["inits"],
        "target_inits": m.get("target_inits", m["inits"]),
        "num_inrs": len(rows),
        "num_items": len({r["item"] for r in rows}),
        "per_split": per_split,
        "per_class": dict(sorted(per_class.items())),
        "source_classes": m["source_classes"],
        "target_classes": m["target_classes"],
        "metric": m.get("metric"),
        "mean_quality": float(np.mean(qualities)) if qualities else None,
        "share_reaching_target": (float(np.mean([r.get("reached", True) for r in rows])) if rows else None),
        "skipped": m.get("skipped_count", 0),
        "builder_args": m["builder_args"],
        "build_seconds": m.get("build_seconds"),
        "fit_seconds": m.get("fit_seconds"),
        "size_bytes": size,
    }


def _rows_from_shards(paths: CorpusPaths) -> list[dict]:
    rows = []
    if paths.shards.exists():
        for shard in sorted(paths.shards.glob("chunk-*.safetensors")):
            rows += read_shard_records(shard)[0]
    return rows
