"""``equigen bench speed``: how long each thing a user waits for takes, medians of repeats.

Sections: fitting (2D: 256 Fashion-MNIST images to 30 dB; 3D: eight test shapes with the studio's
recipe), few-shot adaptation on 10 shots (fitting them included) and generating 16 samples (2D as
PNG; 3D as 128³ OBJ meshes) with a model, 128³ mesh extraction, and thumbnail rendering (a 3D
shaded render and a 2D image at 256²). Shots are made here: ten renders of the glyph "9" from
installed fonts (2D) and ten lamps from the shapes3d generator (3D), classes the default corpora
hold out. Targets on a 2-core CPU: ≥ 50 2D INRs/s; ≤ 6 s per 3D shape; adapt ≤ 60 s (2D) and
≤ 45 s (3D, fitting the 10 meshes included); generate 16 2D ≤ 2 s and 16 3D ≤ 15 s; 128³
extraction ≤ 1.5 s.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import trimesh

from engine.bundled import bundled_model, examples_dir
from engine.device import describe
from engine.errors import InputError
from engine.progress import Progress, ProgressGen

SECTIONS = ("fit-2d", "fit-3d", "generator-2d", "generator-3d", "extract", "thumbnails")
EXAMPLES = examples_dir()
DEFAULT_MODEL_2D = bundled_model("glyphs-2d")
DEFAULT_MODEL_3D = bundled_model("shapes-3d")


def machine(device: torch.device | None = None) -> dict:
    """What the figures were measured on; ``device``: where the timed work computed (the CPU by
    default)."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "device": describe(device or torch.device("cpu")),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def _finished(device: torch.device | None) -> None:
    """Wait for the GPU's queued work, so a timing ends when the work does, not when it was queued."""
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Callable[[], object], repeats: int,
           device: torch.device | None = None) -> tuple[float, list[float], object]:
    runs, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        _finished(device)
        runs.append(time.perf_counter() - t)
    return statistics.median(runs), runs, out


def bench_fit_2d(repeats: int, device: torch.device | None = None) -> dict:
    from engine.data.idx import fashion_mnist
    from engine.fit.images import fit_images
    from engine.functional import init_from_seed
    from engine.progress import drive
    from engine.spec import MNIST_SIREN

    images, _ = fashion_mnist("test")
    frames = images[:256].astype(np.float32) / 255.0
    init = init_from_seed(MNIST_SIREN, 0)
    median, runs, out = _timed(lambda: drive(fit_images(frames, init, device=device)), repeats, device)
    return {"inrs_per_second": len(frames) / median, "runs_seconds": runs, "images": len(frames),
            "share_reaching_30db": float(out.reached.float().mean())}


def test_shapes() -> list[trimesh.Trimesh]:
    """Eight simple solids (primitives and a manifold union) that fitting is timed on."""
    c = trimesh.creation
    union = lambda parts: trimesh.boolean.union(parts, engine="manifold")  # noqa: E731
    return [
        c.box((0.6, 0.3, 0.8)), c.icosphere(3), c.capsule(0.5, 0.2), c.annulus(0.2, 0.4, 0.3),
        c.cylinder(0.1, 0.9), c.cone(0.3, 0.6), c.torus(0.3, 0.08),
        union([c.box((0.8, 0.1, 0.1)), c.box((0.1, 0.8, 0.1)), c.icosphere(2, radius=0.2)]),
    ]


def bench_fit_3d(repeats: int, device: torch.device | None = None) -> dict:
    from engine.fit.meshes import fit_occupancy, normalise_mesh, sample_occupancy
    from engine.functional import init_from_seed
    from engine.progress import drive
    from engine.spec import HD_OCCUPANCY

    meshes = [normalise_mesh(m) for m in test_shapes()]
    init = init_from_seed(HD_OCCUPANCY, 0)

    def run():
        samples = [sample_occupancy(m, seed=i) for i, m in enumerate(meshes)]
        return drive(fit_occupancy(samples, init, device=device))

    median, runs, out = _timed(run, repeats, device)
    return {"seconds_per_shape": median / len(meshes), "runs_seconds": runs, "shapes": len(meshes),
            "mean_iou": float(out.quality.mean()), "includes": "sampling + winding numbers + batched fit"}


