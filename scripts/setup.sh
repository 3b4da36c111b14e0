#!/usr/bin/env bash
# Sets up everything fbp_landcover needs on a fresh Debian 12 (bookworm) machine, as root.
# Idempotent: on a machine already set up it checks and returns in seconds.
#   - QGIS 3.40 LTR + Python bindings + GDAL from bookworm-backports, Xvfb for the desktop
#   - a venv at .venv on Debian's Python with system site packages (qgis, PyQt5, osgeo, numpy)
#   - the pinned Python dependencies (scripts/constraints.txt says why each pin)
#   - fbp_landcover importable from the venv, and loadable by QGIS from .venv/plugins
#   - .venv/bin/fbp-landcover, and .venv/bin/qgis / .venv/bin/qgis_process wrappers that let
#     QGIS's embedded Python see the venv (it takes its prefix from the first python3 on PATH)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
export DEBIAN_FRONTEND=noninteractive
say() { printf '[setup] %s\n' "$*"; }
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"

# --- 1. System packages ------------------------------------------------------------------------
need_apt=0
dpkg-query -W -f='${Version}' qgis 2>/dev/null | grep -q '^3\.40' || need_apt=1
for p in python3-qgis qgis-providers python3-gdal gdal-bin python3-venv xvfb xauth; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need_apt=1
done
if [ "$need_apt" = 1 ]; then
  say "installing QGIS 3.40 LTR from bookworm-backports (about 2 minutes, once)"
  if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
      | $SUDO tee /etc/apt/sources.list.d/bookworm-backports.sources >/dev/null
  fi
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends -t bookworm-backports \
    qgis python3-qgis qgis-providers python3-gdal gdal-bin >/dev/null
  $SUDO apt-get install -y -qq --no-install-recommends python3-venv xvfb xauth >/dev/null
fi
say "QGIS $(dpkg-query -W -f='${Version}' qgis)"

# --- 2. The venv ---------------------------------------------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
  say "creating the venv at .venv (Debian's Python, system site packages)"
  /usr/bin/python3 -m venv --system-site-packages "$VENV"
fi
stamp="$VENV/.fbp-requirements.sha256"
want="$(cat "$ROOT/scripts/constraints.txt" "$ROOT/scripts/requirements.txt" | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  say "installing pinned Python packages (about 30 s)"
  # Keep the pins for every later pip call in this venv too.
  printf '[install]\nconstraint = %s\n' "$ROOT/scripts/constraints.txt" > "$VENV/pip.conf"
  # pip's log goes to a file (this machine's pip configuration adds noisy index warnings); shown on failure.
  if ! "$VENV/bin/python" -m pip install -q --disable-pip-version-check \
      -c "$ROOT/scripts/constraints.txt" -r "$ROOT/scripts/requirements.txt" > "$VENV/pip-install.log" 2>&1; then
    cat "$VENV/pip-install.log" >&2
    exit 1
  fi
  echo "$want" > "$stamp"
fi

# --- 3. The package, the plugin path and the commands ------------------------------------------
# The repository root is the plugin folder (and the Python package fbp_landcover): link it under
# .venv/plugins so that both Python (.pth) and QGIS (QGIS_PLUGINPATH) find it by that name.
mkdir -p "$VENV/plugins"
ln -sfn "$ROOT" "$VENV/plugins/fbp_landcover"
site="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
echo "$VENV/plugins" > "$site/fbp_landcover.pth"

cat > "$VENV/bin/fbp-landcover" <<PY
#!$VENV/bin/python
import sys
from fbp_landcover.engine.cli import main
sys.exit(main())
PY
for tool in qgis qgis_process; do
  cat > "$VENV/bin/$tool" <<SH
#!/usr/bin/env bash
# Runs /usr/bin/$tool with this venv first on PATH, so QGIS's embedded Python uses the venv
# (torch, smp, onnxruntime), and with fbp_landcover on the plugin path.
export PATH="$VENV/bin:\$PATH"
export QGIS_PLUGINPATH="$VENV/plugins\${QGIS_PLUGINPATH:+:\$QGIS_PLUGINPATH}"
exec /usr/bin/$tool "\$@"
SH
done
chmod +x "$VENV/bin/fbp-landcover" "$VENV/bin/qgis" "$VENV/bin/qgis_process"

"$VENV/bin/python" - <<'PY'
import osgeo.gdal, numpy
from fbp_landcover.engine.torch_import import import_torch
torch = import_torch()
print(f"[setup] ready: GDAL {osgeo.gdal.__version__}, numpy {numpy.__version__}, torch {torch.__version__}")
PY
