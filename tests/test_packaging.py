"""The wheel works outside the checkout: built, installed into a fresh venv in another folder,
its ``equigen`` and ``equigen-studio`` run on the bundled models and examples it carries.

On demand (minutes): ``pytest -m packaging tests/test_packaging.py``. The fresh venv reuses the
checkout's installed dependencies through a path entry (no download; the project's own code
and resources come only from the wheel, which the test checks).
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.packaging


def _run(cmd, cwd, env, timeout=600):
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"{cmd}: {r.stdout[-2000:]}\n{r.stderr[-2000:]}"
    return r.stdout


def test_the_wheel_installs_and_runs_outside_the_checkout(tmp_path):
    dist = tmp_path / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist), str(ROOT)],
         tmp_path, os.environ)
    (wheel,) = dist.glob("equigen_studio-*.whl")
    assert wheel.stat().st_size > 30e6  # the bundled models travel in it

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    site = Path(_run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp_path,
                     os.environ).strip())
    # the dependencies from the checkout's environment, after the venv's own packages
    (site / "zz_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([str(py), "-m", "pip", "install", "-q", "--no-deps", str(wheel)], tmp_path, os.environ)

    away = tmp_path / "elsewhere"
    away.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)} | {"QT_QPA_PLATFORM": "offscreen",
                                                                             "HOME": str(tmp_path / "home")}
    where = _run([str(py), "-c", "import engine, equigen_app, equigen_resources as r; "
                                 "print(engine.__file__, equigen_app.__file__, r.__file__)"], away, env)
    assert str(ROOT) not in where and all(str(site) in p for p in where.split())
    bin_dir = env_dir / "bin"
    assert "equigen" in _run([str(bin_dir / "equigen"), "--version"], away, env)
    models = _run([str(py), "-c", "from engine.bundled import models_dir, examples_dir; "
                                  "print(models_dir()); print(examples_dir())"], away, env).split()
    assert str(site) in models[0] and sorted(p.name for p in Path(models[0]).glob("*.safetensors")) == [
        "fashion-2d.safetensors", "glyphs-2d.safetensors", "shapes-3d.safetensors"]
    nines = sorted(str(p) for p in (Path(models[1]) / "nines").glob("*.png"))
    out = _run([str(bin_dir / "equigen"), "generate", "--model", str(Path(models[0]) / "glyphs-2d.safetensors"),
                "--shots", *nines, "-n", "2", "--out", "nines"], away, env)
    assert "wrote 2 png files" in out and len(list((away / "nines").glob("*.png"))) == 2
    out = _run([str(bin_dir / "equigen-studio"), "--self-test"], away, env)
    assert "self-test: passed" in out
