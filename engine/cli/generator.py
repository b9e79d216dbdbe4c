"""``equigen train | adapt | generate | recipe``: the generator, through the one pipeline."""

from __future__ import annotations

import time
from pathlib import Path

from engine.cli.common import (
    ProgressLine, add_device_flag, add_json_flag, add_overwrite_flag, distributed, emit, log, output_file,
    training_output,
)
from engine.diffusion.methods import GENERATION_METHODS
from engine.errors import InputError
from engine.overrides import with_fields
from engine.progress import drive

def _train_structured(args) -> None:
    from engine.data.store import read_manifest
    from engine.diffusion.code_train import train_codes
    from engine.domains import domain_of
    from engine.encoder.model import load_encoder
    from engine.weightspace.corpus import load_structured

    base, codes, _ = load_structured(args.data)
    cfg = with_fields(domain_of(base.spec).code_train, {
        "method": args.method, "steps": args.steps, "batch_size": args.batch_size, "lr": args.lr,
        "seed": args.seed, "max_minutes": args.minutes, "reg_weight": args.reg_weight, "reg_items": args.reg_items,
        "field_weight": args.field_weight, "denoiser.width": args.width, "denoiser.depth": args.depth,
        "process.prior_rank": args.prior_rank})
    encoder = None
    if cfg.method == "equigen":
        if args.encoder is None:
            raise InputError("equigen training needs --encoder (make one with 'equigen pretrain')")
        encoder, _ = load_encoder(args.encoder)
    from engine.device import describe, gpu_errors, resolve

    device = resolve(args.device)
    bar = ProgressLine(not args.json, device)
    manifest = read_manifest(args.data)
    meta = {"classes": {"source": manifest["source_classes"], "target": manifest["target_classes"]},
            "corpus": str(args.data), "corpus_kind": manifest["kind"], "encoder_file": args.encoder}
    t0 = time.perf_counter()
    log.info("training on %s", describe(device))
    with gpu_errors(device):
        model = drive(train_codes(base, codes, args.out, encoder, cfg, meta, data_id=str(Path(args.data).resolve()),
                                  device=device), on_progress=bar)
    bar.finish()
    info = dict(model.meta["train"], output=args.out, device=describe(device))
    emit(args, info, f"wrote {args.out}: {cfg.method} model over {base.code_dim}-number codes, "
                      f"{info['steps']} steps in {time.perf_counter() - t0:.0f} s on {info['device']}")


def cmd_train(args) -> None:
    from engine.diffusion.train import TrainConfig, train
    from engine.weightspace.corpus import is_structured

    training_output(args)
    if is_structured(args.data):
        return _train_structured(args)
    if args.field_weight is not None:
        raise InputError("--field-weight applies to structured corpora (built with --init-mode structured)")

    cfg = with_fields(TrainConfig(), {
        "method": args.method, "steps": args.steps, "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed,
        "max_minutes": args.minutes, "reg_weight": args.reg_weight, "reg_items": args.reg_items,
        "precision": args.precision, "normalisation": args.normalisation, "weighting": args.weighting,
        "denoiser.width": args.width, "denoiser.depth": args.depth, "denoiser.prior_rank": args.prior_rank})
    from engine.device import describe, gpu_errors, resolve

    device = resolve(args.device)
    rank, world, _, _ = distributed(args.threads, device)
    bar = ProgressLine(not args.json and rank == 0, device)
    with gpu_errors(device):
        summary = drive(train(args.data, args.out, args.encoder, cfg, rank, world, device), on_progress=bar)
    summary["device"] = describe(device)
    bar.finish()
    if rank == 0:
        final = ", ".join(f"{k} {v:.4f}" for k, v in summary["final"].items())
        emit(args, dict(summary, output=args.out),
              f"wrote {args.out}: {summary['method']} model, {summary['steps']} steps in "
              f"{summary['seconds']:.0f} s on {summary['device']} ({final})")


def _adapt_config(model, args):
    """The model's adaptation recipe with the fields the command line gave."""
    from engine.diffusion.pipeline import adapt_recipe_for

    return with_fields(adapt_recipe_for(model), {"steps": args.steps, "lr": args.lr, "seed": args.seed,
                                                 "max_seconds": args.seconds})


def _adapt_steps_help() -> str:
    """The adaptation steps of every kind of model, from the recipes themselves."""
    from engine.domains import IMAGES, SHAPES

    return (f"structured models {IMAGES.code_adapt.steps} in 2D and {SHAPES.code_adapt.steps} in 3D, "
            f"raw-weight models {IMAGES.adapt.steps} and {SHAPES.adapt.steps}")


