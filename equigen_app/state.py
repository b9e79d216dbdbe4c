"""The studio's plain-Python state: references, results, settings, undo, and the session on disk.

No Qt here (napari's ``ViewerModel`` pattern): the window's item models only mirror these lists
through their listeners, and tests drive the state without a display.

A session is a folder::

    session.json          the lists, the settings, the model; replaced atomically on every change
    references/*.safetensors, results/*.safetensors     every shape as a complete INR file
    thumbs/<id>.png       thumbnails, so reopening a session shows it without decoding anything

Every shape's file is written before ``session.json`` names it, and files are never deleted
while the session is open (undo may bring a removed shape back), so killing the app at any
moment leaves the last saved state whole.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from engine.atomic import atomic_write_bytes
from engine.diffusion.methods import method_named
from engine.errors import InputError
from engine.inr_io import INR, save_inr

SESSION_FILE = "session.json"
SESSION_FORMAT = "equigen-studio-session"
LISTS = ("references", "results")


@dataclass(frozen=True)
class Shape:
    """One shape on screen: a complete INR file in the session folder."""

    id: str
    name: str  # shown under the thumbnail; unique within its list
    file: str  # relative to the session folder
    dim: int  # 2 or 3
    origin: str = ""  # the dropped file's name, or how it was generated
    meta: dict = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Settings:
    model: str = ""  # the model file; "" for the first bundled one
    method: str = "equigen"
    count: int = 16
    seed: int = 0
    diversity: float = 0.5
    device: str = "auto"  # where adaptation and generation compute: auto, cpu or cuda (engine.device)


@dataclass(frozen=True)
class ShotChoice:
    """Which references Adapt and Generate use, and what to tell the user about it."""

    shapes: list[Shape]  # empty when ``problem`` says why nothing can be used
    problem: str | None = None  # one sentence saying what to do instead
    note: str | None = None  # e.g. references of the other kind left out
    blend: tuple[int, int] | None = None  # for a blend: the two picks' places in ``shapes``


def _kind_words(dim: int) -> str:
    return "images or 2D INR files" if dim == 2 else "meshes or 3D INR files"


class ShapeList:
    """A list of shapes that tells its listeners what changed (inserted/removed at an index)."""

    def __init__(self, name: str):
        self.name = name
        self._items: list[Shape] = []
        self.inserted: list[Callable[[int, list[Shape]], None]] = []
        self.removed: list[Callable[[int, int], None]] = []  # (first, count)

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self):
        return iter(list(self._items))

    def __getitem__(self, i: int) -> Shape:
        return self._items[i]

    def index_of(self, shape_id: str) -> int:
        for i, s in enumerate(self._items):
            if s.id == shape_id:
                return i
        raise KeyError(shape_id)

    def insert(self, at: int, shapes: list[Shape]) -> None:
        if not shapes:
            return
        self._items[at:at] = shapes
        for f in self.inserted:
            f(at, shapes)

    def remove_range(self, first: int, count: int) -> list[Shape]:
        gone = self._items[first:first + count]
        del self._items[first:first + count]
        if gone:
            for f in self.removed:
                f(first, len(gone))
        return gone


@dataclass
class _Edit:
    """One undoable change: shapes put in or taken out of one list (contiguous runs)."""

    text: str
    list_name: str
    runs: list[tuple[int, list[Shape]]]  # (index, shapes) in increasing index order
    added: bool


class StudioState:
    """References, results and settings of one session folder, with undo/redo.

    ``StudioState(folder)`` opens the session there (empty if new). Every change is saved.
    """

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.references = ShapeList("references")
        self.results = ShapeList("results")
        self.settings = Settings()
        self._undo: list[_Edit] = []
        self._redo: list[_Edit] = []
        self.changed: list[Callable[[], None]] = []  # after any edit, undo or redo
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / SESSION_FILE
        if path.exists():
            self._read(path)

    # -- what is there -----------------------------------------------------------------------
    def list(self, name: str) -> ShapeList:
        if name not in LISTS:
            raise ValueError(f"no list {name!r}")
        return getattr(self, name)

    def path_of(self, shape: Shape) -> Path:
        return self.folder / shape.file

    def thumb_path(self, shape: Shape) -> Path:
        return self.folder / "thumbs" / f"{shape.id}.png"

    def find(self, shape_id: str) -> tuple[str, int]:
        for name in LISTS:
            try:
                return name, self.list(name).index_of(shape_id)
            except KeyError:
                pass
        raise KeyError(shape_id)

    # -- edits -----------------------------------------------------------------------------------
    def add(self, list_name: str, inrs: Iterable[tuple[str, INR]], origin: str = "",
            text: str | None = None) -> list[Shape]:
        """Store each ``(name, inr)`` as a file of the session and append it to ``list_name``.

        Names are made unique within the list (``mug``, ``mug 2``, ...), so two dropped files
        with the same name stay two shapes with two files."""
        target = self.list(list_name)
        taken = {s.name for s in target}
        shapes = []
        for name, inr in inrs:
            shown = _unique(_clean(name), taken)
            taken.add(shown)
            sid = uuid.uuid4().hex[:12]
            rel = f"{list_name}/{sid}.safetensors"
            save_inr(self.folder / rel, inr)
            shapes.append(Shape(sid, shown, rel, inr.spec.in_dim, origin or str(inr.meta.get("source", "")),
                                {k: v for k, v in inr.meta.items() if isinstance(v, (int, float, str))}))
        if shapes:
            self._apply(_Edit(text or f"add {len(shapes)} to {list_name}", list_name,
                              [(len(target), shapes)], added=True))
        return shapes

    def remove(self, shape_ids: Iterable[str], text: str | None = None) -> int:
        """Take shapes out of their lists (undoable); returns how many went."""
        ids = set(shape_ids)
        n = 0
        for name in LISTS:
            lst = self.list(name)
            rows = [i for i, s in enumerate(lst) if s.id in ids]
            if rows:
                self._apply(_Edit(text or f"remove {len(rows)} from {name}", name, _runs(lst, rows), added=False))
                n += len(rows)
        return n

    def clear(self, list_name: str) -> int:
        return self.remove([s.id for s in self.list(list_name)], f"clear {list_name}")

    def copy_to(self, shape_ids: Iterable[str], list_name: str, text: str | None = None) -> list[Shape]:
        """Put copies of shapes into ``list_name`` (a result becomes a reference: "more like this")."""
        from engine.inr_io import load_inr

        found = []
        for sid in shape_ids:
            name, row = self.find(sid)
            found.append(self.list(name)[row])
        return self.add(list_name, [(s.name, load_inr(self.path_of(s))) for s in found],
                        text=text or f"use {len(found)} as references")

    # -- which references a run uses ---------------------------------------------------------------
    def shots_for(self, model_dim: int | None, selected: list[Shape] | None = None) -> ShotChoice:
        """The references a model of ``model_dim`` (2 or 3; None: no model) adapts to: the
        ``selected`` ones, or all, keeping those of its kind."""
        if model_dim is None:
            return ShotChoice([], "no model loaded: choose one under Model (make one with 'equigen train')")
        candidates = list(selected) if selected else list(self.references)
        if not candidates:
            return ShotChoice([], "add 1 to 20 examples of the new kind of shape to References first "
                                  "(drop files, or Add references…)")
        shapes = [s for s in candidates if s.dim == model_dim]
        if not shapes:
            return ShotChoice([], f"this model makes {model_dim}D shapes and none of the references is "
                                  f"{model_dim}D; add {_kind_words(model_dim)}, or choose a {5 - model_dim}D model")
        left = len(candidates) - len(shapes)
        note = f"Using the {len(shapes)} {model_dim}D reference(s); {left} of another kind left out" if left else None
        return ShotChoice(shapes, note=note)

    def blend_for(self, model_dim: int | None, picks: list[Shape], method: str) -> ShotChoice:
        """A blend between the two ``picks``: every reference of the model's kind is a shot (the
        blend interpolates two of them), with the picks' places in that list."""
        if len(picks) != 2:
            return ShotChoice([], "select exactly two references to blend between (Ctrl-click the second)")
        if not method_named(method).blends:
            return ShotChoice([], "blending works with the EquiGen methods; choose EquiGen under Method")
        choice = self.shots_for(model_dim)
        if choice.problem:
            return choice
        ids = [s.id for s in choice.shapes]
        if any(p.id not in ids for p in picks):
            return ShotChoice([], "both references must be of the model's kind to blend between them")
        return replace(choice, blend=(ids.index(picks[0].id), ids.index(picks[1].id)))

    def shots_summary(self, model_dim: int | None, selected: list[Shape] | None = None) -> str:
        """One line under the Generate button: what the next run will use."""
        refs = list(self.references)
        if not refs:
            return "Drop 1–20 examples of the new kind of shape into References, then Generate"
        if model_dim is None:
            return f"{len(refs)} reference(s); choose a model"
        usable = [s for s in refs if s.dim == model_dim]
        if not usable:
            return (f"none of the {len(refs)} reference(s) is {model_dim}D: add some, "
                    f"or choose a {5 - model_dim}D model")
        picked = [s for s in (selected or []) if s.dim == model_dim]
        using = f"the {len(picked)} selected" if picked else f"all {len(usable)}"
        other = len(refs) - len(usable)
        return f"Generate uses {using} {model_dim}D reference(s)" + (f"; {other} of the other kind left out"
                                                                     if other else "")

    def set_settings(self, **changes) -> None:
        self.settings = replace(self.settings, **changes)
        self.save()

    # -- undo ------------------------------------------------------------------------------------
    @property
    def undo_text(self) -> str:
        return self._undo[-1].text if self._undo else ""

    @property
    def redo_text(self) -> str:
        return self._redo[-1].text if self._redo else ""

    def undo(self) -> bool:
        if not self._undo:
            return False
        edit = self._undo.pop()
        self._do(edit, not edit.added)
        self._redo.append(edit)
        self._after()
        return True

    def redo(self) -> bool:
        if not self._redo:
            return False
        edit = self._redo.pop()
        self._do(edit, edit.added)
        self._undo.append(edit)
        self._after()
        return True

    def _apply(self, edit: _Edit) -> None:
        self._do(edit, edit.added)
        self._undo.append(edit)
        self._redo.clear()
        self._after()

    def _do(self, edit: _Edit, insert: bool) -> None:
        lst = self.list(edit.list_name)
        if insert:
            for at, shapes in edit.runs:  # increasing: each run lands where it was
                lst.insert(at, shapes)
        else:
            for at, shapes in reversed(edit.runs):
                lst.remove_range(at, len(shapes))

    def _after(self) -> None:
        self.save()
        for f in self.changed:
            f()

    # -- the file --------------------------------------------------------------------------------
    def save(self) -> None:
        """Write ``session.json`` atomically (the shapes' files are already written)."""
        doc = {"format": SESSION_FORMAT, "version": 1, "saved": time.time(), "settings": asdict(self.settings)}
        doc |= {name: [asdict(s) for s in self.list(name)] for name in LISTS}
        atomic_write_bytes(self.folder / SESSION_FILE, json.dumps(doc, indent=1).encode())

    def _read(self, path: Path) -> None:
        try:
            doc = json.loads(path.read_text())
            if doc.get("format") != SESSION_FORMAT:
                raise ValueError("not a studio session")
            settings = Settings(**{k: v for k, v in doc.get("settings", {}).items()
                                   if k in Settings.__dataclass_fields__})
            lists = {name: [Shape(**s) for s in doc.get(name, [])] for name in LISTS}
        except (ValueError, TypeError, KeyError) as e:
            raise InputError(f"{path}: not a readable studio session ({e}); open another one or start a new one") from e
        self.settings = settings
        for name, shapes in lists.items():
            present = [s for s in shapes if (self.folder / s.file).is_file()]
            self.list(name).insert(0, present)

    @property
    def title(self) -> str:
        return self.folder.name


