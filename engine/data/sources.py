"""Where corpus items come from: one Source per builder kind.

A Source lists Items (a stable id, a class label and what is needed to load it) and loads one
item at a time into what fitting needs: a 28×28 grey frame (2D), a mesh (3D) or an INR (import).
Listing is cheap and deterministic; loading can fail for a single item, which the builder skips.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import trimesh

from engine.data import glyphs, glyphs3d, shapes3d
from engine.data.idx import FASHION_MNIST_DIR, read_idx
from engine.errors import InputError
from engine.fit.images import IMAGE_SUFFIXES, load_gray, to_frame
from engine.fit.meshes import MESH_SUFFIXES, load_mesh
from engine.inr_io import INR_SUFFIXES, TORCH_SUFFIXES, load_inr

log = logging.getLogger(__name__)

FASHION_NAMES = ("tshirt_top", "trouser", "pullover", "dress", "coat",
                 "sandal", "shirt", "sneaker", "bag", "ankle_boot")
DWSNETS_NAME = re.compile(r"mnist_png_(training|testing)_(\d)_(\d+)")


@dataclass(frozen=True)
class Item:
    """One thing to fit: ``item_id`` is unique and stable within a corpus."""

    item_id: str
    label: str
    ref: tuple = ()  # what load() needs, as plain data


class Source:
    kind: str = ""
    dimension: str = "2d"  # "2d" frames, "3d" meshes, "inr" ready-made INRs
    default_targets: tuple[str, ...] = ()

    def items(self) -> list[Item]:
        raise NotImplementedError

    def load(self, item: Item):
        raise NotImplementedError

    def describe(self) -> dict:
        return {}


@dataclass
class GlyphSource(Source):
    """Characters 0-9A-Za-z from every usable font under ``font_dirs``; class = character."""

    font_dirs: tuple[str, ...] = glyphs.DEFAULT_FONT_DIRS
    charset: str = glyphs.CHARSET
    kind: str = "glyphs"
    dimension: str = "2d"
    default_targets: tuple[str, ...] = ("9", "G", "Q", "k")
    _selection: glyphs.FontSelection | None = field(default=None, repr=False)
    _fonts: dict = field(default_factory=dict, repr=False)

    def selection(self) -> glyphs.FontSelection:
        if self._selection is None:
            paths = glyphs.find_fonts(self.font_dirs)
            if not paths:
                raise InputError(
                    f"no .ttf/.otf fonts under {', '.join(self.font_dirs)}; install some "
                    "(e.g. apt-get install fonts-dejavu-core fonts-aenigma) or pass --fonts DIR")
            self._selection = glyphs.select_fonts(paths, self.charset)
        return self._selection

    def items(self) -> list[Item]:
        out = []
        for info in self.selection().kept:
            fid = _font_id(info.path, self.font_dirs)
            out += [Item(f"{fid}:{c}", c, (str(info.path), c)) for c in self.charset if c in info.chars]
        return out

    def load(self, item: Item) -> np.ndarray:
        path, char = item.ref
        if path not in self._fonts:
            self._fonts = {path: glyphs.load_font(Path(path))}  # one font at a time: items are grouped
        frame = glyphs.render_glyph(self._fonts[path], char)
        if frame is None:
            raise InputError(f"{Path(path).name}: {char!r} renders blank")
        return frame

    def describe(self) -> dict:
        s = self.selection()
        return {"fonts_kept": len(s.kept), "fonts_duplicate": s.duplicates,
                "fonts_decorative": s.decorative, "fonts_unusable": s.unusable}


@dataclass
class Glyph3DSource(GlyphSource):
    """Glyph outlines extruded into bevelled solids; class = character.

    Fonts whose outlines are too detailed for a 3D occupancy INR are dropped (glyphs3d's rule).
    """

    kind: str = "glyphs3d"
    dimension: str = "3d"
    _too_detailed: list[str] | None = field(default=None, repr=False)

    def selection(self) -> glyphs.FontSelection:
        sel = super().selection()
        if self._too_detailed is None:
            simple, self._too_detailed = [], []
            for info in sel.kept:
                if glyphs3d.font_complexity(info.path) <= glyphs3d.MAX_OUTLINE_COMPLEXITY:
                    simple.append(info)
                else:
                    self._too_detailed.append(info.path.name)
            sel = glyphs.FontSelection(simple, sel.duplicates, sel.decorative, sel.unusable)
            self._selection = sel
        return sel

    def describe(self) -> dict:
        return super().describe() | {"fonts_too_detailed_for_3d": self._too_detailed or []}

    def load(self, item: Item) -> trimesh.Trimesh:
        path, char = item.ref
        return glyphs3d.make_glyph_solid(Path(path), char)


def _font_id(path: Path, roots) -> str:
    for r in roots:
        try:
            return str(path.relative_to(r))
        except ValueError:
            continue
    return path.name


@dataclass
class FashionMnistSource(Source):
    """Fashion-MNIST train and test images from the idx files; class = label name."""

    root: str = str(FASHION_MNIST_DIR)
    kind: str = "fashion-mnist"
    dimension: str = "2d"
    default_targets: tuple[str, ...] = ("bag", "ankle_boot")
    _arrays: dict = field(default_factory=dict, repr=False)

    def _split(self, split: str):
        if split not in self._arrays:
            prefix = {"train": "train", "test": "t10k"}[split]
            root = Path(self.root)
            img, lab = root / f"{prefix}-images-idx3-ubyte.gz", root / f"{prefix}-labels-idx1-ubyte.gz"
            if not img.exists():
                img, lab = img.with_suffix(""), lab.with_suffix("")
            if not img.exists():
                raise InputError(f"Fashion-MNIST idx files not found in {root}; "
                                 "install them with 'apt-get install dataset-fashion-mnist' or pass --root")
            self._arrays[split] = (read_idx(img), read_idx(lab))
        return self._arrays[split]

    def items(self) -> list[Item]:
        out = []
        for split in ("train", "test"):
            _, labels = self._split(split)
            out += [Item(f"{split}/{i:05d}", FASHION_NAMES[int(y)], (split, i)) for i, y in enumerate(labels)]
        return out

    def load(self, item: Item) -> np.ndarray:
        split, i = item.ref
        return self._split(split)[0][i].astype(np.float32) / 255.0


def _class_folders(root: Path, suffixes) -> list[Item]:
    if not root.is_dir():
        raise InputError(f"{root}: no such folder")
    items = []
    for cls in sorted(p for p in root.iterdir() if p.is_dir()):
        for f in sorted(cls.rglob("*")):
            if f.is_file() and f.suffix.lower() in suffixes:
                items.append(Item(str(f.relative_to(root)), cls.name, (str(f),)))
    if not items:
        raise InputError(f"{root}: no files in class subfolders (expected {root}/CLASS/FILE)")
    return items


@dataclass
class ImageFolderSource(Source):
    """Any folder of images, one subfolder per class."""

    root: str = ""
    kind: str = "images"
    dimension: str = "2d"

    def items(self) -> list[Item]:
        return _class_folders(Path(self.root), IMAGE_SUFFIXES)

    def load(self, item: Item) -> np.ndarray:
        return to_frame(load_gray(item.ref[0]))


@dataclass
class MeshFolderSource(Source):
    """Any folder of meshes, one subfolder per class."""

    root: str = ""
    kind: str = "meshes"
    dimension: str = "3d"

    def items(self) -> list[Item]:
        return _class_folders(Path(self.root), MESH_SUFFIXES)

    def load(self, item: Item) -> trimesh.Trimesh:
        return load_mesh(item.ref[0])


@dataclass
class InrFolderSource(Source):
    """Existing INR files: classes from subfolders, or from the DWSNets MNIST-INR naming."""

    root: str = ""
    kind: str = "inrs"
    dimension: str = "inr"

    def items(self) -> list[Item]:
        root = Path(self.root)
        if not root.is_dir():
            raise InputError(f"{root}: no such folder")
        items = []
        for f in sorted(root.rglob("*")):
            if not (f.is_file() and f.suffix.lower() in INR_SUFFIXES + TORCH_SUFFIXES):
                continue
            rel = f.relative_to(root)
            m = next((DWSNETS_NAME.fullmatch(part) for part in rel.parts if DWSNETS_NAME.fullmatch(part)), None)
            if m is not None:
                label = m.group(2)
            elif len(rel.parts) >= 2:
                label = rel.parts[0]
            else:
                continue
            items.append(Item(str(rel), label, (str(f),)))
        if not items:
            raise InputError(f"{root}: no INR files in class subfolders or DWSNets "
                             "'mnist_png_<split>_<digit>_<n>/checkpoints/model_final.pth' folders")
        return items

    def load(self, item: Item):
        return load_inr(item.ref[0])


@dataclass
class Shapes3DSource(Source):
    """Procedural shape families (shapes3d.FAMILIES); ``count`` shapes per family."""

    families: tuple[str, ...] = tuple(sorted(shapes3d.FAMILIES))
    count: int = 250
    seed: int = 0
    kind: str = "shapes3d"
    dimension: str = "3d"
    default_targets: tuple[str, ...] = ("lamp", "mug")

    def items(self) -> list[Item]:
        unknown = set(self.families) - set(shapes3d.FAMILIES)
        if unknown:
            raise InputError(f"unknown shape families {sorted(unknown)}; "
                             f"choose from {', '.join(sorted(shapes3d.FAMILIES))}")
        return [Item(f"{f}/{i:05d}", f, (f, i)) for f in self.families for i in range(self.count)]

    def load(self, item: Item) -> trimesh.Trimesh:
        family, index = item.ref
        return shapes3d.make_shape(family, index, self.seed)


def default_targets(source: Source, classes: list[str]) -> tuple[str, ...]:
    """The protocol's held-out classes for this source (EquiGen's: digit 9 for MNIST digits)."""
    if source.default_targets:
        return tuple(c for c in source.default_targets if c in classes)
    if sorted(classes) == [str(d) for d in range(10)]:
        return ("9",)
    return ()
