"""Mapping throughput and memory: the engine against the authors' reference scheme, in one run.

    .venv/bin/python bench/bench_mapping.py [--size 2048] [--compact-size 4096] [--big 20000] [--skip-reference]

Every method runs in its own subprocess so that its peak RSS is its own. Printed: method, raster size,
Mpx/s, peak RSS, ratio to the reference scheme, and the fraction of this machine's measured convolution
bound (a large 3x3 convolution's FLOP rate, measured in the same run, divided by the model's FLOPs per
pixel). Random weights: speed does not depend on them; the class maps are compared where it matters
(engine centre-crop vs the reference: identical).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable


def write_raster(path: Path, size: int) -> None:
    """A 4-band uint8 R,G,B,NIR raster with smooth structure, written in strips (bounded memory)."""
    import numpy as np
    from osgeo import gdal, osr

    gdal.UseExceptions()
    ds = gdal.GetDriverByName("GTiff").Create(str(path), size, size, 4, gdal.GDT_Byte,
                                              ["TILED=YES", "COMPRESS=DEFLATE"])
    ds.SetGeoTransform((500000, 4, 0, 4000000, 0, -4))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32650)
    ds.SetProjection(srs.ExportToWkt())
    rng = np.random.default_rng(0)
    coarse = rng.random((4, size // 64 + 2, size // 64 + 2))
    for y in range(0, size, 512):
        h = min(512, size - y)
        yi = (np.arange(y, y + h) // 64)[:, None]
        xi = (np.arange(size) // 64)[None, :]
        for b in range(4):
            strip = coarse[b][yi, xi] * 200 + rng.integers(0, 50, (h, size))
            ds.GetRasterBand(b + 1).WriteArray(strip.astype(np.uint8), 0, y)
    ds = None


def repeated_vrt(src: Path, dst: Path, size: int, tile: int) -> None:
    """A virtual raster of ``size`` x ``size`` pixels made of one file repeated (no disk cost)."""
    from osgeo import gdal

    blocks = []
    for y in range(0, size, tile):
        for x in range(0, size, tile):
            w, h = min(tile, size - x), min(tile, size - y)
            for b in range(1, 5):
                blocks.append((b, f'<SimpleSource><SourceFilename relativeToVRT="0">{src}</SourceFilename>'
                                  f'<SourceBand>{b}</SourceBand><SrcRect xOff="0" yOff="0" xSize="{w}" ySize="{h}"/>'
                                  f'<DstRect xOff="{x}" yOff="{y}" xSize="{w}" ySize="{h}"/></SimpleSource>'))
    ds = gdal.Open(str(src))
    srs = ds.GetProjection()
    gt = ds.GetGeoTransform()
    bands = "".join(
        f'<VRTRasterBand dataType="Byte" band="{b}">' + "".join(s for bb, s in blocks if bb == b) + "</VRTRasterBand>"
        for b in range(1, 5))
    dst.write_text(f'<VRTDataset rasterXSize="{size}" rasterYSize="{size}"><SRS>{srs}</SRS>'
                   f'<GeoTransform>{", ".join(map(str, gt))}</GeoTransform>{bands}</VRTDataset>')


def make_model(path: Path, compact: bool) -> None:
    from fbp_landcover.engine.checkpoints import ModelCard, save_checkpoint
    from fbp_landcover.engine.models import build_model
    from fbp_landcover.engine.torch_import import import_torch

    import_torch().manual_seed(0)
    from fbp_landcover.engine.models.presets import preset

    if compact:
        card = ModelCard(name="compact-bench", **preset("compact"),
                         provenance={"trained_on": "untrained random weights, made for a benchmark"})
    else:
        card = ModelCard(name="fbp-unet-bench", architecture="fbp_unet",
                         provenance={"trained_on": "untrained random weights, made for a benchmark"})
    save_checkpoint(path, build_model(card), card)


def conv_rate() -> float:
    """FLOP/s of a large 3x3 convolution (64->64 channels, 512x512) in torch on this machine."""
    from fbp_landcover.engine.torch_import import import_torch

    torch = import_torch()
    conv = torch.nn.Conv2d(64, 64, 3, padding=1).eval()
    x = torch.randn(1, 64, 512, 512)
    with torch.inference_mode():
        conv(x)
        best = float("inf")
        for _ in range(5):
            t = time.perf_counter()
            conv(x)
            best = min(best, time.perf_counter() - t)
    return 2 * 64 * 64 * 9 * 512 * 512 / best


# --- children ---------------------------------------------------------------------------------------

def child(method: str, raster: str, model: str, out: str) -> dict:
    t = time.perf_counter()
    if method == "reference":
        import numpy as np

        from bench.reference_scheme import reference_map
        from fbp_landcover.engine.checkpoints import load_model
        from fbp_landcover.engine.normalize import FBP_SOURCE_STATS

        net, _, _ = load_model(model)
        classes = reference_map(raster, net, FBP_SOURCE_STATS.mean, FBP_SOURCE_STATS.std)
        np.save(out, classes)
        h, w = classes.shape
    else:
        from fbp_landcover.engine.mapping import MapRequest, map_landcover

        kw = json.loads(method.split(":", 1)[1]) if ":" in method else {}
        # Warm-up on a small raster: the one-off ONNX export is cached beside the checkpoint, not timed here.
        small = str(Path(out).with_suffix(".warm.tif"))
        write_raster(Path(small), 64)
        t_warm = time.perf_counter()
        map_landcover(MapRequest(image=small, output=small + ".map.tif", model=model, sensor="rgbn",
                                 overwrite=True, **kw))
        warm = time.perf_counter() - t_warm
        t = time.perf_counter()
        res = map_landcover(MapRequest(image=raster, output=out, model=model, sensor="rgbn", overwrite=True,
                                       **kw))
        h, w = res.height, res.width
    seconds = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": seconds, "mpx": w * h / 1e6, "peak_rss_mb": peak,
            "warmup_s": locals().get("warm", 0.0)}


def run_child(method, raster, model, out) -> dict:
    cmd = [PY, __file__, "--child", method, "--raster", str(raster), "--model", str(model), "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode:
        raise SystemExit(f"{method} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--child")
    ap.add_argument("--raster")
    ap.add_argument("--model")
    ap.add_argument("--out")
    ap.add_argument("--size", type=int, default=2048, help="raster for the authors' U-Net")
    ap.add_argument("--compact-size", type=int, default=4096, help="raster for the compact model")
    ap.add_argument("--big", type=int, default=0, help="also the compact model on a BIG x BIG virtual raster")
    ap.add_argument("--skip-reference", action="store_true")
    ap.add_argument("--json", help="also write the rows as JSON here")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    if args.child:
        print(json.dumps(child(args.child, args.raster, args.model, args.out)))
        return

    import numpy as np
    from osgeo import gdal

    tmp = Path(tempfile.mkdtemp(prefix="fbp-bench-"))
    rate = conv_rate()
    print(f"convolution rate: {rate / 1e9:.0f} GFLOP/s on {os.cpu_count()} cores")
    unet, compact = tmp / "fbp_unet.fbpmodel", tmp / "compact.fbpmodel"
    make_model(unet, compact=False)
    make_model(compact, compact=True)
    flops = {"fbp_unet": 1.2245e6, "compact": model_flops_per_pixel(compact)}
    rows = []
    r1 = tmp / f"r{args.size}.tif"
    write_raster(r1, args.size)
    ref = None
    if not args.skip_reference:
        ref = run_child("reference", r1, unet, tmp / "ref.npy")
        rows.append(("reference scheme (authors' U-Net, torch)", "fbp_unet", args.size, ref))
    cc = run_child('engine:{"stitch": "centre-crop", "backend": "torch", "stats": "fbp"}', r1, unet, tmp / "cc.tif")
    rows.append(("engine centre-crop, torch", "fbp_unet", args.size, cc))
    if ref is not None:
        a = np.load(tmp / "ref.npy")
        b = gdal.Open(str(tmp / "cc.tif")).ReadAsArray()
        print(f"engine centre-crop vs reference: {np.mean(a == b) * 100:.4f} % identical pixels")
    for label, kw in [("engine default (blend)", {}),
                      ("engine blend, torch", {"backend": "torch"})]:
        res = run_child("engine:" + json.dumps(kw), r1, unet, tmp / "e.tif")
        rows.append((label, "fbp_unet", args.size, res))
    r2 = tmp / f"r{args.compact_size}.tif"
    write_raster(r2, args.compact_size)
    res = run_child("engine:{}", r2, compact, tmp / "c.tif")
    rows.append(("engine default, compact model", "compact", args.compact_size, res))
    if args.big:
        vrt = tmp / f"big{args.big}.vrt"
        repeated_vrt(r2, vrt, args.big, args.compact_size)
        res = run_child("engine:{}", vrt, compact, tmp / "big.tif")
        rows.append(("engine default, compact model", "compact", args.big, res))

    base = ref["mpx"] / ref["seconds"] if ref else None
    print(f"\n{'method':44s} {'raster':>11s} {'Mpx/s':>8s} {'peak RSS':>9s} {'x ref':>6s} {'of bound':>8s} "
          f"{'warm-up':>8s}")
    out = []
    for label, arch, size, r in rows:
        mpxs = r["mpx"] / r["seconds"]
        bound = rate / flops[arch] / 1e6
        ratio = f"{mpxs / base:.2f}" if base and arch == "fbp_unet" else "-"
        print(f"{label:44s} {size:>5d}x{size:<5d} {mpxs:8.3f} {r['peak_rss_mb']:7.0f}MB {ratio:>6s} "
              f"{mpxs / bound * 100:7.1f}% {r.get('warmup_s', 0):7.1f}s")
        out.append({"method": label, "model": arch, "size": size, "mpx_per_s": mpxs,
                    "peak_rss_mb": r["peak_rss_mb"], "ratio_to_reference": ratio, "bound_mpx_per_s": bound})
    if args.json:
        Path(args.json).write_text(json.dumps({"conv_gflops": rate / 1e9, "rows": out}, indent=2))


def model_flops_per_pixel(path: Path) -> float:
    """FLOPs per pixel of a model, counted with forward hooks on convolutions (2 x MACs)."""
    from fbp_landcover.engine.checkpoints import load_model
    from fbp_landcover.engine.torch_import import import_torch

    torch = import_torch()
    net, _, _ = load_model(str(path))
    total = [0]

    def hook(mod, inp, out):
        k = mod.kernel_size[0] * mod.kernel_size[1] * mod.in_channels // mod.groups
        total[0] += 2 * k * out.numel()

    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.inference_mode():
        net(torch.zeros(1, 4, 256, 256))
    for h in handles:
        h.remove()
    return total[0] / (256 * 256)


if __name__ == "__main__":
    main()