def _clean(name: str) -> str:
    name = Path(name).stem if name.endswith((".safetensors", ".pth")) else name
    return re.sub(r"\s+", " ", name).strip() or "shape"


def _unique(name: str, taken: set[str]) -> str:
    if name not in taken:
        return name
    k = 2
    while f"{name} {k}" in taken:
        k += 1
    return f"{name} {k}"


def _runs(lst: ShapeList, rows: list[int]) -> list[tuple[int, list[Shape]]]:
    """Sorted rows → contiguous runs ``(first row, shapes)``."""
    runs: list[tuple[int, list[Shape]]] = []
    for r in sorted(rows):
        if runs and runs[-1][0] + len(runs[-1][1]) == r:
            runs[-1][1].append(lst[r])
        else:
            runs.append((r, [lst[r]]))
    return runs


class SessionLibrary:
    """The sessions in the user data dir, the most recent first; which one was open last."""

    def __init__(self, data_dir: str | Path):
        self.root = Path(data_dir) / "sessions"
        self.root.mkdir(parents=True, exist_ok=True)
        self._last = Path(data_dir) / "last-session.txt"

    def recent(self, n: int = 10) -> list[Path]:
        found = [p.parent for p in self.root.glob(f"*/{SESSION_FILE}")]
        return sorted(found, key=lambda p: (p / SESSION_FILE).stat().st_mtime, reverse=True)[:n]

    def new(self) -> Path:
        stamp = time.strftime("%Y-%m-%d %H.%M.%S")
        folder, k = self.root / stamp, 2
        while folder.exists():
            folder, k = self.root / f"{stamp} ({k})", k + 1
        folder.mkdir(parents=True)
        return folder

    def last(self) -> Path | None:
        try:
            folder = Path(self._last.read_text().strip())
        except OSError:
            return None
        return folder if (folder / SESSION_FILE).is_file() else None

    def remember(self, folder: Path) -> None:
        atomic_write_bytes(self._last, str(Path(folder).resolve()).encode())
