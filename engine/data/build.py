"""Building a corpus: plan the items, fit them chunk by chunk into shards, then index the result.

The plan (items.jsonl) is made once, so a resumed build, or each process of a ``torchrun`` build,
works on exactly the same chunks. Every random choice depends only on the seed and an item's place
in the plan, never on which process fits it, so a multi-process build equals a single-process one.
Items that cannot be loaded are skipped and recorded; nothing about one item stops the build.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from engine.atomic import remove_stale_temporaries, writable_folder
from engine.checks import at_least, one_of, seed
from engine.data.sources import (
    FashionMnistSource, Glyph3DSource, GlyphSource, ImageFolderSource, InrFolderSource, Item,
    MeshFolderSource, Shapes3DSource, Source, default_targets,
)
from engine.data.store import (
    CORPUS_FORMAT, CORPUS_VERSION, CorpusPaths, RunningMoments, read_jsonl, read_manifest,
    read_shard_records, read_shard_seconds, load_shard, write_json, write_jsonl, write_shard, write_stats,
)
from engine.errors import InputError
from engine.fit.images import ImageFitConfig, fit_images
from engine.fit.meshes import MeshFitConfig, fit_occupancy, normalise_mesh, sample_occupancy
from engine.functional import Params, init_from_seed
from engine.inr_io import INR, load_inr, save_inr
from engine.progress import Progress, ProgressGen, relay
from engine.spec import HD_OCCUPANCY, MNIST_SIREN, INRSpec

log = logging.getLogger(__name__)

KINDS = ("glyphs", "fashion-mnist", "images", "meshes", "inrs", "shapes3d", "glyphs3d")
# "shared": every item fitted from one initial weight set; "independent": each from its own;
# "structured" (3D): every item a code in a shared network learned over the corpus
# (engine/weightspace/corpus.py)
INIT_MODES = ("shared", "independent", "structured")


@dataclass(frozen=True)
class BuildConfig:
    """Everything that decides a corpus; stored in corpus.json as the builder's arguments."""

    kind: str
    per_class: int | None = None
    inits: int = 1
    # fits per target-split item, when it should differ from ``inits``: held-out second fits are
    # what encoder retrieval is measured on, and they cost a fraction of doubling the source split
    target_inits: int | None = None
    seed: int = 0
    init_mode: str = "shared"  # "shared": one initial weight set for all; "independent"
    source_classes: tuple[str, ...] | None = None
    target_classes: tuple[str, ...] | None = None
    root: str | None = None
    fonts: tuple[str, ...] = ("/usr/share/fonts",)
    families: tuple[str, ...] | None = None
    count: int = 250
    chunk_size: int | None = None
    image_fit: ImageFitConfig = ImageFitConfig()
    mesh_fit: MeshFitConfig | None = None  # None: the 3D domain's corpus fit (engine.domains)
    extra: dict = field(default_factory=dict, compare=False)

    def __post_init__(self):
        one_of("corpus kind", self.kind, KINDS)
        one_of("initialisation mode", self.init_mode, INIT_MODES)
        at_least("fits per item", self.inits, 1)
        at_least("fits per held-out item", self.target_inits, 1, optional=True)
        at_least("items per class", self.per_class, 1, optional=True)
        at_least("shapes per family", self.count, 1)
        at_least("items per chunk", self.chunk_size, 1, optional=True)
        seed("the build seed", self.seed)
        if self.kind in ("images", "meshes", "inrs") and not self.root:
            raise InputError(f"building '{self.kind}' needs a root folder with one subfolder per class")
        if self.kind == "inrs" and max(self.inits, self.target_inits or 1) > 1:
            raise InputError("'inrs' corpora import files as they are; they get one fit per item")

    def with_domain_fits(self) -> "BuildConfig":
        """This config with the domain's corpus mesh fit where none was given."""
        from engine.domains import SHAPES  # the recipes import this module

        return self if self.mesh_fit is not None else dataclasses.replace(self, mesh_fit=SHAPES.corpus_mesh_fit)

    def inits_for(self, split: str) -> int:
        """How many fits each item of ``split`` ("source" or "target") gets."""
        if split == "target" and self.target_inits is not None:
            return self.target_inits
        return self.inits

    def arguments(self) -> dict:
        d = dataclasses.asdict(self.with_domain_fits())
        d.pop("extra")
        for k in ("source_classes", "target_classes", "fonts", "families"):
            if d[k] is not None:
                d[k] = list(d[k])
        return d


