"""The job manifest: what a map-many job was asked, and the state of every scene, in one JSON file.

The client is its only writer. Every change is written to a temporary file in the output folder and
renamed over ``manifest.json`` (``os.replace``), so a killed process leaves the previous complete
manifest, never a half-written one. A scene is skipped on a re-run when its ``key`` (the input's
fingerprint, the per-scene settings and the model's sha256) is unchanged, its state is ``done`` and
its outputs still exist.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import FbpError
from ..io.atomic import write_text_atomic

MANIFEST_NAME = "manifest.json"
FORMAT_VERSION = 1
HEAD_BYTES = 1 << 20  # the first and the last MiB of an input are hashed, with its size and mtime,
BLOCK_BYTES = 1 << 16  # and SAMPLED_BLOCKS blocks of 64 KiB evenly spread between them: about 6 MiB read
SAMPLED_BLOCKS = 64  # per scene whatever its size (bench/README.md: the cost against a whole-file hash)

PENDING, RUNNING, DONE, FAILED = "pending", "running", "done", "failed"


def fingerprint(path: str | os.PathLike) -> dict:
    """size, mtime (ns) and sha256 of the file's first and last MiB and of 64 blocks spread between them.

    An edit that keeps the size, restores the mtime and touches no sampled byte goes unnoticed (a whole-file
    hash would cost a full read of every scene at every resume); README "Country-scale mapping" says so."""
    p = Path(path)
    if not p.exists():
        return {"missing": True}
    st = p.stat()
    digest = hashlib.sha256()
    if p.is_file():
        with open(p, "rb") as handle:
            for offset, length in sampled_ranges(st.st_size):
                handle.seek(offset)
                digest.update(handle.read(length))
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256_sampled": digest.hexdigest()}


def sampled_ranges(size: int) -> list[tuple[int, int]]:
    """(offset, length) of the bytes ``fingerprint`` hashes in a file of ``size`` bytes, in order."""
    if size <= 2 * HEAD_BYTES + SAMPLED_BLOCKS * BLOCK_BYTES:
        return [(0, size)]
    inner, span = HEAD_BYTES, size - 2 * HEAD_BYTES
    step = span / SAMPLED_BLOCKS
    blocks = [(inner + int(i * step + (step - BLOCK_BYTES) / 2), BLOCK_BYTES) for i in range(SAMPLED_BLOCKS)]
    return [(0, HEAD_BYTES), *blocks, (size - HEAD_BYTES, HEAD_BYTES)]


def scene_key(input_fp: dict, settings: dict, model_sha256: str) -> str:
    """A digest of everything a scene's outputs depend on."""
    text = json.dumps({"input": input_fp, "settings": settings, "model": model_sha256}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass
class SceneEntry:
    input: str
    name: str
    sensor: str
    key: str
    fingerprint: dict
    outputs: dict
    date: str = ""
    date_source: str = ""
    state: str = PENDING
    error: str = ""
    seconds: float = 0.0
    finished: str = ""
    worker: str = ""
    pixels: int = 0
    width: int = 0
    height: int = 0
    device: str = ""
    attempts: int = 0


@dataclass
class Manifest:
    path: Path
    settings: dict
    model: dict
    scenes: list[SceneEntry] = field(default_factory=list)
    mosaic: dict = field(default_factory=dict)
    write_seconds: float = 0.0  # time spent writing this manifest during the run (not stored)
    writes: int = 0

    def to_dict(self) -> dict:
        return {
            "format_version": FORMAT_VERSION, "kind": "fbp_landcover map-many job",
            "settings": self.settings, "model": self.model,
            "scenes": [asdict(s) for s in self.scenes], "mosaic": self.mosaic,
        }

    def save(self) -> None:
        """Write atomically: a temporary file beside it, then os.replace."""
        t0 = time.perf_counter()
        write_text_atomic(self.path, json.dumps(self.to_dict(), indent=1))
        self.write_seconds += time.perf_counter() - t0
        self.writes += 1


def load_previous(path: Path) -> dict[str, SceneEntry]:
    """Scenes of an earlier run of this job, by input path ({} when there is none)."""
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise TypeError(f"it holds a JSON {type(data).__name__}, not an object")
        scenes = [SceneEntry(**s) for s in data.get("scenes", [])]
    except (ValueError, TypeError) as exc:
        raise FbpError(f"The job manifest {path} is not a manifest this version can read ({exc}); "
                       "remove it or choose another output folder "
                       "(its scenes will then be mapped again).") from None
    return {s.input: s for s in scenes}


def is_reusable(old: SceneEntry | None, key: str) -> bool:
    """True when an earlier run finished this scene with the same key and its outputs are still there."""
    return bool(old is not None and old.state == DONE and old.key == key
                and all(Path(p).exists() for p in old.outputs.values()))
