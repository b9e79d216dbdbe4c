"""What every ``equigen`` subcommand shares: the parser class, the progress line, output, torchrun."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from engine.errors import InputError, printable
from engine.progress import Progress

log = logging.getLogger("engine")


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not usage + error
        sys.stderr.write(f"equigen: error: {message}; see '{self.prog} --help'\n")
        raise SystemExit(2)


class ProgressLine:
    """A one-line progress bar on stderr when it is a terminal; otherwise (a log file, a
    background job) with ``--verbose`` one log line per tenth of each stage. ``device``: where
    the work computes, named on the bar (``cpu``, ``cuda:0``) and in the log."""

    def __init__(self, enabled: bool, device=None):
        self.enabled = enabled and sys.stderr.isatty()
        self.where = f" on {device}" if device is not None else ""
        self._last = 0.0
        self._logged: tuple[str, int] | None = None

    def __call__(self, p: Progress) -> None:
        if not self.enabled:
            tenth = int(10 * p.fraction)
            if log.isEnabledFor(logging.INFO) and self._logged != (p.stage, tenth):
                self._logged = (p.stage, tenth)
                extra = " ".join(f"{k}={v:.4g}" for k, v in p.metrics.items() if isinstance(v, float))
                log.info("%s %d/%d%s %s", p.stage, p.done, p.total, self.where, extra)
            return
        now = time.monotonic()
        if now - self._last < 0.1 and p.done < p.total:
            return
        self._last = now
        width = 30
        filled = int(width * p.fraction)
        extra = " ".join(f"{k}={v:.3g}" for k, v in p.metrics.items() if isinstance(v, float))
        sys.stderr.write(f"\r{p.stage:<12} [{'#' * filled}{'.' * (width - filled)}] "
                         f"{p.done}/{p.total}{self.where} {extra:<40}")
        sys.stderr.flush()

    def finish(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")


def emit(args, obj: dict, human: str) -> None:
    """One result: ``obj`` as a JSON line with ``--json``, else ``human``, each line made
    printable (a name holding terminal escapes shows them instead of obeying them)."""
    if args.json:
        sys.stdout.write(json.dumps(obj, default=str) + "\n")
    else:
        sys.stdout.write("\n".join(printable(line) for line in human.split("\n")) + "\n")
    sys.stdout.flush()


def csv_list(text: str) -> tuple[str, ...]:
    return tuple(t for t in (x.strip() for x in text.split(",")) if t)


def distributed(threads: int | None = None, device=None):
    """(rank, world, barrier, share) under torchrun (NCCL when ``device`` is a CUDA GPU, gloo on
    the CPU), else (0, 1, None, None).

    ``share(value)`` returns rank 0's value on every rank. Each rank runs ``threads`` torch
    threads when the user chose (``--threads``), else its share of the cores.
    """
    import os

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, None, None
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        cuda = device is not None and device.type == "cuda"
        if cuda:
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if cuda else "gloo")
    torch.set_num_threads(threads or max(1, (os.cpu_count() or 1) // world))

    def share(value):
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    return dist.get_rank(), world, dist.barrier, share


def float_list(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, got {text!r}") from None


def add_json_flag(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--json", action="store_true", help="one JSON object per result on stdout")


def add_overwrite_flag(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--overwrite", action="store_true",
                    help="replace OUT when it exists (without this an existing OUT is refused, and nothing is done)")


def output_file(args, path: str) -> Path:
    """``path`` checked before any work: a file its folder lets us write, and not already
    there unless the command was given ``--overwrite``."""
    from engine.atomic import writable_file

    target = writable_file(path)
    if target.exists() and not getattr(args, "overwrite", False):
        raise InputError(f"{target}: exists; pass --overwrite to replace it, or choose another --out")
    return target


def training_output(args) -> Path:
    """A training command's ``--out``: a run that left ``OUT.ckpt`` resumes into it; otherwise
    an existing OUT is refused unless ``--overwrite`` (``output_file``)."""
    from engine.atomic import writable_file
    from engine.checkpoint import checkpoint_path

    if checkpoint_path(Path(args.out)).exists():
        return writable_file(args.out)
    return output_file(args, args.out)


def add_device_flag(sp: argparse.ArgumentParser, what: str, meshes: bool = False) -> None:
    note = "; meshes are labelled (winding numbers) on the CPU" if meshes else ""
    sp.add_argument("--device", default="auto", metavar="DEVICE",
                    help=f"where {what}: auto (a CUDA GPU when present, else the CPU), cpu, cuda or cuda:N{note}")