def glyph_shots(folder: Path, char: str = "9", count: int = 10) -> list[Path]:
    """``count`` PNG renders of ``char`` from different installed fonts."""
    from PIL import Image

    from engine.data.glyphs import find_fonts, font_chars, load_font, render_glyph

    paths = []
    for font in find_fonts():
        if char not in font_chars(font):
            continue
        img = render_glyph(load_font(font), char)
        if img is None:
            continue
        paths.append(folder / f"{char}-{len(paths)}.png")
        Image.fromarray(np.round(img * 255).astype(np.uint8)).save(paths[-1])
        if len(paths) == count:
            return paths
    raise InputError(f"found only {len(paths)} fonts with {char!r}; install fonts-dejavu-core fonts-liberation")


def mesh_shots(folder: Path, family: str = "lamp", count: int = 10) -> list[Path]:
    """``count`` OBJ files of a shapes3d family (seeds the corpora never use)."""
    from engine.data.shapes3d import make_shape

    paths = []
    for i in range(count):
        paths.append(folder / f"{family}-{i}.obj")
        make_shape(family, 10_000 + i).export(paths[-1])
    return paths


def bench_generator(model_path: str | os.PathLike, repeats: int, work: Path,
                    device: torch.device | None = None) -> dict:
    """Adapt on 10 shots (fitting them included) and generate 16 samples written to files."""
    from engine.diffusion.code_model import CodeDiffusion
    from engine.diffusion.generate import GenerateConfig
    from engine.diffusion.pipeline import adapt_recipe_for, adapt_to_files, generate_files, load_generator
    from engine.progress import drive

    model = load_generator(model_path, device or torch.device("cpu"))
    two_d = model.spec.in_dim == 2
    work.mkdir(parents=True, exist_ok=True)
    shots = glyph_shots(work) if two_d else mesh_shots(work)
    fmt = "png" if two_d else "obj"
    adapt_s, gen_s, sample_s = [], [], []
    adapted, records = None, []
    for r in range(repeats):
        t = time.perf_counter()
        recipe = dataclasses.replace(adapt_recipe_for(model), seed=r)
        adapted = drive(adapt_to_files(model, shots, recipe))
        _finished(device)
        adapt_s.append(time.perf_counter() - t)
    for r in range(repeats):
        t = time.perf_counter()
        sampled: list[float] = []  # when each denoising step ended: the last one ends the sampling

        def on_step(event, t=t, sampled=sampled):
            if event.stage == "sample":
                sampled.append(time.perf_counter() - t)

        records = drive(generate_files(adapted, GenerateConfig(n=16, seed=r), work / f"out-{r}", fmt,
                                       Path(model_path).name, resolution=128), on_progress=on_step)
        _finished(device)
        gen_s.append(time.perf_counter() - t)
        sample_s.append(sampled[-1] if sampled else gen_s[-1])
    out = {
        "model": Path(model_path).name, "spec": model.spec.name,
        "structured": isinstance(model, CodeDiffusion),
        "denoiser_parameters": sum(p.numel() for p in model.denoiser.parameters()),
        "adapt_10_shots_seconds": statistics.median(adapt_s), "adapt_runs_seconds": adapt_s,
        "of_which_fitting_shots_seconds": statistics.median(adapt_s) - adapted.meta["adapt"]["seconds"],
        "adapt_steps": adapted.meta["adapt"]["steps"],
        "generate_16_seconds": statistics.median(gen_s), "generate_runs_seconds": gen_s,
        "of_which_sampling_seconds": statistics.median(sample_s),
    }
    if not two_d:
        out["watertight_single_meshes_last_run"] = sum(1 for x in records if x["one_piece"])
    return out


def _example_shapes() -> list:
    from engine.inr_io import load_inr

    inrs = [load_inr(p) for p in sorted(EXAMPLES.glob("shape_*.safetensors"))]
    if not inrs:
        raise InputError(f"no example shapes in {EXAMPLES}; the extraction and thumbnail timings need them")
    return inrs


def bench_extract(repeats: int, device: torch.device | None = None) -> dict:
    """128³ mesh extraction of the example shapes: the network on ``device``, marching cubes on
    the CPU."""
    from engine.decode import extract_mesh

    runs = []
    for inr in _example_shapes():
        runs += _timed(lambda inr=inr: extract_mesh(inr, 128, device), repeats, device)[1]
    return {"seconds_128": statistics.median(runs), "runs_seconds": runs}


