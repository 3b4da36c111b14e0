"""How long a map will take, said before a run that is large: a warning the CLI prints on stderr and the
panel shows with a "Map anyway" confirmation (a VRT claiming 200000 × 200000 pixels is 40 000 Mpx: hours).

The rate is the one the caller measured on this machine (the panel keeps its last plain run's), else a
nominal one: the authors' U-Net through onnxruntime on 2 CPU cores maps a Gaofen-2 scene at 2.4 Mpx/s
(bench/bench_mapping.py); a GPU is much faster, the compact models 1.5-3x.
"""

from __future__ import annotations

LARGE_MPX = 2000.0  # above this many megapixels (45 000², ~15 min at the nominal rate) a run is announced
NOMINAL_MPX_S = 2.0
NOMINAL_SOURCE = "a nominal CPU rate; the progress bar's estimate follows the real one"


def duration_text(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"


def size_warning(width: int, height: int, rate_mpx_s: float | None = None,
                 rate_source: str = "") -> str | None:
    """A sentence when ``width`` × ``height`` pixels exceed LARGE_MPX: size, rate used, duration; else
    None."""
    mpx = width * height / 1e6
    if mpx <= LARGE_MPX:
        return None
    rate, source = ((rate_mpx_s, rate_source or "measured here") if rate_mpx_s and rate_mpx_s > 0
                    else (NOMINAL_MPX_S, NOMINAL_SOURCE))
    return (f"the raster to map is {width} × {height} pixels ({mpx:,.0f} Mpx): at {rate:.1f} Mpx/s "
            f"({source}) that takes about {duration_text(mpx / rate)}; map a part of it with an extent, or "
            "cut it into scenes for map-many, which resumes where it stopped.")


def planned_size(image, sensor: str = "auto", *, working_gsd: float | None = None, extent=None,
                 rpc_height: float | None = None, rpc_dem: str | None = None) -> tuple[int, int] | None:
    """The working grid's size a map of ``image`` will have (after resampling and the extent), or None when
    it cannot be opened (the run then reports why)."""
    from ..errors import FbpError
    from ..io.raster import open_input
    from ..io.sensors import choose

    try:
        profile = choose(image, sensor)[0]
        with open_input(image, profile, working_gsd=working_gsd, extent=extent, mask="none",
                        rpc_height=rpc_height, rpc_dem=rpc_dem) as inp:
            return inp.width, inp.height
    except (FbpError, ValueError, RuntimeError, OSError):  # bad options, unreadable files: the run says why
        return None
