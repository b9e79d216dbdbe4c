"""Render ``resources/icons/equigen-studio.svg`` to the PNG sizes desktops ask for (16-512 px)
and to a Windows ``.ico`` and a macOS ``.icns``: ``python packaging/make_icons.py``."""

from __future__ import annotations

import io
import sys
from pathlib import Path

from PIL import Image
from PySide6.QtCore import QByteArray, QBuffer, QIODevice, Qt
from PySide6.QtGui import QGuiApplication, QImage, QPainter
from PySide6.QtSvg import QSvgRenderer

SIZES = (16, 24, 32, 48, 64, 128, 256, 512)
ICONS = Path(__file__).resolve().parents[1] / "resources" / "icons"


def render(svg: Path, size: int) -> Image.Image:
    """The SVG drawn at ``size`` × ``size`` pixels, antialiased, on transparency."""
    image = QImage(size, size, QImage.Format.Format_ARGB32)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    QSvgRenderer(str(svg)).render(painter)
    painter.end()
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    image.save(buffer, "PNG")
    return Image.open(io.BytesIO(bytes(data))).convert("RGBA")


def main() -> int:
    app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])  # QPainter needs an application
    svg = ICONS / "equigen-studio.svg"
    images = {s: render(svg, s) for s in SIZES}
    for s, im in images.items():
        im.save(ICONS / f"equigen-studio-{s}.png")
    images[256].save(ICONS / "equigen-studio.ico", sizes=[(s, s) for s in SIZES if s <= 256])
    images[512].save(ICONS / "equigen-studio.icns")
    print(f"wrote {len(SIZES)} PNGs, .ico and .icns to {ICONS} ({app.platformName()} platform)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
