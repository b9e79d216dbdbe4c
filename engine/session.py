"""The facade both front doors (the ``equigen`` CLI and the desktop app) call.

Every long operation here is a progress generator (engine.progress); quick ones are plain
functions. Nothing here prints or touches Qt.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import trimesh

from engine.atomic import remove_stale_temporaries, writable_file, writable_folder
from engine.checks import seed, whole
from engine.decode import extract_mesh, mesh_or_none, render_image
from engine.device import gpu_errors
from engine.device import resolve as resolve_device
from engine.errors import EquigenError, InputError
from engine.export import export_mesh, export_png, mesh_format
from engine.fit.images import (
    IMAGE_SUFFIXES, ImageFitConfig, fit_images, load_gray, outcome_to_inrs, to_frame,
)
from engine.fit.loop import FitOutcome
from engine.fit.meshes import (
    MESH_SUFFIXES, MeshFitConfig, fit_meshes, load_mesh, normalise_mesh,
)
from engine.functional import Params, init_from_seed, params_digest
from engine.inr_io import INR, INR_SUFFIXES, TORCH_SUFFIXES, load_inr, save_inr
from engine.progress import Progress, ProgressGen, relay
from engine.spec import HD_OCCUPANCY, MNIST_SIREN, INRSpec


@dataclass(frozen=True)
class InitChoice:
    """Where fitting starts: one shared weight set from a seed, or from an INR file."""

    seed: int = 0
    file: str | None = None

    def __post_init__(self):
        seed("the initial weights' seed", self.seed)

    def params(self, spec: INRSpec) -> tuple[Params, str]:
        """The initial weights ``(1, *shape)`` for ``spec`` and an id recorded in metadata."""
        if self.file is None:
            return init_from_seed(spec, self.seed), f"seed:{self.seed}"
        inr = load_inr(self.file)
        if inr.spec != spec:
            raise InputError(
                f"{self.file}: initial weights are for spec {inr.spec.name!r}, "
                f"but these inputs need {spec.name!r}"
            )
        return inr.batched(), f"file:{Path(self.file).name}"


@dataclass(frozen=True)
class FitReport:
    """The outcome for one input file."""

    input: str
    output: str
    spec: str
    metric: str
    quality: float
    reached_target: bool
    steps: int
    seconds: float

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def input_kind(path: str | os.PathLike) -> str:
    """``"image"``, ``"mesh"`` or ``"inr"`` from the extension; InputError otherwise."""
    ext = Path(path).suffix.lower()
    if ext in IMAGE_SUFFIXES:
        return "image"
    if ext in MESH_SUFFIXES:
        return "mesh"
    if ext in INR_SUFFIXES + TORCH_SUFFIXES:
        return "inr"
    raise InputError(
        f"{path}: unsupported file type {ext or '(none)'}; give images "
        f"({', '.join(IMAGE_SUFFIXES)}) or meshes ({', '.join(MESH_SUFFIXES)})"
    )


def _output_paths(inputs: Sequence[Path], out_dir: Path) -> list[Path]:
    """One ``<stem>.safetensors`` per input in ``out_dir``; a name already taken there (by an
    earlier run) or by another input gets ``-2``, ``-3``, ...: fitting never replaces a file."""
    used: set[str] = set()
    outs = []
    for p in inputs:
        name, k = p.stem, 2
        while name in used or (out_dir / f"{name}.safetensors").exists():
            name, k = f"{p.stem}-{k}", k + 1
        used.add(name)
        outs.append(out_dir / f"{name}.safetensors")
    return outs


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes (read in 1 MB blocks)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fit_files(
    inputs: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    init: InitChoice = InitChoice(),
    image_config: ImageFitConfig = ImageFitConfig(),
    mesh_config: MeshFitConfig = MeshFitConfig(),
    image_spec: INRSpec = MNIST_SIREN,
    mesh_spec: INRSpec = HD_OCCUPANCY,
    device: str = "cpu",
) -> ProgressGen[list[FitReport]]:
    """Fit one INR per image or mesh file and write ``out_dir/<stem>.safetensors`` (a taken
    name gets ``-2``, ``-3``, ...; each file records its source's full path and SHA-256).

    The output folder and every input are checked before any fitting starts, so a bad file or
    an unwritable folder fails fast. Files are written batch by batch: a cancel keeps the
    batches already finished. ``device`` (``engine.device`` names) is where the weights are
    fitted; meshes are labelled (winding numbers) on the CPU.
    """
    target = resolve_device(device)
    paths = [Path(p) for p in inputs]
    if not paths:
        raise InputError("no inputs given; pass image or mesh files to fit")
    kinds = [input_kind(p) for p in paths]
    if "inr" in kinds:
        bad = paths[kinds.index("inr")]
        raise InputError(f"{bad}: already an INR; use 'equigen convert' or 'equigen info' on it")
    out_dir = writable_folder(out_dir)
    outs = _output_paths(paths, out_dir)
    images = [(p, to_frame(load_gray(p), image_spec.grid_size, image_config.invert))
              for p, k in zip(paths, kinds) if k == "image"]
    images = [(p, frame, o) for (p, frame), o in zip(images, [o for o, k in zip(outs, kinds) if k == "image"])]
    meshes = [(p, normalise_mesh(load_mesh(p)), o) for p, k, o in zip(paths, kinds, outs) if k == "mesh"]
    total = len(paths)
    reports: list[FitReport] = []

    if images:
        params, init_id = init.params(image_spec)
        for s in range(0, len(images), image_config.batch_size):
            batch = images[s : s + image_config.batch_size]
            frames = np.stack([f for _, f, _ in batch])
            outcome = yield from relay(
                fit_images(frames, params, image_spec, image_config, target), "fit", len(reports), total
            )
            reports += _write(image_spec, outcome, batch, "psnr_db", "image", init_id,
                              params_digest(params))
            yield Progress("fit", len(reports), total, f"wrote {len(reports)} of {total}")

    if meshes:
        params, init_id = init.params(mesh_spec)
        for s in range(0, len(meshes), mesh_config.batch_size):
            batch = meshes[s : s + mesh_config.batch_size]
            outcome = yield from relay(fit_meshes([m for _, m, _ in batch], params, mesh_spec, mesh_config,
                                                  [mesh_config.seed + s + i for i in range(len(batch))],
                                                  names=[str(p) for p, _, _ in batch], device=target),
                                       None, len(reports), total)
            reports += _write(mesh_spec, outcome, batch, "iou", "mesh", init_id,
                              params_digest(params))
            yield Progress("fit", len(reports), total, f"wrote {len(reports)} of {total}")
    return reports


def _write(spec, outcome: FitOutcome, batch, metric: str, kind: str, init_id: str, init_sha: str):
    """Save each ``(input, data, output path)`` of ``batch`` with its fit."""
    metas = [{"source": p.name, "source_path": str(p.resolve()), "source_sha256": file_sha256(p),
              "source_kind": kind, "init": init_id, "init_sha": init_sha} for p, _, _ in batch]
    inrs = outcome_to_inrs(spec, outcome, metas, metric)
    reports = []
    for (p, _, out), inr in zip(batch, inrs):
        save_inr(out, inr)
        reports.append(FitReport(
            input=str(p), output=str(out), spec=spec.name, metric=metric,
            quality=inr.meta[metric], reached_target=inr.meta["fit_reached_target"],
            steps=inr.meta["fit_steps"], seconds=inr.meta["fit_seconds"],
        ))
    return reports


def render_to_png(inr: INR, out: str | os.PathLike, size: int = 256, resolution: int = 128,
                  continuous: bool = False, device: torch.device | None = None) -> Path:
    """2D INR → its image; 3D INR → an off-screen shaded render of its mesh. Writes a PNG of
    ``size`` (8 to 4096) pixels a side; ``resolution`` (16 to 512) is the 3D marching-cubes grid;
    the network is evaluated on ``device`` (None: the CPU)."""
    whole("the image size in pixels", size, 8, 4096)
    whole("the mesh resolution", resolution, 16, 512)
    writable_file(out)
    if inr.spec.in_dim == 2:
        return export_png(render_image(inr, size, continuous, device), out)
    from engine.render import render_mesh  # VTK loads only when a 3D render is asked for

    return export_png(render_mesh(extract_mesh(inr, resolution, device), size), out)


def mesh_to_file(inr: INR, out: str | os.PathLike, resolution: int = 128,
                 device: torch.device | None = None) -> trimesh.Trimesh:
    """Extract a 3D INR's mesh (``resolution`` 16 to 512, the network evaluated on ``device``,
    None: the CPU) and write it in the format of ``out``'s extension."""
    mesh_format(out)  # refuse an unknown extension before the work
    whole("the mesh resolution", resolution, 16, 512)
    writable_file(out)
    mesh = extract_mesh(inr, resolution, device)
    export_mesh(mesh, out)
    return mesh


