#!/usr/bin/env bash
# One-step setup on a fresh Debian/Ubuntu machine: system packages, then a virtual environment
# in .venv with the project installed (editable) and its test tools. Safe to run again.
# --corpus-fonts also installs the 725 usable fonts the glyph corpora of the bundled models use.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  # Off-screen 3D rendering (VTK picks EGL when there is no display) and Qt's xcb platform.
  libegl1 libgl1 libegl-mesa0 libglx-mesa0 libgl1-mesa-dri libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1
  libxcb-image0 libxcb-render-util0 libxcb-shape0 libxcb-xkb1 libdbus-1-3 libfontconfig1
  # A virtual screen for screenshots and the interactive 3D view in tests.
  xvfb xauth
  # Offline data: Fashion-MNIST idx files and fonts for glyph corpora and tests.
  dataset-fashion-mnist fonts-dejavu-core fonts-liberation
)
if [ "${1:-}" = "--corpus-fonts" ]; then
  APT_PACKAGES+=(
    fonts-aenigma fonts-urw-base35 fonts-freefont-ttf fonts-dejavu-extra fonts-liberation2
    fonts-crosextra-carlito fonts-crosextra-caladea fonts-cantarell fonts-ebgaramond fonts-lato
    fonts-open-sans fonts-roboto-unhinted fonts-linuxlibertine fonts-texgyre fonts-comic-neue
    fonts-inconsolata fonts-league-spartan fonts-lobster fonts-junicode fonts-cmu
    fonts-adf-accanthis fonts-adf-baskervald fonts-adf-berenis fonts-adf-gillius fonts-adf-ikarius
    fonts-adf-irianis fonts-adf-libris fonts-adf-mekanus fonts-adf-oldania fonts-adf-romande
    fonts-adf-switzera fonts-adf-tribun fonts-adf-universalis fonts-adf-verana
  )
fi

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo"; else
    echo "install.sh: please install these Debian packages as root: ${missing[*]}" >&2; exit 1
  fi
  echo "install.sh: installing ${missing[*]}"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
# torch is pinned to 2.13.* in pyproject.toml: it resolves to the CPU build, never the CUDA one.
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[test]"
echo "install.sh: ready (.venv)"
