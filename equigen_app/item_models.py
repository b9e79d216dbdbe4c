"""Qt item models that mirror the studio state's lists (``state.ShapeList``); no logic of their own."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QAbstractListModel, QByteArray, QMimeData, QModelIndex, Qt
from PySide6.QtGui import QPixmap

from equigen_app.state import Shape, ShapeList

SHAPE_IDS_MIME = "application/x-equigen-shape-ids"


class ShapeListModel(QAbstractListModel):
    """One row per shape of a ``ShapeList``: its name, thumbnail and tooltip.

    ``thumbnail(shape)`` gives the pixmap (the window caches them). Rows can be dragged out as a
    list of shape ids (``SHAPE_IDS_MIME``), e.g. from the gallery onto the references.
    """

    ShapeRole = Qt.ItemDataRole.UserRole + 1

    def __init__(self, shapes: ShapeList, thumbnail: Callable[[Shape], QPixmap], parent=None):
        super().__init__(parent)
        self._thumbnail = thumbnail
        self.bind(shapes)

    def bind(self, shapes: ShapeList) -> None:
        """Mirror another list (a newly opened session)."""
        self.beginResetModel()
        old = getattr(self, "shapes", None)
        if old is not None:
            old.inserted.remove(self._inserted)
            old.removed.remove(self._removed)
        self.shapes = shapes
        shapes.inserted.append(self._inserted)
        shapes.removed.append(self._removed)
        self.endResetModel()

    def _inserted(self, at: int, new: list[Shape]) -> None:
        self.beginInsertRows(QModelIndex(), at, at + len(new) - 1)
        self.endInsertRows()

    def _removed(self, first: int, count: int) -> None:
        self.beginRemoveRows(QModelIndex(), first, first + count - 1)
        self.endRemoveRows()

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008 (Qt signature)
        return 0 if parent.isValid() else len(self.shapes)

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or not 0 <= index.row() < len(self.shapes):
            return None
        shape = self.shapes[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return shape.name
        if role == Qt.ItemDataRole.DecorationRole:
            return self._thumbnail(shape)
        if role == Qt.ItemDataRole.ToolTipRole:
            m = shape.meta
            quality = (f"fit PSNR {m['psnr_db']:.1f} dB" if "psnr_db" in m
                       else f"fit IoU {m['iou']:.3f}" if "iou" in m else "")
            made = (f"{m['generated_by']}, seed {m.get('seed')}, diversity {m.get('diversity')}"
                    if "generated_by" in m else "")
            lines = [shape.name, f"{shape.dim}D", shape.origin, quality, made]
            return "\n".join(str(x) for x in lines if x)
        if role == self.ShapeRole:
            return shape
        return None

    def flags(self, index: QModelIndex):
        base = super().flags(index)
        return base | Qt.ItemFlag.ItemIsDragEnabled if index.isValid() else base

    def mimeTypes(self) -> list[str]:
        return [SHAPE_IDS_MIME]

    def mimeData(self, indexes) -> QMimeData:
        ids = [self.shapes[i.row()].id for i in indexes if i.isValid()]
        mime = QMimeData()
        mime.setData(SHAPE_IDS_MIME, QByteArray("\n".join(ids).encode()))
        return mime

    def supportedDragActions(self):
        return Qt.DropAction.CopyAction

    def refresh(self, shape_id: str) -> None:
        """The thumbnail of ``shape_id`` changed."""
        try:
            row = self.shapes.index_of(shape_id)
        except KeyError:
            return
        i = self.index(row)
        self.dataChanged.emit(i, i, [Qt.ItemDataRole.DecorationRole])


def shape_ids(mime: QMimeData) -> list[str]:
    """The shape ids a drag carries, if it comes from one of the studio's own views."""
    if not mime.hasFormat(SHAPE_IDS_MIME):
        return []
    return [s for s in bytes(mime.data(SHAPE_IDS_MIME)).decode().split("\n") if s]