def bench_thumbnails(repeats: int, device: torch.device | None = None) -> dict:
    """A 256² shaded render of a mesh (VTK, on the CPU) and a 256² image of a 2D INR (the
    network on ``device``)."""
    from engine.decode import extract_mesh, render_image
    from engine.inr_io import load_inr
    from engine.render import MeshRenderer

    meshes = [extract_mesh(inr, 64, device) for inr in _example_shapes()]
    images = [load_inr(p) for p in sorted(EXAMPLES.glob("*.safetensors")) if load_inr(p).spec.in_dim == 2]
    out = {}
    with MeshRenderer(256) as renderer:
        renderer.render(meshes[0])  # the first render pays for the GL context
        runs = []
        for m in meshes:
            runs += _timed(lambda m=m: renderer.render(m), repeats)[1]
        out["mesh_256_seconds"] = statistics.median(runs)
    if images:
        runs = []
        for inr in images:
            runs += _timed(lambda inr=inr: render_image(inr, 256, device=device), repeats, device)[1]
        out["image_256_seconds"] = statistics.median(runs)
    return out


def run_speed(repeats: int = 3, sections: tuple[str, ...] = SECTIONS,
              model_2d: str | os.PathLike | None = DEFAULT_MODEL_2D,
              model_3d: str | os.PathLike | None = None,
              device: str | torch.device = "cpu") -> ProgressGen[dict]:
    """Time the chosen sections; returns ``{"machine": ..., section: {...}}``. The generator
    sections are skipped without a model. Everything that evaluates a network computes on
    ``device`` (``engine.device`` names); marching cubes, winding numbers and VTK renders on the
    CPU."""
    from engine.device import resolve

    target = resolve(device)
    unknown = [s for s in sections if s not in SECTIONS]
    if unknown:
        raise InputError(f"unknown section {unknown[0]!r}; choose from {', '.join(SECTIONS)}")
    result: dict = {"machine": machine(target), "repeats": repeats}
    with tempfile.TemporaryDirectory() as tmp:
        for i, section in enumerate(sections):
            yield Progress("bench speed", i, len(sections), section)
            if section == "fit-2d":
                result[section] = bench_fit_2d(repeats, target)
            elif section == "fit-3d":
                result[section] = bench_fit_3d(max(1, repeats // 2), target)
            elif section == "generator-2d" and model_2d is not None:
                result[section] = bench_generator(model_2d, repeats, Path(tmp) / "2d", target)
            elif section == "generator-3d" and model_3d is not None:
                result[section] = bench_generator(model_3d, repeats, Path(tmp) / "3d", target)
            elif section == "extract":
                result[section] = bench_extract(repeats, target)
            elif section == "thumbnails":
                result[section] = bench_thumbnails(repeats, target)
            else:
                result[section] = {"skipped": "no model given (--model-2d / --model-3d)"}
    yield Progress("bench speed", len(sections), len(sections))
    return result


def describe_speed(result: dict) -> str:
    """The human-readable summary of ``run_speed``'s result."""
    m = result["machine"]
    lines = [f"{m['cpu']}, {m['cores']} cores, torch {m['torch']}; computed on {m['device']}"
             + (f", {m['gpu']}" if m.get("gpu") else "") + f"; medians of {result['repeats']} runs"]
    if "fit-2d" in result:
        r = result["fit-2d"]
        lines.append(f"fit 2D:        {r['inrs_per_second']:.0f} INRs/s to 30 dB ({r['share_reaching_30db']:.0%} reached)")
    if "fit-3d" in result:
        r = result["fit-3d"]
        lines.append(f"fit 3D:        {r['seconds_per_shape']:.2f} s per shape (mean IoU {r['mean_iou']:.3f})")
    for key in ("generator-2d", "generator-3d"):
        r = result.get(key)
        if r is None:
            continue
        if "skipped" in r:
            lines.append(f"{key}:  skipped, {r['skipped']}")
            continue
        lines.append(f"adapt {key[-2:]} 10 shots: {r['adapt_10_shots_seconds']:.1f} s (fitting the shots "
                     f"{r['of_which_fitting_shots_seconds']:.1f} s; {r['adapt_steps']} steps)")
        lines.append(f"generate {key[-2:]} 16: {r['generate_16_seconds']:.2f} s (sampling {r['of_which_sampling_seconds']:.2f} s)")
    if "extract" in result:
        lines.append(f"mesh 128³:     {result['extract']['seconds_128']:.2f} s")
    if "thumbnails" in result:
        r = result["thumbnails"]
        lines.append(f"thumbnail:     3D {r['mesh_256_seconds'] * 1e3:.0f} ms"
                     + (f", 2D {r['image_256_seconds'] * 1e3:.0f} ms" if "image_256_seconds" in r else "") + " at 256²")
    return "\n".join(lines)
