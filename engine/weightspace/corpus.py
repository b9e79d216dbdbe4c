"""Building a corpus in the structured weight space (``structured.py``), of meshes or images.

A corpus built with ``init_mode="structured"`` goes through four resumable stages, all in the
usual corpus directory so that everything that reads corpora (the encoder's pre-training,
contact sheets, ``data info``) works on it unchanged:

    samples/chunk-NNNNN.safetensors   what each item is fitted to: occupancy samples of a mesh
                                      (points fp16, labels uint8), or an image's pixels (labels
                                      fp16 in [0, 1], in ``image_grid`` order; no points stored)
    base.safetensors                  the shared part, learned over the source split's samples
                                      (``base.safetensors.ckpt`` while it trains: it resumes)
    codes.safetensors                 every item's code, in plan order
    shards/, index.jsonl, stats       every item's complete INR (``SharedBase.full_params``)

Source items keep the codes learned with the base; held-out items are fitted into the finished
base with their code alone, one class together, exactly as a user's shots are (``fit_together``).
With ``StructuredRecipe.refit_source`` the source items are refitted that way too, so that the
generator learns from the same kind of code it is adapted to: the base's own codes are updated
~235 times under the code penalty and end ~2x closer to the mean than a 1,000-step fit
(docs/EXPERIMENTS.md). It costs ~8.5 minutes a family of 170 on 2 cores.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

from engine.atomic import remove_stale_temporaries, writable_folder
from engine.data.build import BuildConfig, _finalise, _item_seed, _plan, make_source
from engine.data.sources import Item, Source
from engine.data.store import CorpusPaths, read_jsonl, read_manifest, write_shard
from engine.errors import InputError
from engine.functional import image_grid
from engine.fit.meshes import MeshFitConfig, normalise_mesh, sample_occupancy
from engine.progress import Progress, ProgressGen, relay
from engine.spec import INRSpec
from engine.tensor_files import read_tensors, write_tensors
from engine.weightspace.structured import (
    BaseConfig, CodeFitConfig, SharedBase, code_quality, fit_together, load_base, save_base, train_base,
)

log = logging.getLogger(__name__)

@dataclasses.dataclass(frozen=True)
class StructuredRecipe:
    """How a structured corpus is made beyond its ``BuildConfig``; each domain's own is
    ``engine.domains.domain_of(spec).structured``."""

    base: BaseConfig = BaseConfig()
    fit: CodeFitConfig = CodeFitConfig()
    samples: MeshFitConfig | None = None  # 3D: the points sampled around each mesh; images need none
    workers: int = 1  # processes that sample meshes (winding numbers are single-threaded)
    refit_source: bool = False  # True: refit source codes as shots are fitted, not keep the base's


def samples_path(paths: CorpusPaths, chunk: int) -> Path:
    return paths.root / "samples" / f"chunk-{chunk:05d}.safetensors"


def base_path(paths: CorpusPaths) -> Path:
    return paths.root / "base.safetensors"


def codes_path(paths: CorpusPaths) -> Path:
    return paths.root / "codes.safetensors"


def _sample_one(job):
    source, item, spec, config, seed = job
    try:
        if source.dimension == "2d":
            pixels = np.asarray(source.load(item), dtype=np.float32).reshape(-1)
            if pixels.size != spec.grid_size**2:
                raise InputError(f"a {pixels.size}-pixel frame for a {spec.grid_size}² spec")
            return (None, pixels, None, pixels), None
        mesh = normalise_mesh(source.load(item))
        s = sample_occupancy(mesh, spec, config, seed=seed)
    except Exception as e:  # one bad item is skipped and recorded, never fatal
        return None, str(e).splitlines()[0][:300] if str(e) else type(e).__name__
    return (s.points, s.labels, s.eval_points, s.eval_labels), None


def _sample_chunk(source: Source, spec: INRSpec, rows_in, recipe: StructuredRecipe, seed: int,
                  path: Path) -> ProgressGen[None]:
    jobs = [(source, Item(r["item"], r["class"], tuple(r["ref"])), spec, recipe.samples, _item_seed(seed, g, 0))
            for g, r in rows_in]
    results = []
    if recipe.workers > 1:
        with ProcessPoolExecutor(recipe.workers) as pool:
            for i, res in enumerate(pool.map(_sample_one, jobs)):
                results.append(res)
                yield Progress("sample", i + 1, len(jobs))
    else:
        for i, job in enumerate(jobs):
            results.append(_sample_one(job))
            yield Progress("sample", i + 1, len(jobs))
    kept = [(g, r, res) for (g, r), (res, _) in zip(rows_in, results) if res is not None]
    skipped = [{"item": r["item"], "reason": why} for (g, r), (res, why) in zip(rows_in, results) if res is None]
    for s in skipped:
        log.warning("skipping %s: %s", s["item"], s["reason"])
    def stack(j, shape, dtype):
        if not kept:
            return torch.zeros((0, *shape), dtype=dtype)
        return torch.from_numpy(np.stack([res[j] for _, _, res in kept])).to(dtype)
    if source.dimension == "2d":
        tensors = {"labels": stack(1, (spec.grid_size**2,), torch.float16)}
    else:
        n = recipe.samples
        p = n.surface_points + n.fine_points + n.uniform_points
        tensors = {"points": stack(0, (p, 3), torch.float16), "labels": stack(1, (p,), torch.uint8),
                   "eval_points": stack(2, (n.eval_points, 3), torch.float16),
                   "eval_labels": stack(3, (n.eval_points,), torch.uint8)}
    tensors["plan_index"] = torch.tensor([g for g, _, _ in kept], dtype=torch.long)
    write_tensors(path, tensors, {"skipped": json.dumps(skipped)})


def load_samples(paths: CorpusPaths, chunks: list[int], spec: INRSpec) -> dict[str, torch.Tensor]:
    """The samples of ``chunks``, concatenated; ``plan_index`` says which plan row each is.
    Images come back as samples too: every item's points are the pixel grid (one shared,
    expanded tensor) and its labels and evaluation labels its pixel values."""
    parts = [read_tensors(samples_path(paths, c), InputError)[1] for c in chunks]
    out = {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
    if "points" not in out:
        grid = image_grid(spec.grid_size, spec.domain)
        out["points"] = out["eval_points"] = grid.expand(len(out["labels"]), -1, -1)
        out["eval_labels"] = out["labels"]
    return out


def _save_codes(paths: CorpusPaths, codes: torch.Tensor, fitted: torch.Tensor) -> None:
    """Every plan row's code ``(N, D)`` and whether it has one yet ``(N,)``."""
    write_tensors(codes_path(paths), {"codes": codes, "fitted": fitted})