def make_source(config: BuildConfig) -> Source:
    k = config.kind
    if k == "glyphs":
        return GlyphSource(font_dirs=tuple(config.fonts))
    if k == "glyphs3d":
        return Glyph3DSource(font_dirs=tuple(config.fonts))
    if k == "fashion-mnist":
        return FashionMnistSource(root=config.root) if config.root else FashionMnistSource()
    if k == "images":
        return ImageFolderSource(root=config.root)
    if k == "meshes":
        return MeshFolderSource(root=config.root)
    if k == "inrs":
        return InrFolderSource(root=config.root)
    fams = tuple(config.families) if config.families else Shapes3DSource.families
    return Shapes3DSource(families=fams, count=config.count, seed=config.seed)


def cap_per_class(items: list[Item], per_class: int | None, seed: int) -> list[Item]:
    """At most ``per_class`` items of each class, drawn with the seed, in the original order."""
    if per_class is None:
        return items
    rng = np.random.default_rng(seed)
    by_class: dict[str, list[int]] = {}
    for i, it in enumerate(items):
        by_class.setdefault(it.label, []).append(i)
    keep: set[int] = set()
    for label in sorted(by_class):
        idx = by_class[label]
        if len(idx) > per_class:
            idx = sorted(rng.choice(idx, per_class, replace=False).tolist())
        keep.update(idx)
    return [it for i, it in enumerate(items) if i in keep]


def resolve_splits(source: Source, classes: list[str], config: BuildConfig) -> tuple[list[str], list[str]]:
    """(source classes, target classes): given ones, the complement of the other, or defaults."""
    known = set(classes)
    for given in (config.source_classes, config.target_classes):
        unknown = sorted(set(given or ()) - known)
        if unknown:
            raise InputError(f"unknown classes {unknown}; this corpus has {', '.join(sorted(known))}")
    if config.source_classes is not None and config.target_classes is not None:
        overlap = set(config.source_classes) & set(config.target_classes)
        if overlap:
            raise InputError(f"classes {sorted(overlap)} are both source and target")
        return sorted(config.source_classes), sorted(config.target_classes)
    if config.source_classes is not None:
        return sorted(config.source_classes), sorted(known - set(config.source_classes))
    targets = config.target_classes if config.target_classes is not None else default_targets(source, classes)
    return sorted(known - set(targets)), sorted(targets)


def _item_seed(seed: int, index: int, k: int) -> int:
    return (seed * 1_000_003 + index * 101 + k) % (2**62)


def _init_id(config: BuildConfig, index: int, k: int) -> str:
    if k == 0 and config.init_mode == "shared":
        return f"shared:{config.seed}"
    return f"seed:{_item_seed(config.seed, index, k)}"


def _item_inits(spec: INRSpec, config: BuildConfig, indices: list[int], k: int, shared: Params) -> Params:
    if k == 0 and config.init_mode == "shared":
        return shared
    parts = [init_from_seed(spec, _item_seed(config.seed, g, k)) for g in indices]
    return {key: torch.cat([p[key] for p in parts]) for key in parts[0]}


def _chunk_size(config: BuildConfig, dimension: str) -> int:
    if config.chunk_size:
        return config.chunk_size
    return {"2d": 1024, "3d": 64, "inr": 1024}[dimension]


def build_corpus(
    config: BuildConfig, out: str | Path, rank: int = 0, world: int = 1,
    barrier: Callable[[], None] | None = None,
    share: Callable[[object], object] | None = None,
    device: torch.device | None = None,
) -> ProgressGen[dict]:
    """Build (or resume) the corpus described by ``config`` in ``out``, fitting on ``device``
    (the CPU by default; under torchrun each rank passes its own GPU).

    With ``world > 1`` every process calls this with its rank, a barrier and ``share`` (rank 0's
    value handed to every rank); chunk c is fitted by rank ``c % world``, rank 0 plans and
    indexes. Returns the summary of store.summarise.
    """
    from engine.data.store import summarise

    config = config.with_domain_fits()
    t0 = time.perf_counter()
    paths = CorpusPaths(writable_folder(out, create=False))
    source = make_source(config)
    problem = None
    if rank == 0:
        yield Progress("plan", 0, 1, "listing items")
        try:
            _plan(source, config, paths)
        except InputError as e:
            problem = str(e)
    if share is not None:
        problem = share(problem)  # every rank stops with rank 0's message instead of waiting
    if problem is not None:
        raise InputError(problem)
    manifest = read_manifest(paths.root)
    spec = INRSpec.from_dict(manifest["spec"])
    plan = read_jsonl(paths.plan)
    n_chunks = manifest["chunks"]
    remove_stale_temporaries(paths.shards)  # what a killed build left half-written
    shared = load_inr(paths.init).batched() if paths.init.exists() else None
    mine = [c for c in range(n_chunks) if c % world == rank]
    todo = [c for c in mine if not paths.shard(c).exists()]
    if len(todo) < len(mine):
        log.info("resuming: %d of %d chunks already built", len(mine) - len(todo), len(mine))
    for j, c in enumerate(todo):
        rows_in = [(g, r) for g, r in enumerate(plan) if r["chunk"] == c]
        chunk_t0 = time.perf_counter()
        params, rows, skipped = yield from relay(
            _fit_chunk(source, config, spec, rows_in, shared, device), f"chunk {c + 1}/{n_chunks}",
        )
        write_shard(paths.shard(c), spec, params, rows, skipped, time.perf_counter() - chunk_t0)
        yield Progress("build", len(mine) - len(todo) + j + 1, len(mine),
                       f"wrote chunk {c + 1} of {n_chunks} ({len(rows)} INRs, {len(skipped)} skipped)")
    if barrier is not None:
        barrier()
    if rank == 0 and read_manifest(paths.root)["status"] != "complete":
        yield Progress("index", 0, 1, "indexing")
        _finalise(paths, manifest, time.perf_counter() - t0)
    if barrier is not None:
        barrier()
    return summarise(paths.root)


