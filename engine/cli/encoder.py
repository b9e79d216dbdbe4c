"""``equigen pretrain | eval-encoder``: the equivariant encoder."""

from __future__ import annotations

from engine.cli.common import (
    ProgressLine, add_device_flag, add_json_flag, add_overwrite_flag, distributed, emit, training_output,
)
from engine.domains import IMAGES, SHAPES
from engine.overrides import with_fields
from engine.progress import drive

def cmd_pretrain(args) -> None:
    from engine.encoder.pretrain import PretrainConfig, pretrain

    training_output(args)
    cfg = with_fields(PretrainConfig(), {
        "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed,
        "max_minutes": args.minutes, "precision": args.precision, "positives": args.positives,
        "class_group": args.class_group, "warmup": args.warmup, "encoder.width": args.width,
        "encoder.depth": args.depth, "encoder.probes": False if args.no_probes else None,
        "encoder.probe_lattice": args.probe_lattice,
        "encoder.probe_logits": False if args.probe_probabilities else None})
    from engine.device import describe, gpu_errors, resolve

    device = resolve(args.device)
    rank, world, _, _ = distributed(args.threads, device)
    bar = ProgressLine(not args.json and rank == 0, device)
    with gpu_errors(device):
        summary = drive(pretrain(args.data, args.out, cfg, rank, world, device), on_progress=bar)
    summary["device"] = describe(device)
    bar.finish()
    if rank == 0:
        emit(args, dict(summary, output=args.out),
              f"wrote {args.out}: {summary['steps']} steps ({summary['epochs']:.1f} epochs) in "
              f"{summary['seconds']:.0f} s on {summary['device']}, final loss {summary['final_loss']:.3f}")


def cmd_eval_encoder(args) -> None:
    from engine.encoder.evaluate import evaluate_encoder
    from engine.encoder.model import load_encoder

    from engine.device import gpu_errors, resolve

    device = resolve(args.device)
    enc, _ = load_encoder(args.encoder)
    with gpu_errors(device):
        r = evaluate_encoder(enc.to(device), args.data, k=args.k)
    lines = [f"target classes: {', '.join(r['target_classes'])} ({r['num_inrs']} INRs, chance {r['chance']:.2f})",
             f"{'':18}{'k-NN acc':>10}{'retrieval':>11}"]
    for name in ("encoder", "random_encoder", "raw_weights"):
        ret = r["retrieval_accuracy"][name] if r["retrieval_accuracy"] else float("nan")
        lines.append(f"{name:18}{r['knn_accuracy'][name]:>10.3f}{ret:>11.3f}")
    lines.append(f"invariance error: {r['invariance_error']:.2e}")
    emit(args, r, "\n".join(lines))


def add_parsers(sub) -> None:
    from engine.encoder.pretrain import PretrainConfig

    sp = sub.add_parser("pretrain", help="contrastive pre-training of the equivariant encoder")
    sp.add_argument("--data", required=True, help="corpus folder (its source split is used)")
    sp.add_argument("--out", required=True, help="encoder .safetensors (resumes from OUT.ckpt)")
    add_overwrite_flag(sp)
    add_device_flag(sp, "the encoder trains (under torchrun each rank takes its LOCAL_RANK GPU)")
    sp.add_argument("--epochs", type=int, default=None)
    sp.add_argument("--batch-size", type=int, default=None)
    sp.add_argument("--width", type=int, default=None, help="channels of the equivariant layers")
    sp.add_argument("--depth", type=int, default=None, help="number of equivariant layers")
    sp.add_argument("--lr", type=float, default=None,
                    help=f"default: the domain's, {IMAGES.pretrain_lr:g} for 2D and {SHAPES.pretrain_lr:g} for 3D")
    sp.add_argument("--seed", type=int, default=None)
    sp.add_argument("--minutes", type=float, default=None, help="stop and save after this long")
    sp.add_argument("--precision", choices=["auto", "bf16", "fp32"], default=None,
                    help="auto (default): bf16 matmuls where the CPU does them natively")
    sp.add_argument("--positives", choices=["class", "instance"], default=None,
                    help="class (default): same-class items are positives too; instance: the paper's NT-Xent")
    sp.add_argument("--warmup", type=int, default=None, metavar="STEPS",
                    help=f"steps over which the learning rate rises (default {PretrainConfig.warmup}; 0: none)")
    sp.add_argument("--class-group", type=int, default=None, metavar="M",
                    help="with class positives, batches hold groups of M same-class items (default 4; 1 = plain shuffle)")
    sp.add_argument("--no-probes", action="store_true",
                    help="the paper's pure weight-space encoder, without probe features")
    sp.add_argument("--probe-lattice", type=int, default=None, metavar="N",
                    help="3D: probe the INR on an N^3 lattice (default 16)")
    sp.add_argument("--probe-probabilities", action="store_true",
                    help="3D: probe occupancy probabilities (the older, coarser probes) instead of clipped logits")
    add_json_flag(sp)
    sp.set_defaults(func=cmd_pretrain)

    sp = sub.add_parser("eval-encoder", help="k-NN, retrieval and invariance on held-out classes")
    sp.add_argument("--encoder", required=True)
    sp.add_argument("--data", required=True)
    sp.add_argument("--k", type=int, default=5)
    add_device_flag(sp, "the encoders compute")
    add_json_flag(sp)
    sp.set_defaults(func=cmd_eval_encoder)
