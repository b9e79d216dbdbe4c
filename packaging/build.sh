#!/usr/bin/env bash
# The one-folder desktop build: dist/equigen-studio/ with the bundled models and examples, Qt's
# platform plugins, VTK and its GL/EGL pieces, made by PyInstaller from
# packaging/desktop/equigen-studio.spec. Then it proves the build: launched under Xvfb with
# --self-test (both bundled models, an example pack, adapt, generate, export a mesh); the script
# exits non-zero unless that passes. Prints the build's size and its cold start time (median of 3).
#   bash packaging/build.sh            # build + proof
#   EQUIGEN_SLIM=0 bash packaging/build.sh   # without the exclusions, in dist-unslimmed/ (to
#                                            # measure what they save)
set -euo pipefail
cd "$(dirname "$0")/.."
DIST=dist
[ "${EQUIGEN_SLIM:-1}" = "0" ] && DIST=dist-unslimmed
bash packaging/install.sh >/dev/null
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[test,desktop]"
QT_QPA_PLATFORM=offscreen .venv/bin/python packaging/make_icons.py >/dev/null

start=$(date +%s)
.venv/bin/pyinstaller --noconfirm --log-level WARN --distpath "$DIST" --workpath "build/pyinstaller-$DIST" \
  packaging/desktop/equigen-studio.spec
echo "build.sh: built $DIST/equigen-studio in $(( $(date +%s) - start )) s"
du -sm "$DIST/equigen-studio" | awk '{print "build.sh: size " $1 " MB"}'

app=$DIST/equigen-studio/equigen-studio
export QT_QPA_PLATFORM=xcb
xvfb-run -a -s "-screen 0 1280x1024x24" "$app" --self-test
echo "build.sh: self-test passed"
"$app" equigen --version

# cold start: from launch to the window with its bundled examples shown; three runs in one
# virtual screen, the median
xvfb-run -a -s "-screen 0 1280x1024x24" bash -c '
  for i in 1 2 3; do
    t0=$(date +%s.%N); "$0" --quit-when-ready >/dev/null 2>&1; echo "$(date +%s.%N) - $t0" | bc
  done' "$app" | sort -n | sed -n 2p | awk '{printf "build.sh: cold start %.1f s (median of 3)\n", $1}'
