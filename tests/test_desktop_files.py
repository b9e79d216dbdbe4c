"""The desktop integration files: a launcher, icons at every size, file types that recognise the
studio's own files (and only those), the macOS document types, and the per-user install."""

from __future__ import annotations

import configparser
import os
import plistlib
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
LINUX = ROOT / "packaging" / "linux"
SIZES = (16, 24, 32, 48, 64, 128, 256, 512)
NS = {"m": "http://www.freedesktop.org/standards/shared-mime-info"}


def test_the_launcher_names_the_app_its_icon_and_its_file_types():
    entry = configparser.ConfigParser(interpolation=None)
    entry.optionxform = str
    entry.read(LINUX / "equigen-studio.desktop")
    d = entry["Desktop Entry"]
    assert d["Type"] == "Application" and d["Icon"] == "equigen-studio" and "%F" in d["Exec"]
    assert {"application/x-equigen-inr", "application/x-equigen-model"} <= set(d["MimeType"].strip(";").split(";"))


def test_icons_exist_at_every_size():
    icons = ROOT / "resources" / "icons"
    for s in SIZES:
        with Image.open(icons / f"equigen-studio-{s}.png") as im:
            assert im.size == (s, s) and im.mode == "RGBA"
    assert (icons / "equigen-studio.svg").read_text().startswith("<svg")
    assert (icons / "equigen-studio.ico").stat().st_size > 0 and (icons / "equigen-studio.icns").stat().st_size > 0


def _magic(mime_type: str) -> list[tuple[int, int, bytes]]:
    tree = ET.parse(LINUX / "equigen-studio-mime.xml")
    node = tree.getroot().find(f"m:mime-type[@type='{mime_type}']", NS)
    out = []
    for match in node.iter(f"{{{NS['m']}}}match"):
        start, end = (int(x) for x in match.get("offset").split(":"))
        out.append((start, end, match.get("value").encode()))
    return out


def _matches(path: Path, mime_type: str) -> bool:
    head = path.read_bytes()[:70_000]
    return any(value in head[start:end + len(value)] for start, end, value in _magic(mime_type))


def test_the_file_types_tell_inrs_from_models_from_other_safetensors(tmp_path):
    from safetensors.torch import save_file
    import torch

    inr = ROOT / "resources" / "examples" / "glyph_2.safetensors"
    model = ROOT / "resources" / "models" / "glyphs-2d.safetensors"
    other = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(3)}, str(other), metadata={"format": "pt"})
    assert _matches(inr, "application/x-equigen-inr") and not _matches(inr, "application/x-equigen-model")
    assert _matches(model, "application/x-equigen-model") and not _matches(model, "application/x-equigen-inr")
    assert not _matches(other, "application/x-equigen-inr") and not _matches(other, "application/x-equigen-model")


def test_the_macos_document_types_parse():
    info = plistlib.loads((ROOT / "packaging" / "macos" / "Info.plist").read_bytes())
    assert info["CFBundleIdentifier"] and info["CFBundleDocumentTypes"]
    assert info["UTExportedTypeDeclarations"][0]["UTTypeTagSpecification"]["public.filename-extension"] == ["safetensors"]


def test_the_per_user_install_and_uninstall(tmp_path):
    env = dict(os.environ, XDG_DATA_HOME=str(tmp_path))
    app = tmp_path / "equigen-studio"
    app.write_text("#!/bin/sh\n")
    app.chmod(0o755)
    subprocess.run(["bash", str(LINUX / "install-desktop.sh"), str(app)], check=True, env=env, capture_output=True)
    launcher = (tmp_path / "applications" / "equigen-studio.desktop").read_text()
    assert f'Exec="{app}" %F' in launcher
    assert all((tmp_path / "icons" / "hicolor" / f"{s}x{s}" / "apps" / "equigen-studio.png").exists() for s in SIZES)
    assert (tmp_path / "mime" / "packages" / "equigen-studio-mime.xml").exists()
    subprocess.run(["bash", str(LINUX / "install-desktop.sh"), "--uninstall"], check=True, env=env, capture_output=True)
    assert not (tmp_path / "applications" / "equigen-studio.desktop").exists()
