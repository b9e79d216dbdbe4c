"""``equigen fit | info | render | mesh | convert``: single INR files."""

from __future__ import annotations

import time
from pathlib import Path

from engine.cli.common import ProgressLine, add_device_flag, add_json_flag, add_overwrite_flag, emit, output_file
from engine.errors import EquigenError, clipped
from engine.fit.images import ImageFitConfig
from engine.fit.meshes import MeshFitConfig
from engine.progress import drive

def cmd_fit(args) -> None:
    from engine.session import InitChoice, fit_files

    image_cfg = ImageFitConfig(
        target_psnr=args.target_psnr, max_steps=args.max_steps or ImageFitConfig.max_steps,
        invert=args.invert,
    )
    mesh_cfg = MeshFitConfig(
        target_iou=args.target_iou, max_steps=args.max_steps or MeshFitConfig.max_steps,
    )
    from engine.device import gpu_errors, resolve

    device = resolve(args.device)
    bar = ProgressLine(not args.json, device)
    with gpu_errors(device):
        reports = drive(
            fit_files(args.inputs, args.out, InitChoice(args.init_seed, args.init), image_cfg, mesh_cfg,
                      device=device),
            on_progress=bar,
        )
    bar.finish()
    for r in reports:
        unit = "dB PSNR" if r.metric == "psnr_db" else "IoU"
        flag = "" if r.reached_target else "  (target not reached)"
        emit(args, r.to_dict(),
              f"{r.input} -> {r.output}  {r.quality:.3f} {unit}  {r.steps} steps  "
              f"{r.seconds:.3f} s{flag}")


def cmd_info(args) -> None:
    from engine.inr_io import describe, load_inr

    info = describe(load_inr(args.file))
    info["file"] = args.file
    if args.json:
        emit(args, info, "")
        return
    lines = [
        f"file:       {args.file}",
        f"spec:       {info['spec']} ({info['dimension']}D, {info['output']})",
        f"domain:     [{info['domain'][0]}, {info['domain'][1]}] per axis",
        f"parameters: {info['num_params']:,}",
    ]
    # metadata is the file's own words: one printable, shortened line per field
    lines += [f"{clipped(str(k), 40) + ':':<11} {clipped(str(v).replace(chr(10), ' '), 200)}"
              for k, v in sorted(info["meta"].items(), key=lambda kv: str(kv[0]))]
    emit(args, info, "\n".join(lines))


def cmd_render(args) -> None:
    from engine.inr_io import load_inr
    from engine.session import render_to_png

    out = Path(args.out)
    if out.suffix.lower() != ".png":
        raise EquigenError(f"{out}: the output must end in .png")
    from engine.device import gpu_errors, resolve

    device = resolve(args.device)
    output_file(args, args.out)
    inr = load_inr(args.file)
    with gpu_errors(device):
        render_to_png(inr, out, args.size, args.resolution, args.continuous, device)
    emit(args, {"file": args.file, "output": str(out), "size": args.size}, f"wrote {out}")


def cmd_mesh(args) -> None:
    from engine.inr_io import load_inr
    from engine.session import mesh_to_file

    from engine.device import gpu_errors, resolve

    t0 = time.perf_counter()
    device = resolve(args.device)
    output_file(args, args.out)
    inr = load_inr(args.file)
    if not inr.spec.is_3d:
        raise EquigenError(f"{args.file}: a 2D INR has no mesh; use 'equigen render' for its image")
    with gpu_errors(device):
        mesh = mesh_to_file(inr, args.out, args.resolution, device)
    obj = {
        "file": args.file, "output": args.out, "resolution": args.resolution,
        "vertices": len(mesh.vertices), "faces": len(mesh.faces),
        "watertight": bool(mesh.is_watertight), "seconds": round(time.perf_counter() - t0, 3),
    }
    emit(args, obj, f"wrote {args.out}: {obj['vertices']} vertices, {obj['faces']} faces, "
                     f"{'watertight' if obj['watertight'] else 'not watertight'}")


def cmd_convert(args) -> None:
    from engine.session import convert_file

    output_file(args, args.out)
    inr = convert_file(args.file, args.out)
    emit(args, {"file": args.file, "output": args.out, "spec": inr.spec.name},
          f"wrote {args.out} ({inr.spec.name})")


def add_parsers(sub) -> None:
    sp = sub.add_parser("fit", help="fit images or meshes into INR files")
    sp.add_argument("inputs", nargs="+", metavar="INPUT", help="image or mesh files")
    sp.add_argument("--out", required=True,
                    help="folder for the .safetensors files; a name already there gets -2, -3, ... (nothing is replaced)")
    sp.add_argument("--init-seed", type=int, default=0,
                    help="seed of the one initial weight set every input starts from (default 0)")
    sp.add_argument("--init", default=None, metavar="FILE",
                    help="start every input from this INR file's weights instead of a seed")
    sp.add_argument("--target-psnr", type=float, default=ImageFitConfig.target_psnr)
    sp.add_argument("--target-iou", type=float, default=MeshFitConfig.target_iou)
    sp.add_argument("--max-steps", type=int, default=None)
    sp.add_argument("--invert", choices=["auto", "yes", "no"], default="auto",
                    help="make image backgrounds dark as in MNIST (default: auto)")
    add_device_flag(sp, "the weights are fitted", meshes=True)
    add_json_flag(sp)
    sp.set_defaults(func=cmd_fit)

    sp = sub.add_parser("info", help="describe an INR file")
    sp.add_argument("file")
    add_json_flag(sp)
    sp.set_defaults(func=cmd_info)

    sp = sub.add_parser("render", help="render an INR to PNG (3D: shaded, off-screen)")
    sp.add_argument("file")
    sp.add_argument("--out", required=True, help="PNG path")
    sp.add_argument("--size", type=int, default=256, help="image side in pixels (8 to 4096, default 256)")
    sp.add_argument("--resolution", type=int, default=128, help="3D: marching-cubes resolution (16 to 512)")
    sp.add_argument("--continuous", action="store_true",
                    help="2D: evaluate the network at every output pixel instead of resampling")
    add_device_flag(sp, "the network is evaluated (the 3D mesh is made on the CPU)")
    add_overwrite_flag(sp)
    add_json_flag(sp)
    sp.set_defaults(func=cmd_render)

    sp = sub.add_parser("mesh", help="extract a 3D INR's mesh (.obj .ply .stl .glb)")
    sp.add_argument("file")
    sp.add_argument("--out", required=True, help="mesh path; the format follows the extension")
    sp.add_argument("--resolution", type=int, default=128, help="marching-cubes grid (16 to 512, default 128)")
    add_device_flag(sp, "the network is evaluated (marching cubes runs on the CPU)")
    add_overwrite_flag(sp)
    add_json_flag(sp)
    sp.set_defaults(func=cmd_mesh)

    sp = sub.add_parser("convert", help="import a DWSNets/HyperDiffusion .pth as .safetensors")
    sp.add_argument("file")
    sp.add_argument("--out", required=True, help=".safetensors path")
    add_overwrite_flag(sp)
    add_json_flag(sp)
    sp.set_defaults(func=cmd_convert)