def _train_help(field: str, raw_field: str | None = None) -> str:
    """``default:`` and the value of ``field`` in every domain's training recipe (structured code
    models, and raw-weight ones for the fields they have), read from ``engine.domains``."""
    from engine.diffusion.train import TrainConfig
    from engine.domains import IMAGES, SHAPES

    def value(config, name):
        for part in name.split("."):
            config = config.get(part) if isinstance(config, dict) else getattr(config, part, None)
        return config

    parts = [f"structured 2D {value(IMAGES.code_train, field)}, 3D {value(SHAPES.code_train, field)}"]
    raw_name = raw_field or field
    raw = TrainConfig()
    if raw_name.startswith("denoiser."):
        leaf = raw_name.split(".", 1)[1]
        parts.append(f"raw-weight 2D {getattr(IMAGES.denoiser, leaf)}, 3D {getattr(SHAPES.denoiser, leaf)}")
    elif value(raw, raw_name) is not None:
        parts.append(f"raw-weight {value(raw, raw_name)}")
    return "default: " + "; ".join(parts)


def cmd_adapt(args) -> None:
    from engine.diffusion.pipeline import adapt_to_files, load_generator, save_generator

    from engine.device import describe, gpu_errors

    output_file(args, args.out)
    model = load_generator(args.model, args.device)
    cfg = _adapt_config(model, args)
    bar = ProgressLine(not args.json, model.device)
    t0 = time.perf_counter()
    log.info("adapting on %s", describe(model.device))
    with gpu_errors(model.device):
        adapted = drive(adapt_to_files(model, args.shots, cfg), on_progress=bar)
    bar.finish()
    save_generator(args.out, adapted)
    info = dict(adapted.meta["adapt"], output=args.out, total_seconds=round(time.perf_counter() - t0, 2),
                device=describe(model.device))
    emit(args, info, f"wrote {args.out}: adapted to {len(info['shots'])} shots in {info['total_seconds']:.1f} s "
                      f"on {info['device']} (reading and fitting them {info['fit_seconds']:.1f} s, {info['steps']} steps)")


def cmd_generate(args) -> None:
    from engine.diffusion.generate import GenerateConfig
    from engine.diffusion.pipeline import adapt_to_files, generate_files, load_generator

    from engine.atomic import writable_folder
    from engine.device import describe, gpu_errors

    cfg = GenerateConfig(n=args.n, diversity=args.diversity, seed=args.seed, method=args.method,
                         steps=args.steps, guidance=args.guidance, blend=tuple(args.blend) if args.blend else None)
    writable_folder(args.out, create=False)
    model = load_generator(args.model, args.device)
    fmt = args.format or ("png" if model.spec.in_dim == 2 else "obj")
    bar = ProgressLine(not args.json, model.device)
    t0 = time.perf_counter()
    log.info("generating on %s", describe(model.device))
    with gpu_errors(model.device):
        if args.shots:
            model = drive(adapt_to_files(model, args.shots), on_progress=bar)
        shot_names = model.meta.get("adapt", {}).get("shots", [])
        records = drive(generate_files(model, cfg, args.out, fmt, Path(args.model).name, shot_names,
                                       args.resolution), on_progress=bar)
    bar.finish()
    seconds = time.perf_counter() - t0
    result = {"output": args.out, "format": fmt, "method": cfg.method or model.method, "n": cfg.n,
              "total_seconds": round(seconds, 3), "device": describe(model.device), "samples": records}
    if model.spec.in_dim == 3 and fmt not in ("safetensors", "png"):
        result["watertight"] = sum(1 for r in records if r["one_piece"])
    extra = f", {result['watertight']} watertight single meshes" if "watertight" in result else ""
    emit(args, result, f"wrote {cfg.n} {fmt} files to {args.out} in {seconds:.1f} s on {result['device']}{extra}")


def cmd_recipe(args) -> None:
    from engine.recipes import recipe_named, run_recipe

    from engine.device import resolve

    device = resolve(args.device)
    result = drive(run_recipe(recipe_named(args.name), args.out, device), on_progress=ProgressLine(not args.json, device))
    stages = ", ".join(f"{k} {v / 60:.1f} min" for k, v in result["seconds"].items())
    emit(args, result, f"wrote {result['model']} ({result['megabytes']:.1f} MB; {stages})")