def build_structured_corpus(config: BuildConfig, out: str | Path,
                            recipe: StructuredRecipe | None = None,
                            device: torch.device | None = None) -> ProgressGen[dict]:
    """Build (or resume) a structured corpus of meshes or images in ``out``; returns
    ``store.summarise``. ``recipe``: the domain's own (``domain_of(...).structured``) when None.
    The shared part and the codes are learned on ``device`` (the CPU by default); meshes are
    sampled on the CPU; every file is written from the CPU."""
    device = device or torch.device("cpu")
    from engine.data.store import summarise
    from engine.domains import domain_of  # the recipes import this module

    if config.init_mode != "structured":
        raise InputError("build_structured_corpus needs init_mode 'structured'")
    t0 = time.perf_counter()
    paths = CorpusPaths(writable_folder(out, create=False))
    source = make_source(config)
    if source.dimension not in ("2d", "3d"):
        raise InputError("the structured weight space is fitted to meshes or images, not to ready-made INRs")
    recipe = recipe or domain_of(source.dimension).structured
    if source.dimension == "3d" and recipe.samples is None:
        raise InputError("a structured 3D corpus needs the points to sample around each mesh (recipe.samples)")
    yield Progress("plan", 0, 1, "listing items")
    _plan(source, config, paths)
    for folder in (paths.shards, paths.root / "samples", paths.root):  # what a killed build left half-written
        remove_stale_temporaries(folder)
    manifest = read_manifest(paths.root)
    spec = INRSpec.from_dict(manifest["spec"])
    plan = read_jsonl(paths.plan)
    chunks = list(range(manifest["chunks"]))
    for c in chunks:
        if samples_path(paths, c).exists():
            continue
        rows_in = [(g, r) for g, r in enumerate(plan) if r["chunk"] == c]
        yield from relay(_sample_chunk(source, spec, rows_in, recipe, config.seed, samples_path(paths, c)),
                         f"samples {c + 1}/{len(chunks)}")
    samples = load_samples(paths, chunks, spec)
    split = np.array([plan[int(g)]["split"] for g in samples["plan_index"]])
    src = torch.from_numpy(np.nonzero(split == "source")[0])
    if len(src) < 2:
        raise InputError(f"{out}: fewer than 2 source shapes to learn the shared part from")
    codes = torch.zeros(len(plan), SharedBase(spec, recipe.base.rank).code_dim)
    if not base_path(paths).exists():
        ckpt = base_path(paths).with_name(base_path(paths).name + ".ckpt")
        base, src_codes, summary = yield from train_base(
            spec, samples["points"][src], samples["labels"][src], recipe.base, checkpoint=ckpt,
            data_id=f"{paths.root.resolve()}:{len(src)}", device=device)
        codes[samples["plan_index"][src]] = src_codes
        fitted = torch.zeros(len(plan), dtype=torch.bool)
        if not recipe.refit_source:
            fitted.index_fill_(0, samples["plan_index"][src], True)
        _save_codes(paths, codes, fitted)
        save_base(base_path(paths), base, {"train": summary, "corpus": str(paths.root)})
        ckpt.unlink(missing_ok=True)
    base = load_base(base_path(paths))[0].to(device)
    stored = read_tensors(codes_path(paths), InputError)[1]
    codes, fitted = stored["codes"], stored["fitted"]
    position = {int(g): i for i, g in enumerate(samples["plan_index"])}
    # items fitted into the base one class at a time, as a user's shots are (``fit_together``);
    # each class is saved as it finishes, so a resumed build reuses it
    todo = [g for g in position if not bool(fitted[g])]
    for cls in sorted({plan[g]["class"] for g in todo}):
        part = [g for g in todo if plan[g]["class"] == cls]
        at = torch.tensor([position[g] for g in part])
        fit_t0 = time.perf_counter()
        new_codes = yield from relay(fit_together(base, samples["points"][at], samples["labels"][at],
                                                  recipe.fit), f"fit {cls}")
        codes[torch.tensor(part)] = new_codes.cpu()
        fitted[torch.tensor(part)] = True
        _save_codes(paths, codes, fitted)
        log.info("fitted %d %s in %.0f s", len(part), cls, time.perf_counter() - fit_t0)
    for c in chunks:
        if paths.shard(c).exists():
            continue
        chunk_t0 = time.perf_counter()
        rows = [(g, r) for g, r in enumerate(plan) if r["chunk"] == c and g in position]
        if rows:
            at = torch.tensor([position[g] for g, _ in rows])
            chunk_codes = codes[torch.tensor([g for g, _ in rows])].to(device)
            quality, metric = code_quality(base, chunk_codes, samples["eval_points"][at].float(),
                                           samples["eval_labels"][at])
            params = {k: v.cpu() for k, v in base.full_params(chunk_codes).items()}
        else:
            quality, metric, params = [], "", None
        target = config.image_fit.target_psnr if metric == "psnr_db" else 0.9
        records = [{"item": r["item"], "class": r["class"], "split": r["split"], "init": "structured",
                    "init_k": 0, "quality": round(float(q), 4), "metric": metric, "steps": None,
                    "reached": bool(q >= target)} for (g, r), q in zip(rows, quality)]
        write_shard(paths.shard(c), spec, params, records, [], time.perf_counter() - chunk_t0)
        yield Progress("build", c + 1, len(chunks), f"wrote chunk {c + 1} of {len(chunks)}")
    if read_manifest(paths.root)["status"] != "complete":
        _finalise(paths, manifest, time.perf_counter() - t0)
    return summarise(paths.root)


def is_structured(root: str | Path) -> bool:
    """Whether ``root`` holds a finished structured corpus."""
    paths = CorpusPaths(Path(root))
    return base_path(paths).exists() and codes_path(paths).exists()


def load_structured(root: str | Path, split: str = "source") -> tuple[SharedBase, torch.Tensor, list[dict]]:
    """The base, the codes ``(N, D)`` of ``split``'s items and their plan rows."""
    paths = CorpusPaths(Path(root))
    if not is_structured(root):
        raise InputError(f"{root}: not a structured corpus (build one with --init-mode structured)")
    manifest = read_manifest(paths.root)
    if manifest.get("status") != "complete":
        raise InputError(f"{root}: the corpus is not finished; run the same build command again")
    base, _ = load_base(base_path(paths))
    codes = read_tensors(codes_path(paths), InputError)[1]["codes"]
    plan = read_jsonl(paths.plan)
    done = {r["item"] for r in read_jsonl(paths.index)}
    rows = [(g, r) for g, r in enumerate(plan) if r["split"] == split and r["item"] in done]
    return base, codes[torch.tensor([g for g, _ in rows], dtype=torch.long)], [r for _, r in rows]
