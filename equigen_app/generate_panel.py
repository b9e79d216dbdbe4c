"""The generation controls: model, method, diversity slider, count, seed, Adapt, Generate, More
like this and Blend.

Only widgets and their values; the main window runs the work.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox, QFormLayout, QHBoxLayout, QLabel, QPushButton, QSlider, QSpinBox, QVBoxLayout, QWidget,
)

from engine.diffusion.generate import GenerateConfig
from engine.diffusion.methods import METHODS


def bundled_models(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.safetensors")) if folder.is_dir() else []


class GeneratePanel(QWidget):
    generate_requested = Signal()
    adapt_requested = Signal()
    more_like_this_requested = Signal()
    blend_requested = Signal()
    model_chosen = Signal(str)  # a path, or "" for "Open model…"

    def __init__(self, models: list[Path], parent=None):
        super().__init__(parent)
        self.model_box = QComboBox(objectName="modelCombo")
        self.model_box.setToolTip("The generator: bundled models, or any model file 'equigen train' made")
        for p in models:
            self.model_box.addItem(p.stem, str(p))
        self.model_box.addItem("Open model…", "")
        self.model_box.activated.connect(lambda i: self.model_chosen.emit(self.model_box.itemData(i)))
        self.model_info = QLabel()
        self.model_info.setWordWrap(True)
        self.model_info.setStyleSheet("color: gray;")
        self.method_box = QComboBox(objectName="methodCombo")
        self.diversity = QSlider(Qt.Orientation.Horizontal, objectName="diversitySlider")
        self.diversity.setRange(0, 100)
        self.diversity.setValue(50)
        self.diversity_label = QLabel("0.50")
        self.diversity.valueChanged.connect(lambda v: self.diversity_label.setText(f"{v / 100:.2f}"))
        self.diversity.setToolTip("0: stay close to the shots · 1: most varied (moves along the shots' "
                                  "own variation in the encoder's features, and for 3D models in weight space too)")
        self.count = QSpinBox(objectName="countSpin")
        self.count.setRange(1, 64)
        self.count.setValue(16)
        self.seed = QSpinBox(objectName="seedSpin")
        self.seed.setToolTip("The same seed, shots and settings give the same shapes again")
        self.seed.setRange(0, 2**31 - 1)
        self.adapt_button = QPushButton("Adapt", objectName="adaptButton")
        self.adapt_button.setToolTip("Fine-tune the model on the references (Generate does it too when needed)")
        self.adapt_button.clicked.connect(self.adapt_requested)
        self.generate_button = QPushButton("Generate", objectName="generateButton")
        self.generate_button.setDefault(True)
        self.generate_button.setToolTip("Make new shapes of the references' kind (Ctrl+G)")
        self.generate_button.clicked.connect(self.generate_requested)
        self.more_button = QPushButton("More like this", objectName="moreLikeThisButton")
        self.more_button.setToolTip("Add the selected results to the references")
        self.more_button.clicked.connect(self.more_like_this_requested)
        self.blend_button = QPushButton("Blend", objectName="blendButton")
        self.blend_button.setToolTip("Select two references: make the shapes in between them")
        self.blend_button.clicked.connect(self.blend_requested)
        self.shots_label = QLabel("Drop 1–20 examples of the new kind of shape into References, then Generate")
        self.shots_label.setWordWrap(True)

        row = QHBoxLayout()
        row.addWidget(self.diversity, 1)
        row.addWidget(self.diversity_label)
        form = QFormLayout()
        form.addRow("Model", self.model_box)
        form.addRow("", self.model_info)
        form.addRow("Method", self.method_box)
        form.addRow("Diversity", row)
        form.addRow("How many", self.count)
        form.addRow("Seed", self.seed)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.shots_label)
        buttons = QHBoxLayout()
        buttons.addWidget(self.adapt_button)
        buttons.addWidget(self.generate_button, 1)
        layout.addLayout(buttons)
        more = QHBoxLayout()
        more.addWidget(self.more_button)
        more.addWidget(self.blend_button)
        layout.addLayout(more)
        layout.addStretch(1)

    def set_model(self, path: str, description: str, methods: list[str]) -> None:
        i = self.model_box.findData(path)
        if i < 0:
            self.model_box.insertItem(self.model_box.count() - 1, Path(path).stem, path)
            i = self.model_box.findData(path)
        self.model_box.setCurrentIndex(i)
        self.model_info.setText(description)
        self.method_box.clear()
        for m in methods:
            self.method_box.addItem(METHODS[m].label, m)

    def reselect(self, path: str) -> None:
        """Show ``path`` as the current model again (after a cancelled or failed choice)."""
        i = self.model_box.findData(path)
        if i >= 0:
            self.model_box.setCurrentIndex(i)

    def config(self, blend: tuple[int, int] | None = None) -> GenerateConfig:
        return GenerateConfig(n=self.count.value(), diversity=self.diversity.value() / 100,
                              seed=self.seed.value(), method=self.method_box.currentData() or "equigen",
                              blend=blend)

    def set_busy(self, busy: bool) -> None:
        for w in (self.adapt_button, self.generate_button, self.blend_button, self.model_box):
            w.setEnabled(not busy)

    def apply(self, settings) -> None:
        """Show a session's settings (``state.Settings``)."""
        self.count.setValue(settings.count)
        self.seed.setValue(settings.seed)
        self.diversity.setValue(round(settings.diversity * 100))
        i = self.method_box.findData(settings.method)
        if i >= 0:
            self.method_box.setCurrentIndex(i)