def add_parsers(sub) -> None:
    sp = sub.add_parser("train", help="train the weight-space diffusion model on a corpus' source split")
    sp.add_argument("--data", required=True, help="corpus folder (shared-init; its source split is used)")
    sp.add_argument("--encoder", default=None, help="pre-trained encoder (equigen method)")
    sp.add_argument("--out", required=True, help="model .safetensors (resumes from OUT.ckpt)")
    add_overwrite_flag(sp)
    sp.add_argument("--method", choices=["equigen", "hyperdiffusion"], default=None)
    sp.add_argument("--steps", type=int, default=None, help=_train_help("steps"))
    sp.add_argument("--batch-size", type=int, default=None, help=_train_help("batch_size"))
    sp.add_argument("--width", type=int, default=None, help="denoiser width; " + _train_help("denoiser.width"))
    sp.add_argument("--depth", type=int, default=None, help="denoiser blocks; " + _train_help("denoiser.depth"))
    sp.add_argument("--prior-rank", type=int, default=None,
                    help="principal directions of the denoiser's Gaussian prior (0: none); "
                         + _train_help("process.prior_rank", "denoiser.prior_rank"))
    sp.add_argument("--lr", type=float, default=None, help=_train_help("lr"))
    sp.add_argument("--reg-weight", type=float, default=None,
                    help="λ of the equivariance regulariser; " + _train_help("reg_weight"))
    sp.add_argument("--reg-items", type=int, default=None,
                    help="items per batch the regulariser sees; " + _train_help("reg_items"))
    sp.add_argument("--field-weight", type=float, default=None,
                    help="structured models: weight of the decoded-image error; " + _train_help("field_weight"))
    sp.add_argument("--seed", type=int, default=None)
    sp.add_argument("--minutes", type=float, default=None, help="stop and save after this long")
    sp.add_argument("--precision", choices=["auto", "bf16", "fp32"], default=None)
    sp.add_argument("--normalisation", choices=["auto", "element", "tensor"], default=None,
                    help="weight scale per element (official; auto for 2D) or per tensor (auto for 3D)")
    sp.add_argument("--weighting", choices=["edm", "x0"], default=None,
                    help="loss weight over noise levels: edm (default) fits the network's own part equally "
                         "at every level; x0 is the plain x0 error (the bundled glyph model's recipe)")
    add_device_flag(sp, "the generator trains (under torchrun each rank takes its LOCAL_RANK GPU)")
    add_json_flag(sp)
    sp.set_defaults(func=cmd_train)

    sp = sub.add_parser("adapt", help="fine-tune a model on 1-20 shots of a new class")
    sp.add_argument("--model", required=True)
    sp.add_argument("shots", nargs="+", metavar="SHOT", help="images, meshes or INR files")
    sp.add_argument("--out", required=True, help="adapted model .safetensors")
    add_overwrite_flag(sp)
    sp.add_argument("--steps", type=int, default=None,
                    help=f"fine-tuning steps (default: the model's recipe; {_adapt_steps_help()})")
    sp.add_argument("--lr", type=float, default=None)
    sp.add_argument("--seed", type=int, default=None)
    sp.add_argument("--seconds", type=float, default=None, help="stop fine-tuning after this long")
    add_device_flag(sp, "the shots are fitted and the model adapts", meshes=True)
    add_json_flag(sp)
    sp.set_defaults(func=cmd_adapt)

    sp = sub.add_parser("generate", help="generate new INRs from an (adapted) model")
    sp.add_argument("--model", required=True)
    sp.add_argument("--shots", nargs="+", default=None,
                    help="adapt to these shots (images, meshes or INR files) first, instead of the adapted ones")
    sp.add_argument("-n", type=int, default=16)
    sp.add_argument("--diversity", type=float, default=0.5, help="0 = at the shots, 1 = most varied")
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--out", required=True,
                    help="output folder; samples are numbered on from those already there (nothing is replaced)")
    sp.add_argument("--format", default=None, help="png obj ply stl glb safetensors (default png/obj)")
    sp.add_argument("--resolution", type=int, default=128, help="3D: marching-cubes resolution")
    sp.add_argument("--method", default=None, choices=GENERATION_METHODS,
                    help="default: the method the model was trained with")
    sp.add_argument("--steps", type=int, default=50, help="DDIM steps")
    sp.add_argument("--guidance", type=float, default=None,
                    help="classifier-free guidance scale (1 = none; default: the model's, 1 for 2D structured models, else 2)")
    sp.add_argument("--blend", type=int, nargs=2, default=None, metavar=("A", "B"),
                    help="interpolate between shots A and B (0-based) instead of perturbing")
    add_device_flag(sp, "the model adapts (with --shots) and samples", meshes=True)
    add_json_flag(sp)
    sp.set_defaults(func=cmd_generate)

    sp = sub.add_parser("recipe", help="rebuild a bundled model from nothing (corpus, encoder, generator; resumable)")
    sp.add_argument("name", help="the bundled model to rebuild: shapes-3d, glyphs-2d or fashion-2d")
    sp.add_argument("--out", required=True, help="working folder; the packed model is OUT/NAME.safetensors")
    add_device_flag(sp, "the corpus is fitted and the encoder and generator train", meshes=True)
    add_json_flag(sp)
    sp.set_defaults(func=cmd_recipe)
