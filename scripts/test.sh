#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh, idempotent) and runs the whole test suite:
# engine tests, plugin tests in real QGIS (pytest-qgis, headless) and qgis_process runs.
# Extra arguments go to pytest (e.g. -k areas).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh
export QT_QPA_PLATFORM=offscreen
set +e
.venv/bin/python -m pytest "$@"
rc=$?
set -e
if [ "$rc" = 5 ]; then
  echo "no tests were collected: that is a failure" >&2
  exit 1
fi
exit "$rc"
