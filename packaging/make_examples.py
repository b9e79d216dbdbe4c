"""Regenerate resources/examples: the INR files the studio opens by default.

Made only from data on the machine: Fashion-MNIST (Debian's dataset-fashion-mnist, MIT),
glyphs of DejaVu Sans (fonts-dejavu-core, free licence) and shapes built from trimesh
primitives. Run: ``.venv/bin/python packaging/make_examples.py``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import trimesh
from PIL import Image, ImageDraw, ImageFont

from engine.data.idx import fashion_mnist
from engine.progress import drive
from engine.session import fit_files

OUT = Path(__file__).resolve().parents[1] / "resources" / "examples"
FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")


def glyph(char: str) -> Image.Image:
    font = ImageFont.truetype(str(FONT), 64)
    canvas = Image.new("L", (128, 128), 0)
    ImageDraw.Draw(canvas).text((32, 16), char, fill=255, font=font)
    g = canvas.crop(canvas.getbbox())
    s = 20 / max(g.size)
    g = g.resize((round(g.width * s), round(g.height * s)), Image.Resampling.LANCZOS)
    frame = Image.new("L", (28, 28), 0)
    frame.paste(g, ((28 - g.width) // 2, (28 - g.height) // 2))
    return frame


def shapes() -> dict[str, trimesh.Trimesh]:
    union = lambda parts: trimesh.boolean.union(parts, engine="manifold")  # noqa: E731
    diff = lambda a, b: trimesh.boolean.difference([a, b], engine="manifold")  # noqa: E731
    body = diff(trimesh.creation.cylinder(0.3, 0.7, sections=64),
                trimesh.creation.cylinder(0.25, 0.7, sections=64).apply_translation((0, 0, 0.06)))
    handle = trimesh.creation.torus(0.17, 0.045).apply_transform(
        trimesh.transformations.rotation_matrix(np.pi / 2, (1, 0, 0))).apply_translation((0.32, 0, 0))
    mug = union([body, diff(handle, trimesh.creation.cylinder(0.29, 0.8, sections=64))])
    top = trimesh.creation.box((1.0, 0.6, 0.06)).apply_translation((0, 0, 0.5))
    legs = [trimesh.creation.box((0.07, 0.07, 0.5)).apply_translation((x, y, 0.22))
            for x in (-0.43, 0.43) for y in (-0.23, 0.23)]
    table = union([top, *legs])
    seat = trimesh.creation.box((0.5, 0.5, 0.06)).apply_translation((0, 0, 0.45))
    back = trimesh.creation.box((0.5, 0.06, 0.5)).apply_translation((0, 0.22, 0.73))
    chair_legs = [trimesh.creation.box((0.05, 0.05, 0.45)).apply_translation((x, y, 0.2))
                  for x in (-0.21, 0.21) for y in (-0.21, 0.21)]
    chair = union([seat, back, *chair_legs])
    return {"mug": mug, "table": table, "chair": chair}


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    images, labels = fashion_mnist("test")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        inputs = []
        for cls, name in [(0, "tshirt"), (1, "trouser"), (3, "dress"), (5, "sandal"),
                          (7, "sneaker"), (8, "bag"), (9, "ankle_boot")]:
            idx = int(np.nonzero(labels == cls)[0][0])
            Image.fromarray(images[idx]).save(tmp / f"fashion_{name}.png")
            inputs.append(tmp / f"fashion_{name}.png")
        for ch in "29AQ":
            glyph(ch).save(tmp / f"glyph_{ch}.png")
            inputs.append(tmp / f"glyph_{ch}.png")
        for name, mesh in shapes().items():
            mesh.export(tmp / f"shape_{name}.ply")
            inputs.append(tmp / f"shape_{name}.ply")
        for report in drive(fit_files(inputs, OUT)):
            print(f"{Path(report.output).name}: {report.metric} {report.quality:.3f}")


if __name__ == "__main__":
    main()
