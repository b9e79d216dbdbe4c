#!/usr/bin/env bash
# Per-user desktop integration (no root): the launcher, the icons at every size, and the file
# types of the studio's INR and model files, so they open with it from a file manager.
#   bash packaging/linux/install-desktop.sh [PATH-TO-equigen-studio]
# Default: the desktop build (dist/equigen-studio/equigen-studio) when it exists, else .venv/bin.
# --uninstall removes what it installed.
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${XDG_DATA_HOME:-$HOME/.local/share}
ICONS=resources/icons
SIZES="16 24 32 48 64 128 256 512"

if [ "${1:-}" = "--uninstall" ]; then
  rm -f "$DATA/applications/equigen-studio.desktop" "$DATA/mime/packages/equigen-studio-mime.xml" \
        "$DATA/icons/hicolor/scalable/apps/equigen-studio.svg"
  for s in $SIZES; do rm -f "$DATA/icons/hicolor/${s}x${s}/apps/equigen-studio.png"; done
else
  app=${1:-}
  if [ -z "$app" ]; then
    if [ -x dist/equigen-studio/equigen-studio ]; then app=$PWD/dist/equigen-studio/equigen-studio
    else app=$PWD/.venv/bin/equigen-studio; fi
  fi
  [ -x "$app" ] || { echo "install-desktop.sh: $app is not an executable; build or install the studio first" >&2; exit 2; }
  for s in $SIZES; do
    [ -f "$ICONS/equigen-studio-$s.png" ] || { echo "install-desktop.sh: run packaging/make_icons.py first" >&2; exit 2; }
    install -D -m 644 "$ICONS/equigen-studio-$s.png" "$DATA/icons/hicolor/${s}x${s}/apps/equigen-studio.png"
  done
  install -D -m 644 "$ICONS/equigen-studio.svg" "$DATA/icons/hicolor/scalable/apps/equigen-studio.svg"
  install -D -m 644 packaging/linux/equigen-studio-mime.xml "$DATA/mime/packages/equigen-studio-mime.xml"
  mkdir -p "$DATA/applications"
  sed "s|^Exec=.*|Exec=\"$app\" %F|" packaging/linux/equigen-studio.desktop > "$DATA/applications/equigen-studio.desktop"
  chmod 644 "$DATA/applications/equigen-studio.desktop"
fi
# refresh the caches where the tools are installed (they are optional on minimal systems)
command -v update-mime-database >/dev/null && update-mime-database "$DATA/mime" || true
command -v update-desktop-database >/dev/null && update-desktop-database "$DATA/applications" || true
command -v gtk-update-icon-cache >/dev/null && gtk-update-icon-cache -q -t "$DATA/icons/hicolor" || true
echo "install-desktop.sh: done (launcher, icons and file types under $DATA)"
