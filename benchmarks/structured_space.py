"""Is the structured 3D weight space a shape space? Fit quality, fit speed and midpoints.

Run: ``.venv/bin/python benchmarks/structured_space.py --data CORPUS --out docs/structured_space
[--pairs 10] [--resolution 128]`` on a corpus built with ``--init-mode structured``.

- **Held-out fits**: IoU (20k uniform points) of every held-out item, fitted into the finished
  base with its code alone, one family together (what the corpus build recorded), per family.
- **Fit speed**: a fresh fit of 10 held-out lamps, sampling and winding numbers included, fitted
  together as a user's shots are (``fit_together``); seconds per shape.
- **Midpoints**: for pairs of held-out items of one family, the INR halfway between their codes,
  meshed at ``--resolution``. A midpoint passes when it is watertight and has no more connected
  pieces than the more-pieced of its two source meshes (lamps are two pieces by construction).
  The fits themselves are checked the same way against their own source mesh.

Writes ``report.json`` and ``midpoints.png`` (per pair: source A, fit A, midpoint, fit B,
source B) into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from engine.data.build import BuildConfig, make_source
from engine.data.sources import Item
from engine.data.store import CorpusPaths, read_jsonl, read_manifest
from engine.decode import like_family, mesh_or_none
from engine.inr_io import INR
from engine.fit.meshes import normalise_mesh, sample_occupancy
from engine.progress import drive
from engine.render import MeshRenderer
from engine.domains import SHAPES
from engine.weightspace.corpus import base_path, codes_path
from engine.weightspace.structured import CodeFitConfig, code_iou, fit_together, load_base
from safetensors.torch import load_file


def mesh_of(base, code: torch.Tensor, resolution: int):
    return mesh_or_none(INR.from_batch(base.spec, base.full_params(code[None]), 0), resolution)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--pairs", type=int, default=10, help="midpoint pairs per held-out family")
    ap.add_argument("--resolution", type=int, default=128)
    ap.add_argument("--tile", type=int, default=96)
    args = ap.parse_args()
    torch.set_num_threads(2)
    paths = CorpusPaths(Path(args.data))
    manifest = read_manifest(paths.root)
    base, _ = load_base(base_path(paths))
    codes = load_file(str(codes_path(paths)))["codes"]
    plan = read_jsonl(paths.plan)
    index = read_jsonl(paths.index)
    source = make_source(BuildConfig(**{k: (tuple(v) if isinstance(v, list) else v)
                                         for k, v in manifest["builder_args"].items()
                                         if k not in ("image_fit", "mesh_fit")}))
    report: dict = {"corpus": str(paths.root), "resolution": args.resolution, "families": {}}

    for fam in manifest["target_classes"]:
        q = np.array([r["quality"] for r in index if r["class"] == fam])
        report["families"][fam] = {"heldout_iou_mean": float(q.mean()), "heldout_iou_min": float(q.min()),
                                   "heldout_iou_p10": float(np.percentile(q, 10)), "items": int(len(q))}
    q_src = np.array([r["quality"] for r in index if r["split"] == "source"])
    report["source_iou_mean"] = float(q_src.mean())

    # fit speed: 10 held-out meshes from scratch, sampling included
    targets = [g for g, r in enumerate(plan) if r["split"] == "target"][:10]
    t0 = time.perf_counter()
    samples = []
    for g in targets:
        r = plan[g]
        mesh = normalise_mesh(source.load(Item(r["item"], r["class"], tuple(r["ref"]))))
        samples.append(sample_occupancy(mesh, base.spec, SHAPES.structured.samples, seed=g))
    t_sample = time.perf_counter() - t0
    pts = torch.from_numpy(np.stack([s.points for s in samples]))
    lab = torch.from_numpy(np.stack([s.labels for s in samples]))
    z = drive(fit_together(base, pts, lab, CodeFitConfig()))
    t_total = time.perf_counter() - t0
    ev = torch.from_numpy(np.stack([s.eval_points for s in samples]))
    evl = torch.from_numpy(np.stack([s.eval_labels for s in samples]))
    report["fit_speed"] = {"shapes": len(targets), "seconds_per_shape": t_total / len(targets),
                           "sampling_seconds_per_shape": t_sample / len(targets),
                           "iou_mean": float(code_iou(base, z, ev, evl).mean())}

    renderer = MeshRenderer(args.tile)
    rows = []
    for fam in manifest["target_classes"]:
        members = [g for g, r in enumerate(plan) if r["class"] == fam][: 2 * args.pairs]
        mids, fits = [], []
        for a, b in zip(members[0::2], members[1::2]):
            src = [normalise_mesh(source.load(Item(plan[g]["item"], fam, tuple(plan[g]["ref"])))) for g in (a, b)]
            fa, fb = mesh_of(base, codes[a], args.resolution), mesh_of(base, codes[b], args.resolution)
            mid = mesh_of(base, (codes[a] + codes[b]) / 2, args.resolution)
            fits += [like_family(fa, src[0].body_count), like_family(fb, src[1].body_count)]
            mids.append(like_family(mid, max(m.body_count for m in src)))
            tiles = [renderer.render(m) if m is not None else np.zeros((args.tile, args.tile, 3), np.uint8)
                     for m in (src[0], fa, mid, fb, src[1])]
            rows.append(np.concatenate(tiles, axis=1))
        report["families"][fam] |= {"midpoints_like_family": float(np.mean(mids)), "pairs": len(mids),
                                    "fits_like_source": float(np.mean(fits))}
        print(fam, report["families"][fam], flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    half = (len(rows) + 1) // 2
    left, right = rows[:half], rows[half:]
    right += [np.zeros_like(rows[0])] * (len(left) - len(right))
    sheet = np.concatenate([np.concatenate([l, r], axis=1) for l, r in zip(left, right)], axis=0)
    Image.fromarray(sheet).save(out / "midpoints.png")
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
