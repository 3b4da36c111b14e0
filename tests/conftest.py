"""Shared fixtures. Tests that need the real rasters in ../shared/data skip with a reason when absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("FBP_SHARED_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder of real third-party rasters (../shared/data), or a skip saying it is missing."""
    if not (SHARED_DATA / "README.md").is_file():
        pytest.skip(f"real test rasters not found at {SHARED_DATA} (set FBP_SHARED_DATA to their folder)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def products(shared_data) -> Path:
    """The real sensor-product fixtures (../shared/data/products), or a skip saying they are missing."""
    folder = shared_data / "products"
    if not (folder / "README.md").is_file():
        pytest.skip(f"product fixtures not found at {folder}")
    return folder
