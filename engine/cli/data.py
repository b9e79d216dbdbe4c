"""``equigen data build | info | sheet | canonicalise``: INR corpora."""

from __future__ import annotations

from engine.cli.common import Parser, ProgressLine, add_device_flag, add_json_flag, csv_list, distributed, emit
from engine.errors import EquigenError
from engine.domains import IMAGES, SHAPES
from engine.overrides import with_fields
from engine.progress import drive

def cmd_data_build(args) -> None:
    from engine.data.build import BuildConfig, build_corpus

    cfg = BuildConfig(
        kind=args.kind, per_class=args.per_class, inits=args.inits, target_inits=args.target_inits,
        seed=args.seed,
        init_mode=args.init_mode, source_classes=args.source_classes,
        target_classes=args.target_classes, root=args.root,
        fonts=tuple(args.fonts) if args.fonts else BuildConfig.fonts,
        families=args.families, count=args.count, chunk_size=args.chunk_size,
    )
    cfg = with_fields(cfg.with_domain_fits(), {"image_fit.max_steps": args.max_steps,
                                               "mesh_fit.max_steps": args.max_steps})
    from engine.device import gpu_errors, resolve

    device = resolve(args.device)  # under torchrun, cuda is each rank's LOCAL_RANK GPU
    if cfg.init_mode == "structured":
        from engine.data.build import make_source
        from engine.domains import domain_of
        from engine.weightspace.corpus import build_structured_corpus

        recipe = with_fields(domain_of(make_source(cfg).dimension).structured,
                             {"workers": args.workers, "base.steps": args.base_steps})
        bar = ProgressLine(not args.json, device)
        with gpu_errors(device):
            summary = drive(build_structured_corpus(cfg, args.out, recipe, device), on_progress=bar)
        bar.finish()
        emit(args, summary, _describe_corpus(summary))
        return
    rank, world, barrier, share = distributed(args.threads)  # gloo: the ranks only coordinate
    bar = ProgressLine(not args.json and rank == 0, device)
    with gpu_errors(device):
        summary = drive(build_corpus(cfg, args.out, rank, world, barrier, share, device), on_progress=bar)
    bar.finish()
    if rank == 0:
        emit(args, summary, _describe_corpus(summary))


def _describe_corpus(s: dict) -> str:
    q = s["mean_quality"]
    unit = {"psnr_db": " dB PSNR", "iou": " IoU"}.get(s["metric"] or "", "")
    lines = [
        f"corpus:   {s['path']} ({s['kind']}, {s['status']})",
        f"spec:     {s['spec']}; init {s['init_mode']}, {_fits_per_item(s)} per item",
        f"INRs:     {s['num_inrs']:,} from {s['num_items']:,} items; "
        + ", ".join(f"{k} {v:,}" for k, v in sorted(s["per_split"].items())),
        f"quality:  mean {q:.3f}{unit}" if q is not None else "quality:  (not recorded)",
        f"source:   {', '.join(s['source_classes'])}",
        f"target:   {', '.join(s['target_classes']) or '(none)'}",
        f"skipped:  {s['skipped']}",
        f"size:     {s['size_bytes'] / 1e6:.1f} MB",
    ]
    if s.get("fit_seconds") is not None:
        lines.append(f"fitting:  {s['fit_seconds'] / 60:.1f} min over all runs and processes")
    return "\n".join(lines)


def _fits_per_item(summary: dict) -> str:
    source, target = summary["inits"], summary["target_inits"]
    if source == target:
        return f"{source} fit(s)"
    return f"{source} fit(s) (source), {target} (target)"


def cmd_data_info(args) -> None:
    from engine.data.store import summarise

    s = summarise(args.dir)
    emit(args, s, _describe_corpus(s) + "\nper class: " + ", ".join(
        f"{c} {v['source'] + v['target']}" for c, v in s["per_class"].items()))


def cmd_data_sheet(args) -> None:
    from engine.data.contact_sheet import contact_sheet
    from engine.export import export_png

    if not args.out.lower().endswith(".png"):
        raise EquigenError(f"{args.out}: the output must end in .png")
    from engine.device import gpu_errors, resolve

    device = resolve(args.device)
    bar = ProgressLine(not args.json, device)
    with gpu_errors(device):
        sheet = drive(contact_sheet(args.dir, args.per_class, args.classes, args.tile, args.seed,
                                    args.resolution, device=device), on_progress=bar)
    bar.finish()
    export_png(sheet, args.out)
    emit(args, {"dir": args.dir, "output": args.out, "size": list(sheet.shape[:2])},
          f"wrote {args.out} ({sheet.shape[1]}x{sheet.shape[0]})")


