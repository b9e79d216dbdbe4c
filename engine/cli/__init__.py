"""The ``equigen`` command line: a thin front door onto the engine.

Every error ends with exit status ≠ 0 and one line on stderr that says what to do; with
``--json`` each result is one JSON object per line on stdout. Each subcommand's parser sits
beside its handler (``files``, ``data``, ``encoder``, ``generator``, ``bench``); defaults and help
texts that depend on the domain come from ``engine.domains``.
"""

from __future__ import annotations

import argparse
import logging
import sys

from engine import __version__
from engine.cli import bench, data, encoder, files, generator
from engine.cli.common import Parser
from engine.errors import Cancelled, EquigenError, InputError, clipped, printable


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="equigen", description="EquiGen: few-shot generation of implicit neural "
                                           "representations (images and 3D shapes).")
    p.add_argument("--version", action="version", version=f"equigen {__version__}")
    p.add_argument("--verbose", action="store_true", help="log what the engine does to stderr")
    p.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)
    for part in (files, encoder, generator, bench, data):  # the order of `equigen --help`
        part.add_parsers(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    # torch's and numpy's warnings go to the log, shown with --verbose, so that an error is one
    # line and a result is not buried under a library's deprecation notice
    logging.captureWarnings(True)
    logging.getLogger("py.warnings").setLevel(logging.INFO if args.verbose else logging.ERROR)
    try:
        if args.threads is not None:
            import torch

            if not 1 <= args.threads <= 4096:
                raise InputError(f"--threads must be at least 1 (and at most 4096), got {args.threads}")
            torch.set_num_threads(args.threads)
        args.func(args)
    except Cancelled as e:
        sys.stderr.write(f"equigen: {printable(str(e))}\n")
        return 130
    except KeyboardInterrupt:
        sys.stderr.write("\nequigen: interrupted; files already written are complete\n")
        return 130
    except EquigenError as e:
        sys.stderr.write(f"equigen: error: {printable(str(e))}\n")
        return 2
    except Exception as e:  # a bug of ours: still one line, traceback on request
        if args.debug:
            raise
        sys.stderr.write(f"equigen: internal error: {type(e).__name__}: {clipped(str(e), 300)} "
                         "(rerun with --debug and report it)\n")
        return 1
    finally:
        _leave_process_group()
    return 0


def _leave_process_group() -> None:
    """Under torchrun, let every rank finish before any tears gloo down.

    A rank that exits while its peer still holds the group aborts in gloo's thread destructors
    ("terminate called without an active exception"); rank 0 writes the model last, so the others
    would otherwise leave first.
    """
    import os

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or "torch.distributed" not in sys.modules:
        return
    import torch.distributed as dist

    if dist.is_initialized():
        try:
            dist.barrier()
        finally:
            dist.destroy_process_group()


if __name__ == "__main__":
    raise SystemExit(main())
