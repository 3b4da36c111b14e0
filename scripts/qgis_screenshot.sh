#!/usr/bin/env bash
# Screenshot of the real QGIS desktop (under Xvfb) after mapping a raster through the FBP Land Cover panel.
#   scripts/qgis_screenshot.sh [out.png (artifacts/qgis_dock.png)] [model file (a tiny random-weight test model)]
# Raster: $FBP_SHOT_RASTER or ../shared/data/naip_nd_2020_rgbn_5m.tif. Needs scripts/setup.sh done.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$(realpath -m "${1:-$ROOT/artifacts/qgis_dock.png}")"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
MODEL="${2:-}"
if [ -z "$MODEL" ]; then
  MODEL="$WORK/tiny.fbpmodel"
  (cd "$ROOT" && .venv/bin/python -c "from tests.models import tiny_checkpoint; tiny_checkpoint('$MODEL')")
fi
export FBP_SHOT_OUT="$OUT" FBP_SHOT_MODEL="$(realpath "$MODEL")"
export FBP_SHOT_RASTER="${FBP_SHOT_RASTER:-$ROOT/../shared/data/naip_nd_2020_rgbn_5m.tif}"
export QGIS_CUSTOM_CONFIG_PATH="$WORK/profile"   # a clean profile, with the plugin enabled in it
QT_QPA_PLATFORM=offscreen "$ROOT/.venv/bin/qgis_process" plugins enable fbp_landcover >/dev/null
xvfb-run -a -s "-screen 0 1600x1000x24" "$ROOT/.venv/bin/qgis" --nologo --noversioncheck \
  --code "$ROOT/scripts/qgis_screenshot.py"
test -s "$OUT" && echo "screenshot: $OUT"
