"""GPU benchmark of the engine's compute path, all on the device: normalise -> model -> blend -> classes.

    python3 bench/bench_gpu.py [--size 8192] [--window 1024] [--batch 8] [--device cuda]

Needs only torch and numpy (no GDAL): the raster is an in-memory array read through the same
``ModelInput`` interface, so what is measured is the engine's prediction loop (engine.inference.predict with a
TorchBackend that blends on the device), not disk I/O. It also measures, in the same run, the
device's dense convolution rate in bf16 on the U-Net's largest layer shape, and prints the U-Net's
FLOP bound in Mpx/s and the fraction reached. Runs on the CPU too (``--device cpu --size 1024``) to
check the script itself; the figures that matter are from a CUDA device.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _import_engine():
    """Make ``fbp_landcover`` importable from a plain checkout (a link named after the package)."""
    if importlib.util.find_spec("fbp_landcover") is None:
        link_dir = Path(tempfile.mkdtemp(prefix="fbp-pkg-"))
        os.symlink(ROOT, link_dir / "fbp_landcover")
        sys.path.insert(0, str(link_dir))


class ArrayInput:
    """A ModelInput over an in-memory 0..1 NIR,R,G,B array (boundless reads)."""

    def __init__(self, data: np.ndarray) -> None:
        self.data = data
        self.height, self.width = data.shape[1:]

    def read(self, x, y, w, h):
        out = np.zeros((4, h, w), np.float32)
        valid = np.zeros((h, w), bool)
        x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, self.width), min(y + h, self.height)
        out[:, y0 - y : y1 - y, x0 - x : x1 - x] = self.data[:, y0:y1, x0:x1]
        valid[y0 - y : y1 - y, x0 - x : x1 - x] = True
        return out, valid


def conv_rate(torch, device: str, dtype) -> float:
    """FLOP/s of the U-Net's full-resolution 3x3 convolution (128->64 channels) at this precision."""
    conv = torch.nn.Conv2d(128, 64, 3, padding=1).to(device).eval().to(memory_format=torch.channels_last)
    x = torch.randn(8, 128, 512, 512, device=device).to(memory_format=torch.channels_last)
    flops = 2 * 128 * 64 * 9 * x.shape[0] * 512 * 512
    with torch.inference_mode(), torch.autocast(device.split(":")[0], dtype=dtype,
                                                enabled=dtype != torch.float32):
        for _ in range(3):
            conv(x)
        sync(torch, device)
        t = time.perf_counter()
        n = 10
        for _ in range(n):
            conv(x)
        sync(torch, device)
    return flops * n / (time.perf_counter() - t)


def sync(torch, device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=8192)
    ap.add_argument("--window", type=int, default=1024)
    ap.add_argument("--overlap", type=int, default=64)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--confidence", action="store_true")
    args = ap.parse_args()
    _import_engine()
    from fbp_landcover.engine.inference.backends import TorchBackend
    from fbp_landcover.engine.inference.predict import PredictSettings, predict
    from fbp_landcover.engine.io.normalize import FBP_SOURCE_STATS
    from fbp_landcover.engine.models.fbp_unet import FbpUNet
    from fbp_landcover.engine.torch_import import import_torch

    torch = import_torch()
    dev = args.device
    name = torch.cuda.get_device_name() if dev.startswith("cuda") else "CPU"
    amp = torch.bfloat16 if dev.startswith("cuda") else torch.float32
    rate = conv_rate(torch, dev, amp)
    bound = rate / 1.2245e6 / 1e6  # the U-Net's FLOPs per pixel
    print(f"device: {name}; measured conv rate {rate / 1e12:.3g} TFLOP/s ({amp}); "
          f"U-Net bound {bound:.3g} Mpx/s")

    rng = np.random.default_rng(0)
    coarse = rng.random((4, args.size // 64 + 1, args.size // 64 + 1)).astype(np.float32)
    idx = np.arange(args.size) // 64
    data = coarse[:, idx][:, :, idx]
    inp = ArrayInput(data)
    backend = TorchBackend(FbpUNet(4, 25), dev, name)
    if not dev.startswith("cuda"):
        backend.device_blend = True  # exercise the device path on the CPU too
    settings = PredictSettings(window=args.window, overlap=args.overlap, batch_size=args.batch,
                               confidence=args.confidence)
    sink_time = [0.0]

    def sink(x, y, block, conf):
        sink_time[0] += 0.0  # the writer is not measured here (no GDAL on the device image)

    # Warm-up on a small region (kernel selection, allocator).
    predict(ArrayInput(data[:, : args.window * 2, : args.window * 2]), backend, FBP_SOURCE_STATS, settings,
            sink)
    sync(torch, dev)
    t = time.perf_counter()
    predict(inp, backend, FBP_SOURCE_STATS, settings, sink)
    sync(torch, dev)
    seconds = time.perf_counter() - t
    mpx = args.size * args.size / 1e6
    computed = (len(range(0, args.size - args.window, args.window - args.overlap)) + 1) ** 2 * args.window**2
    print(f"engine compute path: {mpx:.1f} Mpx in {seconds:.2f} s = {mpx / seconds:.3g} Mpx/s "
          f"({mpx / seconds / bound * 100:.0f} % of the bound; "
          f"{computed / 1e6 / seconds:.3g} Mpx/s of windows)")
    if dev.startswith("cuda"):
        print(f"peak GPU memory: {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")


if __name__ == "__main__":
    main()