def convert_file(src: str | os.PathLike, out: str | os.PathLike) -> INR:
    """Import a DWSNets/HyperDiffusion ``.pth`` (or re-save any INR) as ``.safetensors``."""
    if Path(out).suffix.lower() != ".safetensors":
        raise InputError(f"{out}: the output must end in .safetensors")
    writable_file(out)
    inr = load_inr(src)
    save_inr(out, inr)
    return inr


@dataclass(frozen=True)
class Preview:
    """An opened INR ready to show: its 2D image or a coarse 3D mesh for a thumbnail."""

    path: str
    inr: INR
    image: np.ndarray | None = None  # (S, S) uint8 for 2D INRs
    mesh: trimesh.Trimesh | None = None  # for 3D INRs; None when the field has no surface
    note: str = ""


@dataclass(frozen=True)
class OpenResult:
    previews: list[Preview]
    problems: list[str]  # one line per file that could not be opened


def preview(path: str | os.PathLike, inr: INR, image_size: int = 128,
            mesh_resolution: int = 64, device: torch.device | None = None) -> Preview:
    """Decode an INR for display: an image for 2D, a coarse mesh for 3D (the network evaluated
    on ``device``, None: the CPU)."""
    if inr.spec.in_dim == 2:
        return Preview(str(path), inr, image=render_image(inr, image_size, device=device))
    mesh = mesh_or_none(inr, mesh_resolution, device)
    if mesh is None:
        return Preview(str(path), inr, note="the shape is empty: its INR draws no closed surface")
    return Preview(str(path), inr, mesh=mesh)


