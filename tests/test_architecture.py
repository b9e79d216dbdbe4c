"""House rule 1: the engine never imports Qt or the app."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = ("PySide6", "PyQt5", "PyQt6", "pyvistaqt", "superqt", "qtpy", "equigen_app")


def test_engine_sources_import_no_qt():
    offenders = []
    for path in (ROOT / "engine").rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] in FORBIDDEN]
    assert not offenders, offenders


def test_importing_the_whole_engine_loads_no_qt():
    # every module file (the subfolders are namespace packages, which pkgutil does not walk)
    modules = [".".join(p.relative_to(ROOT).with_suffix("").parts) for p in (ROOT / "engine").rglob("*.py")
               if "__pycache__" not in p.parts and p.name not in ("__main__.py", "__init__.py")]
    code = (
        "import sys, importlib\n"
        f"for m in {sorted(modules)!r}: importlib.import_module(m)\n"
        f"bad = [m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r}]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_import_linter_contract_is_kept():
    lint = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-2000:]
    assert "1 kept, 0 broken" in result.stdout


def test_every_source_folder_is_packaged_and_resources_are_found_by_package():
    import tomllib

    packages = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    folders = {".".join(p.parent.relative_to(ROOT).parts) for top in ("engine", "equigen_app")
               for p in (ROOT / top).rglob("*.py") if "__pycache__" not in p.parts}
    assert folders <= packages, f"add to pyproject's packages: {sorted(folders - packages)}"
    # a checkout's layout is not an installed package's: code reaches resources/ via engine.bundled
    offenders = [str(p.relative_to(ROOT)) for top in ("engine", "equigen_app")
                 for p in (ROOT / top).rglob("*.py") if '"resources"' in p.read_text()]
    assert not offenders, offenders
