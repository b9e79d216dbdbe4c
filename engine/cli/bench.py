"""``equigen bench quality | speed``: the evaluation harness."""

from __future__ import annotations

import shlex

from engine.cli.common import Parser, ProgressLine, add_device_flag, add_json_flag, csv_list, emit, float_list
from engine.progress import drive

def cmd_bench_quality(args) -> None:
    from engine.bench.quality import QualityConfig, evaluate_quality
    from engine.bench.report import summary_table, write_report

    cfg = QualityConfig(**{k: v for k, v in {
        "methods": tuple(args.methods) if args.methods else None, "shots": args.shots, "repeats": args.repeats,
        "diversities": tuple(args.diversities) if args.diversities else None, "samples": args.samples,
        "classes": tuple(args.classes) if args.classes else None, "steps": args.steps,
        "adapt_steps": args.adapt_steps, "resolution": args.resolution, "seed": args.seed,
        "guidance": args.guidance}.items()
        if v is not None})
    from engine.device import resolve

    device = resolve(args.device)
    bar = ProgressLine(not args.json, device)
    result = drive(evaluate_quality(args.model, args.data, cfg, args.hyperdiffusion_model, device),
                   on_progress=bar)
    bar.finish()
    path = write_report(result, args.out, "equigen " + shlex.join(args.argv))
    out = {k: v for k, v in result.items() if k != "grids"}
    emit(args, dict(out, report=str(path)), summary_table(result) + f"\n\nwrote {path}")


def cmd_bench_speed(args) -> None:
    from engine.bench.speed import DEFAULT_MODEL_2D, DEFAULT_MODEL_3D, SECTIONS, describe_speed, run_speed

    bundled = lambda path: path if path.exists() else None  # noqa: E731 - a checkout may lack one
    from engine.device import resolve

    device = resolve(args.device)
    result = drive(run_speed(args.repeats, tuple(args.only or SECTIONS), args.model_2d or bundled(DEFAULT_MODEL_2D),
                             args.model_3d or bundled(DEFAULT_MODEL_3D), device),
                   on_progress=ProgressLine(not args.json, device))
    emit(args, result, describe_speed(result))


def add_parsers(sub) -> None:
    bench = sub.add_parser("bench", help="measure generation quality and speed")
    bsub = bench.add_subparsers(dest="bench_command", required=True, parser_class=Parser)
    sp = bsub.add_parser("quality", help="every method on the same held-out shots and seeds; a markdown report")
    sp.add_argument("--model", default=None, help="an EquiGen model trained on --data (equigen train)")
    sp.add_argument("--hyperdiffusion-model", default=None,
                    help="the HyperDiffusion baseline, trained on the same corpus (equigen train --method hyperdiffusion)")
    sp.add_argument("--data", required=True, help="the corpus the models were trained on; its target classes are used")
    sp.add_argument("--out", required=True, help="report folder (report.md, report.json, grids/, plot)")
    sp.add_argument("--methods", type=csv_list, default=None, metavar="A,B,...",
                    help="default: every method the given models support")
    sp.add_argument("--shots", type=int, default=None, help="shots per set (default 10)")
    sp.add_argument("--repeats", type=int, default=None, help="shot sets per class (default 3)")
    sp.add_argument("--diversities", type=float_list, default=None, metavar="D,D,...",
                    help="diversity values for equigen and shots-noise (default 0,0.25,0.5,1)")
    sp.add_argument("--samples", type=int, default=None, help="samples per method and value (default 64 2D, 24 3D)")
    sp.add_argument("--classes", type=csv_list, default=None, metavar="A,B,...", help="default: the target classes")
    sp.add_argument("--steps", type=int, default=None, help="DDIM steps (default 50)")
    sp.add_argument("--guidance", type=float, default=None, help="classifier-free guidance scale (default: each model's)")
    sp.add_argument("--adapt-steps", type=int, default=None, help="default: the model's adaptation recipe")
    sp.add_argument("--resolution", type=int, default=None, help="3D marching-cubes grid (default 64)")
    sp.add_argument("--seed", type=int, default=None)
    add_device_flag(sp, "the models adapt and sample, samples decode and the feature network runs "
                        "(marching cubes and the metrics on the CPU)")
    add_json_flag(sp)
    sp.set_defaults(func=cmd_bench_quality)
    sp = bsub.add_parser("speed", help="time fitting, adaptation, generation, meshing and thumbnails")
    sp.add_argument("--repeats", type=int, default=3)
    sp.add_argument("--only", type=csv_list, default=None, metavar="A,B,...",
                    help="sections: fit-2d, fit-3d, generator-2d, generator-3d, extract, thumbnails")
    sp.add_argument("--model-2d", default=None, help="default: the bundled glyph model")
    sp.add_argument("--model-3d", default=None, help="a 3D model (default: the bundled shapes-3d)")
    add_device_flag(sp, "the networks compute (marching cubes, winding numbers and 3D renders on the CPU)")
    add_json_flag(sp)
    sp.set_defaults(func=cmd_bench_speed)
