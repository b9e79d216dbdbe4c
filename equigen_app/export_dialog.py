"""The export options dialog: folder, 3D format and resolution, 2D size, INR files too."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import (
    QCheckBox, QComboBox, QDialog, QDialogButtonBox, QFileDialog, QFormLayout, QHBoxLayout, QLineEdit,
    QPushButton, QSpinBox, QWidget,
)

from engine.errors import InputError
from engine.session import ExportOptions

MESH_FORMATS = [(".obj", "OBJ (Wavefront)"), (".ply", "PLY"), (".stl", "STL"), (".glb", "GLB (glTF binary)")]


class ExportDialog(QDialog):
    def __init__(self, count: int, folder: str, options: ExportOptions = ExportOptions(), parent=None):
        super().__init__(parent)
        self.setObjectName("exportDialog")
        self.setWindowTitle(f"Export {count} shape{'s' if count != 1 else ''}")
        self.folder = QLineEdit(folder, objectName="exportFolder")
        browse = QPushButton("Choose…")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.folder, 1)
        row.addWidget(browse)
        holder = QWidget()
        holder.setLayout(row)
        self.mesh_format = QComboBox(objectName="exportMeshFormat")
        for ext, label in MESH_FORMATS:
            self.mesh_format.addItem(label, ext)
        self.mesh_format.setCurrentIndex(max(0, self.mesh_format.findData(options.mesh_ext)))
        self.resolution = QSpinBox(objectName="exportResolution")
        self.resolution.setRange(32, 384)
        self.resolution.setSingleStep(32)
        self.resolution.setValue(options.resolution)
        self.resolution.setSuffix("³")
        self.resolution.setToolTip("Marching-cubes grid: finer keeps thin parts, costs time (128³ ≈ 1 s a shape)")
        self.image_size = QSpinBox(objectName="exportImageSize")
        self.image_size.setRange(28, 2048)
        self.image_size.setValue(options.image_size)
        self.image_size.setSuffix(" px")
        self.with_inr = QCheckBox("Also write each shape's INR file (.safetensors)", objectName="exportWithInr")
        self.with_inr.setChecked(options.with_inr)
        form = QFormLayout(self)
        form.addRow("Folder", holder)
        form.addRow("3D shapes as", self.mesh_format)
        form.addRow("Mesh resolution", self.resolution)
        form.addRow("2D image size", self.image_size)
        form.addRow("", self.with_inr)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Export")
        buttons.accepted.connect(self._accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)
        self.error = ""

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export to", self.folder.text())
        if folder:
            self.folder.setText(folder)

    def options(self) -> ExportOptions:
        return ExportOptions(mesh_ext=self.mesh_format.currentData(), resolution=self.resolution.value(),
                             image_size=self.image_size.value(), with_inr=self.with_inr.isChecked())

    def _accept(self) -> None:
        if not self.folder.text().strip():
            self.error = "choose a folder to export to"
            return
        try:
            self.options()
        except InputError as e:
            self.error = str(e)
            return
        self.accept()

    def chosen_folder(self) -> Path:
        return Path(self.folder.text().strip()).expanduser()
