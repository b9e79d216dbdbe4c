"""Glyphs from installed fonts, rendered MNIST-style, with duplicate and decorative fonts dropped.

Rendering follows MNIST: the glyph is anti-aliased, fitted in a 20×20 box keeping its aspect and
placed in a 28×28 frame so that its centre of mass is at the centre. Only characters present in
the font's character map are rendered, so there are no fallback boxes.

Font rules (measured in docs/EXPERIMENTS.md, "Corpora"):
- a font must map all ten digits; otherwise it is skipped;
- duplicates: two fonts whose digit renders differ by less than ``DUPLICATE_MAE`` (mean absolute
  grey difference) are the same design, and only the first by path is kept;
- decorative fonts: a font is dropped when its glyphs cover more than ``MAX_INK`` of the frame on
  average (filled designs), or when fewer than ``MIN_READABLE_DIGITS`` of its ten digits are most
  similar (normalised correlation) to the same digit of the median font rather than to another
  digit. That removes pictorial, encircled, boxed and hollow-outline designs, whose digits a
  reader of ordinary type would not recognise at 28×28.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

log = logging.getLogger(__name__)
# fontTools warns about harmless quirks of old fonts (timestamps, advance widths) by the hundred.
logging.getLogger("fontTools").setLevel(logging.ERROR)

CHARSET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
DIGITS = "0123456789"
FONT_SUFFIXES = (".ttf", ".otf")
DEFAULT_FONT_DIRS = ("/usr/share/fonts",)
DUPLICATE_MAE = 0.01
MAX_INK = 0.42
MIN_READABLE_DIGITS = 3
RENDER_PX = 96


@dataclass(frozen=True)
class FontInfo:
    path: Path
    chars: frozenset[str]


def find_fonts(dirs=DEFAULT_FONT_DIRS) -> list[Path]:
    """Every .ttf/.otf file under ``dirs`` (recursively), sorted, each real file once."""
    seen, out = set(), []
    for d in dirs:
        for p in sorted(Path(d).rglob("*")):
            if p.suffix.lower() in FONT_SUFFIXES and p.is_file():
                real = os.path.realpath(p)
                if real not in seen:
                    seen.add(real)
                    out.append(p)
    return out


def font_chars(path: Path, charset: str = CHARSET) -> frozenset[str]:
    """Characters of ``charset`` that the font's character map really contains."""
    from fontTools.ttLib import TTFont

    try:
        with TTFont(str(path), fontNumber=0, lazy=True) as font:
            cmap = font.getBestCmap() or {}
    except Exception as e:  # fontTools raises many types for broken fonts
        log.warning("skipping font %s: %s", path.name, e)
        return frozenset()
    return frozenset(c for c in charset if ord(c) in cmap)


def render_glyph(font: ImageFont.FreeTypeFont, char: str, size: int = 28, box: int = 20) -> np.ndarray | None:
    """MNIST-style ``(size, size)`` float32 glyph in [0, 1], white on black; None if blank."""
    left, top, right, bottom = font.getbbox(char)
    w, h = max(1, right - left), max(1, bottom - top)
    pad = 4
    canvas = Image.new("L", (w + 2 * pad, h + 2 * pad), 0)
    ImageDraw.Draw(canvas).text((pad - left, pad - top), char, fill=255, font=font)
    ink = canvas.getbbox()
    if ink is None:
        return None
    glyph = canvas.crop(ink)
    scale = box / max(glyph.size)
    gw, gh = max(1, round(glyph.width * scale)), max(1, round(glyph.height * scale))
    small = np.asarray(glyph.resize((gw, gh), Image.Resampling.LANCZOS), dtype=np.float32) / 255.0
    small = np.clip(small, 0.0, 1.0)
    mass = small.sum()
    if mass <= 0:
        return None
    cy = (small.sum(axis=1) * np.arange(gh)).sum() / mass
    cx = (small.sum(axis=0) * np.arange(gw)).sum() / mass
    top_left_y = int(np.clip(round((size - 1) / 2 - cy), 0, size - gh))
    top_left_x = int(np.clip(round((size - 1) / 2 - cx), 0, size - gw))
    frame = np.zeros((size, size), dtype=np.float32)
    frame[top_left_y : top_left_y + gh, top_left_x : top_left_x + gw] = small
    return frame


def load_font(path: Path) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(path), RENDER_PX)


def digit_signature(path: Path) -> np.ndarray | None:
    """The font's ten digits rendered, ``(10, 28, 28)``; None if any is missing or blank."""
    try:
        font = load_font(path)
    except OSError as e:
        log.warning("skipping font %s: %s", path.name, e)
        return None
    renders = [render_glyph(font, c) for c in DIGITS]
    if any(r is None for r in renders):
        return None
    return np.stack(renders)


@dataclass(frozen=True)
class FontSelection:
    kept: list[FontInfo]
    duplicates: list[str]  # "dropped.ttf = kept.ttf"
    decorative: list[str]
    unusable: list[str]


def select_fonts(paths: list[Path], charset: str = CHARSET) -> FontSelection:
    """Apply the module's font rules to ``paths`` (order decides which duplicate is kept)."""
    candidates, signatures, unusable = [], [], []
    for p in paths:
        chars = font_chars(p, charset)
        sig = digit_signature(p) if set(DIGITS) <= chars else None
        if sig is None:
            unusable.append(p.name)
            continue
        candidates.append(FontInfo(p, chars))
        signatures.append(sig)
    if not candidates:
        return FontSelection([], [], [], unusable)
    sig = np.stack(signatures)  # (F, 10, 28, 28)
    ink = sig.mean(axis=(1, 2, 3))
    flat = sig.reshape(len(sig), 10, -1)
    templates = _unit(np.median(flat, axis=0))  # (10, 784): the median font's digits
    readable = (np.einsum("fdk,tk->fdt", _unit(flat), templates).argmax(-1) == np.arange(10)).sum(1)
    kept, kept_sigs, duplicates, decorative = [], [], [], []
    for info, s, k, r in zip(candidates, flat.reshape(len(flat), -1), ink, readable):
        if k > MAX_INK or r < MIN_READABLE_DIGITS:
            decorative.append(info.path.name)
            continue
        if kept_sigs:
            mae = np.abs(np.stack(kept_sigs) - s).mean(axis=1)
            j = int(mae.argmin())
            if mae[j] < DUPLICATE_MAE:
                duplicates.append(f"{info.path.name} = {kept[j].path.name}")
                continue
        kept.append(info)
        kept_sigs.append(s)
    return FontSelection(kept, duplicates, decorative, unusable)


def _unit(x: np.ndarray) -> np.ndarray:
    x = x - x.mean(axis=-1, keepdims=True)
    return x / (np.linalg.norm(x, axis=-1, keepdims=True) + 1e-8)
