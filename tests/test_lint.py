"""The lint the configuration promises (pyproject.toml: ruff's E, W, I, B, UP, N and F rules at 110 columns)
holds everywhere: the whole tree is checked with that configuration, nothing selected away."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_finds_nothing_with_the_configured_rules():
    ruff = Path(sys.executable).with_name("ruff")
    out = subprocess.run([str(ruff), "check", "--no-cache", "--quiet", "."], cwd=ROOT, capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stdout + out.stderr
