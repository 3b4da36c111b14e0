#!/usr/bin/env bash
# A screenshot tour of the FBP Land Cover panel and dialogs in the real QGIS desktop (under Xvfb):
#   bash scripts/desktop_tour.sh [out folder (artifacts/tour)]
# Makes a 600x600 crop of the NAIP R,G,B,NIR raster and a tiny random-weight model, enables the plugin in a
# clean profile, runs scripts/desktop_tour.py inside QGIS and prints its log. Needs scripts/setup.sh done.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$(realpath -m "${1:-$ROOT/artifacts/tour}")"
DATA="$ROOT/../shared/data"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$OUT"
rm -f "$OUT"/*.png "$OUT"/batch_*
START=$(date +%s)
gdal_translate -q -srcwin 100 60 600 600 -co COMPRESS=DEFLATE "$DATA/naip_nd_2020_rgbn_5m.tif" "$WORK/naip_600.tif"
(cd "$ROOT" && .venv/bin/python -c "from tests.models import tiny_checkpoint; tiny_checkpoint('$WORK/tiny.fbpmodel')")
export TOUR_OUT="$OUT" TOUR_RASTER="$WORK/naip_600.tif" TOUR_MODEL="$WORK/tiny.fbpmodel"
export TOUR_S2="$(realpath "$DATA/products/sentinel2/fake_l2a_processing_baseline_5_09/S2B_MSIL2A_20230823T095559_N0509_R122_T34UCF_20230823T124759.SAFE/MTD_MSIL2A.xml")"
export QGIS_CUSTOM_CONFIG_PATH="$WORK/profile"   # a clean profile, with the plugin enabled in it
QT_QPA_PLATFORM=offscreen "$ROOT/.venv/bin/qgis_process" plugins enable fbp_landcover >/dev/null
status=0
timeout 900 xvfb-run -a -s "-screen 0 1600x1000x24" "$ROOT/.venv/bin/qgis" --nologo --noversioncheck \
  --code "$ROOT/scripts/desktop_tour.py" 2>&1 | grep -v "^Warning: \|^$" || status=$?
ls -1 "$OUT"/*.png 2>/dev/null || true
echo "tour took $(( $(date +%s) - START )) s (exit $status)"
