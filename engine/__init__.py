"""EquiGen engine: Qt-free INR fitting, decoding, weight-space learning and generation."""

__version__ = "0.1.0"
