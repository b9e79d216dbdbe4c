"""A corpus' smoothly canonicalised weights, computed once and cached next to its shards.

Smooth canonicalisation (EquiGen's smooth augmentation, ``weightspace.symmetry.canonicalise``) is
deterministic, so every shard's canonical copy is computed once into ``DIR/canonical/`` under the
shard's name, atomically, with the source shard's size and modification time in its metadata; a
copy whose source has changed since is recomputed. Readers (``INRDataset(..., canonical=True)``)
then read the copies exactly like the shards.

Note that on a shared-initialisation corpus the fits' neurons are already aligned by their common
start; canonicalising each INR on its own reorders them differently and can break that alignment.
It is an option of the consumers, not a default.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from engine.data.store import CorpusPaths, read_jsonl, read_manifest
from engine.errors import InputError
from engine.progress import Progress, ProgressGen
from engine.spec import INRSpec
from engine.weightspace.symmetry import canonicalise, total_variation
from engine.tensor_files import HASH_KEY, read_header, read_tensors, write_tensors

CANONICAL_DIR = "canonical"


def canonical_dir(root: str | os.PathLike) -> Path:
    return Path(root) / CANONICAL_DIR


def _source_stamp(shard: Path) -> str:
    st = shard.stat()
    return json.dumps({"size": st.st_size, "mtime_ns": st.st_mtime_ns})


def _is_current(copy: Path, shard: Path) -> bool:
    if not copy.exists():
        return False
    try:
        return read_header(copy, InputError)[0].get("source") == _source_stamp(shard)
    except InputError:
        return False  # a damaged copy is simply recomputed


def canonicalise_corpus(root: str | os.PathLike, batch: int = 256) -> ProgressGen[dict]:
    """Write (or bring up to date) the canonical copy of every shard of the corpus at ``root``.

    Yields ``Progress("canonicalise", shards_done, shards)``; returns a summary with the mean
    total variation of the weights before and after, and how many shards were (re)computed.
    """
    manifest = read_manifest(root)
    if manifest["status"] != "complete":
        raise InputError(f"{root}: the corpus is not finished; run its build command again to complete it")
    spec = INRSpec.from_dict(manifest["spec"])
    paths = CorpusPaths(Path(root))
    shards = sorted({r["shard"] for r in read_jsonl(paths.index)})
    out_dir = canonical_dir(root)
    out_dir.mkdir(exist_ok=True)
    computed, tv_before, tv_after, count = 0, 0.0, 0.0, 0
    yield Progress("canonicalise", 0, len(shards))
    for done, name in enumerate(shards, 1):
        shard, copy = paths.shards / name, out_dir / name
        if not _is_current(copy, shard):
            meta, params = read_tensors(shard, InputError)
            meta.pop(HASH_KEY, None)
            n = next(iter(params.values())).shape[0]
            parts = [canonicalise(spec, {k: v[s : s + batch] for k, v in params.items()})
                     for s in range(0, n, batch)] if n else [params]
            canon = {k: torch.cat([p[k] for p in parts]).contiguous() for k in params}
            if n:
                tv_before += float(total_variation(spec, params).sum())
                tv_after += float(total_variation(spec, canon).sum())
                count += n
            meta["source"] = _source_stamp(shard)
            write_tensors(copy, canon, meta)
            computed += 1
        yield Progress("canonicalise", done, len(shards))
    summary = {"shards": len(shards), "recomputed": computed}
    if count:
        summary |= {"mean_tv_before": tv_before / count, "mean_tv_after": tv_after / count}
    return summary


def missing_canonical(root: str | os.PathLike, shards: set[str]) -> list[str]:
    """Shards among ``shards`` whose canonical copy is absent or stale."""
    paths = CorpusPaths(Path(root))
    return [s for s in sorted(shards) if not _is_current(canonical_dir(root) / s, paths.shards / s)]
