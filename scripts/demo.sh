#!/usr/bin/env bash
# The first thing to run: set up (idempotent), then the end-to-end demo on generated data.
#   bash scripts/demo.sh [OUT_DIR]        (default: demo_out)
# Trains a small model on SYNTHETIC scenes, adapts it to a synthetic PlanetScope-like image, maps and
# evaluates both models, and writes OUT_DIR/demo_report.md. A few minutes on a 2-core CPU.
# Re-running replaces the earlier demo results in OUT_DIR (only the demo's own files and folders).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${1:-demo_out}"
bash "$ROOT/scripts/setup.sh"
"$ROOT/.venv/bin/fbp-landcover" demo --out "$OUT" --overwrite