def cmd_data_canonicalise(args) -> None:
    from engine.data.canonical import canonicalise_corpus

    bar = ProgressLine(not args.json)
    s = drive(canonicalise_corpus(args.dir), on_progress=bar)
    bar.finish()
    tv = (f"; mean total variation {s['mean_tv_before']:.1f} -> {s['mean_tv_after']:.1f}"
          if "mean_tv_before" in s else "")
    emit(args, dict(s, dir=args.dir), f"{args.dir}: {s['recomputed']} of {s['shards']} shards "
          f"canonicalised (the rest were up to date){tv}")


def add_parsers(sub) -> None:
    data = sub.add_parser("data", help="build and inspect INR corpora")
    dsub = data.add_subparsers(dest="data_command", required=True, parser_class=Parser)
    sp = dsub.add_parser("build", help="fit a labelled corpus of INRs (resumable; torchrun-aware)")
    sp.add_argument("kind", choices=["glyphs", "fashion-mnist", "images", "meshes", "inrs",
                                     "shapes3d", "glyphs3d"])
    sp.add_argument("--out", required=True, help="corpus folder (resumes if it holds this build)")
    add_device_flag(sp, "items are fitted and a structured corpus' shared part is learned", meshes=True)
    sp.add_argument("--per-class", type=int, default=None, help="at most N items per class")
    sp.add_argument("--inits", type=int, default=1,
                    help="fits per item; fits 2..K start from other random inits (contrastive positives)")
    sp.add_argument("--target-inits", type=int, default=None, metavar="K",
                    help="fits per held-out (target) item, if not --inits: e.g. 2 gives the second fits "
                         "that eval-encoder's retrieval needs without refitting the source split")
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--init-mode", choices=["shared", "independent", "structured"], default="shared",
                    help="first fit of every item from one shared init (default) or its own; "
                         "structured: every item a code in a shared network learned over the corpus")
    sp.add_argument("--base-steps", type=int, default=None,
                    help="structured: training steps of the shared network (default: "
                         f"{IMAGES.structured.base.steps} for images, {SHAPES.structured.base.steps} for meshes)")
    sp.add_argument("--workers", type=int, default=1, help="structured: processes that sample meshes")
    sp.add_argument("--source-classes", type=csv_list, default=None, metavar="A,B,...")
    sp.add_argument("--target-classes", type=csv_list, default=None, metavar="A,B,...")
    sp.add_argument("--root", default=None, help="input folder (images, meshes, inrs; fashion-mnist idx)")
    sp.add_argument("--fonts", action="append", default=None, metavar="DIR",
                    help="font folder for glyphs/glyphs3d (repeatable; default /usr/share/fonts)")
    sp.add_argument("--families", type=csv_list, default=None, help="shapes3d families (default all)")
    sp.add_argument("--count", type=int, default=250, help="shapes3d: shapes per family")
    sp.add_argument("--chunk-size", type=int, default=None, help="items per shard")
    sp.add_argument("--max-steps", type=int, default=None,
                    help=f"fitting step budget per INR (default: {IMAGES.image_fit.max_steps} for images, "
                         f"{SHAPES.corpus_mesh_fit.max_steps} for meshes)")
    add_json_flag(sp)
    sp.set_defaults(func=cmd_data_build)
    sp = dsub.add_parser("info", help="counts per class and split, quality, spec, arguments")
    sp.add_argument("dir")
    add_json_flag(sp)
    sp.set_defaults(func=cmd_data_info)
    sp = dsub.add_parser("sheet", help="contact sheet: decoded INRs of each class in a grid (PNG)")
    sp.add_argument("dir")
    sp.add_argument("--out", required=True, help="PNG path")
    sp.add_argument("--per-class", type=int, default=8)
    sp.add_argument("--classes", type=csv_list, default=None, metavar="A,B,...")
    sp.add_argument("--tile", type=int, default=96, help="tile side in pixels")
    sp.add_argument("--resolution", type=int, default=64, help="3D: marching-cubes resolution")
    sp.add_argument("--seed", type=int, default=0)
    add_device_flag(sp, "the INRs are decoded (marching cubes and 3D renders on the CPU)")
    add_json_flag(sp)
    sp.set_defaults(func=cmd_data_sheet)
    sp = dsub.add_parser("canonicalise", help="cache the smooth canonical ordering of every INR")
    sp.add_argument("dir")
    add_json_flag(sp)
    sp.set_defaults(func=cmd_data_canonicalise)
