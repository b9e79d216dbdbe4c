"""Qt item models over plain engine objects (session.Preview)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QAbstractListModel, QModelIndex, Qt
from PySide6.QtGui import QPixmap

from engine.session import Preview


class ShapeListModel(QAbstractListModel):
    """The shapes on screen: each row a Preview and its thumbnail."""

    PreviewRole = Qt.ItemDataRole.UserRole + 1

    def __init__(self, parent=None):
        super().__init__(parent)
        self._items: list[tuple[Preview, QPixmap]] = []

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008 (Qt signature)
        return 0 if parent.isValid() else len(self._items)

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or not 0 <= index.row() < len(self._items):
            return None
        preview, pixmap = self._items[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return Path(preview.path).stem
        if role == Qt.ItemDataRole.DecorationRole:
            return pixmap
        if role == Qt.ItemDataRole.ToolTipRole:
            meta = preview.inr.meta
            quality = (f"PSNR {meta['psnr_db']:.1f} dB" if "psnr_db" in meta
                       else f"IoU {meta['iou']:.3f}" if "iou" in meta else "")
            lines = [Path(preview.path).name, f"{preview.inr.spec.name}, "
                     f"{preview.inr.spec.num_params:,} parameters", quality, preview.note]
            return "\n".join(line for line in lines if line)
        if role == self.PreviewRole:
            return preview
        return None

    def add(self, preview: Preview, pixmap: QPixmap) -> None:
        row = len(self._items)
        self.beginInsertRows(QModelIndex(), row, row)
        self._items.append((preview, pixmap))
        self.endInsertRows()

    def clear(self) -> None:
        self.beginResetModel()
        self._items.clear()
        self.endResetModel()

    def preview(self, row: int) -> Preview:
        return self._items[row][0]

    def previews(self) -> list[Preview]:
        return [p for p, _ in self._items]