def _plan(source: Source, config: BuildConfig, paths: CorpusPaths) -> None:
    args = config.arguments()
    if paths.manifest.exists():
        old = read_manifest(paths.root)
        # .get: an option added later reads as its default (None) in corpora built before it
        changed = sorted(k for k in args if old["builder_args"].get(k) != args[k])
        if changed:
            raise InputError(
                f"{paths.root} holds a corpus built with other arguments ({', '.join(changed)}); "
                "use another --out, or the same arguments to resume")
        return
    if paths.root.exists() and any(paths.root.iterdir()):
        raise InputError(f"{paths.root} is not empty and holds no corpus; choose an empty or new --out")
    items = cap_per_class(source.items(), config.per_class, config.seed)
    if not items:
        raise InputError(f"no items found for '{config.kind}'")
    classes = sorted({it.label for it in items})
    src, tgt = resolve_splits(source, classes, config)
    split_of = {c: "source" for c in src} | {c: "target" for c in tgt}
    size = _chunk_size(config, source.dimension)
    plan = [{"item": it.item_id, "class": it.label, "split": split_of[it.label], "chunk": i // size,
             "ref": list(it.ref)} for i, it in enumerate(items)]
    if source.dimension == "2d":
        spec, metric = MNIST_SIREN, "psnr_db"
    elif source.dimension == "3d":
        spec, metric = HD_OCCUPANCY, "iou"
    else:
        spec, metric = _spec_of_first_inr(source, items), None
    paths.root.mkdir(parents=True, exist_ok=True)
    write_jsonl(paths.plan, plan)
    if config.init_mode == "shared" and source.dimension != "inr":
        save_inr(paths.init, INR.from_batch(spec, init_from_seed(spec, config.seed), 0,
                                            {"role": "shared initial weights", "seed": config.seed}))
    write_json(paths.manifest, {
        "format": CORPUS_FORMAT, "version": CORPUS_VERSION, "kind": config.kind,
        "spec": spec.to_dict(), "metric": metric,
        "init_mode": "imported" if source.dimension == "inr" else config.init_mode,
        "inits": config.inits, "target_inits": config.inits_for("target"),
        "seed": config.seed, "builder_args": args,
        "classes": classes, "source_classes": src, "target_classes": tgt,
        "num_items": len(items), "chunks": (len(items) + size - 1) // size, "chunk_size": size,
        "source_details": source.describe(), "status": "building",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    })


def _spec_of_first_inr(source: Source, items: list[Item]) -> INRSpec:
    for it in items:
        try:
            return source.load(it).spec
        except Exception as e:  # an unreadable file is skipped here as in the build
            log.warning("skipping %s: %s", it.item_id, e)
    raise InputError("none of the INR files could be read")


def _load_items(source: Source, rows_in):
    loaded, skipped = [], []
    for g, r in rows_in:
        item = Item(r["item"], r["class"], tuple(r["ref"]))
        try:
            loaded.append((g, r, source.load(item)))
        except Exception as e:  # one bad item is logged and skipped, never fatal
            log.warning("skipping %s: %s", r["item"], e)
            skipped.append({"item": r["item"], "reason": str(e).splitlines()[0][:300] if str(e) else type(e).__name__})
    return loaded, skipped


def _row(config, g, r, k, quality, metric, steps, reached) -> dict:
    return {"item": r["item"], "class": r["class"], "split": r["split"], "init": _init_id(config, g, k),
            "init_k": k, "quality": None if quality is None else round(float(quality), 4),
            "metric": metric, "steps": steps, "reached": reached}


