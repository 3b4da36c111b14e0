#!/usr/bin/env bash
# The analyst's path in the real QGIS desktop (system QGIS, no venv, no wrapper, a clean profile, under Xvfb):
# Install from ZIP with QGIS's own plugin installer, "Install the engine" in the panel, then a first map.
# Saves three screenshots (before / during / after the engine install) and prints the timings.
#   scripts/analyst_screenshots.sh [out folder (artifacts/analyst)]
# The engine is installed from .wheels/ (filled by scripts/setup.sh), standing in for PyPI: this machine
# cannot reach download.pytorch.org. Raster: $FBP_SHOT_RASTER or ../shared/data/naip_nd_2020_rgbn_5m.tif.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$(realpath -m "${1:-$ROOT/artifacts/analyst}")"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$OUT" "$WORK/home"
ZIP="$(/usr/bin/python3 "$ROOT/scripts/package.py" --out "$WORK/dist")"
(cd "$ROOT" && .venv/bin/python -c "from tests.models import tiny_checkpoint; tiny_checkpoint('$WORK/tiny.fbpmodel')")
env -i HOME="$WORK/home" PATH=/usr/bin:/bin LANG="${LANG:-C.UTF-8}" \
  QGIS_CUSTOM_CONFIG_PATH="$WORK/profile" PIP_CONFIG_FILE=/dev/null \
  FBP_SHOT_OUT="$OUT" FBP_SHOT_ZIP="$ZIP" FBP_SHOT_WHEELS="$ROOT/.wheels" FBP_SHOT_MODEL="$WORK/tiny.fbpmodel" \
  FBP_SHOT_RASTER="${FBP_SHOT_RASTER:-$ROOT/../shared/data/naip_nd_2020_rgbn_5m.tif}" \
  xvfb-run -a -s "-screen 0 1600x1000x24" /usr/bin/qgis --nologo --noversioncheck \
  --code "$ROOT/scripts/analyst_screenshots.py"
ls "$OUT"/*.png