def open_files(
    paths: Sequence[str | os.PathLike], fit_dir: str | os.PathLike,
    init: InitChoice = InitChoice(), device: str = "cpu",
) -> ProgressGen[OpenResult]:
    """Open INR files as they are and fit images and meshes first (into ``fit_dir``); fitting
    and the previews' decoding compute on ``device`` (``engine.device`` names).

    A file that cannot be opened is reported in ``problems`` and the rest still open.
    """
    inr_paths, to_fit, problems = [], [], []
    for p in map(Path, paths):
        try:
            (inr_paths if input_kind(p) == "inr" else to_fit).append(p)
        except EquigenError as e:
            problems.append(str(e))
    readable = []
    for p in to_fit:  # read each input once up front, so one bad file does not stop the rest
        try:
            load_gray(p) if input_kind(p) == "image" else load_mesh(p)
            readable.append(p)
        except EquigenError as e:
            problems.append(str(e))
    total = len(inr_paths) + len(readable)
    previews: list[Preview] = []
    target = resolve_device(device)
    with gpu_errors(target):
        if readable:
            reports = yield from relay(fit_files(readable, fit_dir, init, device=target), "fit", 0, total)
            inr_paths += [Path(r.output) for r in reports]
        for i, p in enumerate(inr_paths):
            try:
                previews.append(preview(p, load_inr(p), device=target))
            except EquigenError as e:
                problems.append(str(e))
            yield Progress("open", i + 1, len(inr_paths), f"opened {p.name}")
    return OpenResult(previews, problems)


