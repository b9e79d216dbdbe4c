"""Write an example pack: shots of a held-out family as meshes and as INR files of the shipped base.

Run: ``.venv/bin/python packaging/make_example_pack.py --corpus CORPUS --family mug [--count 10]
--out resources/examples/mugs``. The meshes are the corpus' own items (normalised into the unit
cube, as the studio reads any mesh); the INR files are those items' complete INRs from the
corpus, so a model trained on that corpus reads them back as its own codes, without fitting.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from engine.data.build import BuildConfig, make_source
from engine.data.dataset import INRDataset
from engine.data.sources import Item
from engine.data.store import CorpusPaths, read_jsonl, read_manifest
from engine.export import export_mesh
from engine.fit.meshes import normalise_mesh
from engine.inr_io import INR, save_inr


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--family", required=True)
    ap.add_argument("--count", type=int, default=10)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    paths = CorpusPaths(Path(args.corpus))
    manifest = read_manifest(paths.root)
    if args.family not in manifest["target_classes"]:
        raise SystemExit(f"{args.family!r} is not held out in {args.corpus} ({', '.join(manifest['target_classes'])})")
    builder = {k: (tuple(v) if isinstance(v, list) else v) for k, v in manifest["builder_args"].items()
               if k not in ("image_fit", "mesh_fit")}
    source = make_source(BuildConfig(**builder))
    ds = INRDataset(paths.root, split="all", init_k=0, classes=[args.family])
    params = ds.stacked()
    plan = {r["item"]: r for r in read_jsonl(paths.plan)}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for i in range(args.count):
        record = ds.rows[i]
        row = plan[record["item"]]
        name = f"{args.family}-{i:02d}"
        mesh = normalise_mesh(source.load(Item(row["item"], row["class"], tuple(row["ref"]))))
        export_mesh(mesh, out / f"{name}.obj")
        meta = {"family": args.family, "source": row["item"], "fit_iou": record["quality"]}
        save_inr(out / f"{name}.safetensors", INR.from_batch(ds.spec, params, i, meta))
    print(f"wrote {args.count} meshes and INR files to {out}")


if __name__ == "__main__":
    main()