def _fits_by_init(config: BuildConfig, loaded) -> list[tuple[int, list[int]]]:
    """``[(k, positions in loaded that get a k-th fit)]``: every item gets fit 0, later fits go to
    the items whose split asks for them."""
    most = max(config.inits_for("source"), config.inits_for("target"))
    plan = [(k, [j for j, (_, r, _) in enumerate(loaded) if k < config.inits_for(r["split"])]) for k in range(most)]
    return [(k, todo) for k, todo in plan if todo]


def _fit_chunk(source: Source, config: BuildConfig, spec: INRSpec, rows_in, shared: Params | None,
               device: torch.device | None = None):
    """Fit (or import) one chunk: returns (stacked params, row records, skipped records)."""
    loaded, skipped = _load_items(source, rows_in)
    yield Progress("load", len(rows_in), len(rows_in), f"loaded {len(loaded)} items")
    if not loaded:
        return None, [], skipped
    parts, rows = [], []
    if source.dimension == "inr":
        for g, r, inr in loaded:
            if inr.spec != spec:
                skipped.append({"item": r["item"], "reason": f"spec {inr.spec.name} differs from the corpus' {spec.name}"})
                continue
            q = inr.meta.get("psnr_db", inr.meta.get("iou"))
            parts.append(inr.batched())
            rows.append(_row(config, g, r, 0, q, "psnr_db" if "psnr_db" in inr.meta else ("iou" if "iou" in inr.meta else None), None, True) | {"init": "imported"})
        if not parts:
            return None, [], skipped
        return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}, rows, skipped

    indices = [g for g, _, _ in loaded]
    if source.dimension == "2d":
        frames = np.stack([x for _, _, x in loaded])
        batch = config.image_fit.batch_size
        for k, todo in _fits_by_init(config, loaded):
            for s in range(0, len(todo), batch):
                part = todo[s:s + batch]
                init = _item_inits(spec, config, [indices[j] for j in part], k, shared)
                out = yield from relay(fit_images(frames[part], init, spec, config.image_fit, device))
                parts.append(out.params)
                rows += [_row(config, *loaded[j][:2], k, out.quality[i], "psnr_db", int(out.steps[i]), bool(out.reached[i]))
                         for i, j in enumerate(part)]
    else:
        samples = []
        for g, _, mesh in loaded:
            samples.append(sample_occupancy(normalise_mesh(mesh), spec, config.mesh_fit, seed=_item_seed(config.seed, g, 0)))
            yield Progress("sample", len(samples), len(loaded))
        batch = config.mesh_fit.batch_size
        for k, todo in _fits_by_init(config, loaded):
            for s in range(0, len(todo), batch):
                part = todo[s:s + batch]
                init = _item_inits(spec, config, [indices[j] for j in part], k, shared)
                fit_cfg = dataclasses.replace(config.mesh_fit, seed=_item_seed(config.seed, indices[part[0]], k))
                out = yield from relay(fit_occupancy([samples[j] for j in part], init, spec, fit_cfg, device))
                parts.append(out.params)
                rows += [_row(config, *loaded[j][:2], k, out.quality[i], "iou", int(out.steps[i]), bool(out.reached[i]))
                         for i, j in enumerate(part)]
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}, rows, skipped


def _finalise(paths: CorpusPaths, manifest: dict, seconds: float) -> None:
    index, skipped, chunk_seconds = [], [], []
    moments = RunningMoments()
    for c in range(manifest["chunks"]):
        shard = paths.shard(c)
        if not shard.exists():
            raise InputError(f"{shard} is missing; run the same build command again to finish it")
        rows, skip = read_shard_records(shard)
        skipped += skip
        chunk_seconds.append(read_shard_seconds(shard))
        index += [r | {"shard": shard.name, "pos": i} for i, r in enumerate(rows)]
        source_rows = [i for i, r in enumerate(rows) if r["split"] == "source" and r["init_k"] == 0]
        if source_rows:
            tensors = load_shard(shard)
            moments.add({k: v[source_rows] for k, v in tensors.items()})
    write_jsonl(paths.index, index)
    if moments.n:
        mean, std = moments.result()
        write_stats(paths.stats, mean, std, moments.n)
    manifest = dict(manifest)
    manifest.update({
        "status": "complete", "num_inrs": len(index), "skipped_count": len(skipped),
        "skipped": skipped[:200],
        # Wall time of the run that completed the build; fit_seconds sums every chunk's fitting
        # time over all runs and processes (process-seconds under torchrun).
        "build_seconds": round(seconds, 1),
        "fit_seconds": (round(sum(chunk_seconds), 1) if None not in chunk_seconds else None),
        "completed": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    })
    write_json(paths.manifest, manifest)