@dataclass(frozen=True)
class ExportOptions:
    """How shapes are written: 3D as a mesh at a marching-cubes resolution, 2D as a PNG of a
    size, and optionally each shape's INR file beside it."""

    mesh_ext: str = ".obj"  # .obj .ply .stl .glb
    resolution: int = 128  # marching-cubes grid for 3D
    image_size: int = 256  # pixels for 2D
    with_inr: bool = False  # also write <name>.safetensors

    def __post_init__(self):
        mesh_format(f"x{self.mesh_ext}")
        if not 16 <= self.resolution <= 512:
            raise InputError(f"mesh resolution {self.resolution} is out of range; choose 16 to 512")
        if not 8 <= self.image_size <= 4096:
            raise InputError(f"image size {self.image_size} is out of range; choose 8 to 4096 pixels")


def free_stem(folder: Path, stem: str, suffixes: Sequence[str]) -> str:
    """``stem``, or ``stem-2``, ``stem-3``, ... : the first name under which none of ``suffixes``
    exists in ``folder`` yet, so an export never overwrites an earlier one."""
    name, k = stem, 2
    while any((folder / f"{name}{s}").exists() for s in suffixes):
        name, k = f"{stem}-{k}", k + 1
    return name


def _export_one(job) -> list[Path]:
    inr, base, options = job
    if inr.spec.in_dim == 2:
        out = [export_png(render_image(inr, options.image_size), base.with_suffix(".png"))]
    else:
        mesh_to_file(inr, base.with_suffix(options.mesh_ext), options.resolution)
        out = [base.with_suffix(options.mesh_ext)]
    if options.with_inr:
        out.append(save_inr(base.with_suffix(".safetensors"), inr))
    return out


def export_shapes(shapes: Sequence[tuple[str, INR]], folder: str | os.PathLike,
                  options: ExportOptions = ExportOptions(), apart: bool = False) -> ProgressGen[list[Path]]:
    """Write each ``(name, inr)``: 2D as ``name.png``, 3D as ``name<mesh_ext>``, plus
    ``name.safetensors`` with ``options.with_inr``. Existing files are never replaced: a taken
    name gets ``-2``, ``-3``, ... ``apart``: in helper processes (marching cubes and mesh writing
    hold the GIL ~0.2 s a shape). Returns the paths written."""
    folder = writable_folder(folder)
    remove_stale_temporaries(folder)  # what an export killed mid-write left
    jobs, taken = [], set()
    for name, inr in shapes:
        suffixes = [".png" if inr.spec.in_dim == 2 else options.mesh_ext] + ([".safetensors"] if options.with_inr else [])
        stem = Path(name).stem if name.endswith(".safetensors") else name
        free = free_stem(folder, stem, suffixes)
        k = 2
        while free in taken:  # two shapes of one name in this export
            free = free_stem(folder, f"{stem}-{k}", suffixes)
            k += 1
        taken.add(free)
        jobs.append((inr, folder / f"{free}.x", options))
    if apart:
        from engine.helpers import run_apart

        done = yield from run_apart(_export_one, jobs, "export")
    else:
        done = []
        for i, job in enumerate(jobs):
            done.append(_export_one(job))
            yield Progress("export", i + 1, len(jobs), f"wrote {done[-1][0].name}")
    return [p for paths in done for p in paths]


def export_previews(previews: Sequence[Preview], folder: str | os.PathLike, mesh_ext: str = ".obj",
                    image_size: int = 256, resolution: int = 128) -> ProgressGen[list[Path]]:
    """``export_shapes`` of previews, each named after its file."""
    options = ExportOptions(mesh_ext=mesh_ext, resolution=resolution, image_size=image_size)
    return (yield from export_shapes([(Path(pv.path).stem, pv.inr) for pv in previews], folder, options))
