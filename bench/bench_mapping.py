"""Mapping throughput and memory: the engine against the authors' reference scheme, in one run.

    .venv/bin/python bench/bench_mapping.py [--size 2048] [--compact-size 4096] [--scene 7300x6908]
        [--adapt-iterations 50] [--big 20000] [--skip-reference]

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


def write_raster(path: Path, size: int, height: int | None = None) -> None:
    """A 4-band uint8 R,G,B,NIR raster (size x height) with smooth structure, written in strips (bounded
    memory)."""
    import numpy as np
    from osgeo import gdal, osr

    gdal.UseExceptions()
    width, height = size, height or size
    ds = gdal.GetDriverByName("GTiff").Create(str(path), width, height, 4, gdal.GDT_Byte,
                                              ["TILED=YES", "COMPRESS=DEFLATE"])
    ds.SetGeoTransform((500000, 4, 0, 4000000, 0, -4))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32650)
    ds.SetProjection(srs.ExportToWkt())
    rng = np.random.default_rng(0)
    coarse = rng.random((4, height // 64 + 2, width // 64 + 2))
    for y in range(0, height, 512):
        h = min(512, height - y)
        yi = (np.arange(y, y + h) // 64)[:, None]
        xi = (np.arange(width) // 64)[None, :]
        for b in range(4):
            strip = coarse[b][yi, xi] * 200 + rng.integers(0, 50, (h, width))
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
                                  f'<SourceBand>{b}</SourceBand>'
                                  f'<SrcRect xOff="0" yOff="0" xSize="{w}" ySize="{h}"/>'
                                  f'<DstRect xOff="{x}" yOff="{y}" xSize="{w}" ySize="{h}"/></SimpleSource>'))
    ds = gdal.Open(str(src))
    srs = ds.GetProjection()
    gt = ds.GetGeoTransform()
    bands = "".join(
        f'<VRTRasterBand dataType="Byte" band="{b}">' + "".join(s for bb,
                                                                s in blocks if bb == b) + "</VRTRasterBand>"
        for b in range(1, 5))
    dst.write_text(f'<VRTDataset rasterXSize="{size}" rasterYSize="{size}"><SRS>{srs}</SRS>'
                   f'<GeoTransform>{", ".join(map(str, gt))}</GeoTransform>{bands}</VRTDataset>')


# The models benchmarked: the authors' U-Net, the compact preset, and the earlier compact candidate.
EARLIER_COMPACT = {"architecture": "smp", "smp_arch": "Unet", "encoder": "tu-mobilenetv3_small_100",
                   "arch_kwargs": {"decoder_channels": [64, 32, 24, 16, 8]}}


def make_model(path: Path, kind: str) -> None:
    from fbp_landcover.engine.models import build_model
    from fbp_landcover.engine.models.card import ModelCard
    from fbp_landcover.engine.models.fbpmodel import save_checkpoint
    from fbp_landcover.engine.torch_import import import_torch

    import_torch().manual_seed(0)
    from fbp_landcover.engine.models.presets import preset

    spec = EARLIER_COMPACT if kind == "unet_mnv3s" else preset(kind)
    card = ModelCard(name=f"{kind}-bench", **spec,
                     provenance={"trained_on": "untrained random weights, made for a benchmark"})
    save_checkpoint(path, build_model(card), card)


def make_adaptable_compact(folder: Path) -> Path:
    """A compact model with a source memory (so quick adaptation runs Siamese DPA, as with a real model):
    trained for a few iterations on generated FBP-layout data. Its accuracy is irrelevant here."""
    from fbp_landcover.engine.demo import synthetic
    from fbp_landcover.engine.models.presets import preset
    from fbp_landcover.engine.training.config import TrainConfig
    from fbp_landcover.engine.training.train import train_source

    data = synthetic.domain_shift_dataset(folder / "data", 0, n_source=1, source_size=512, target_size=256,
                                          control=False)
    spec = preset("compact")
    out = folder / "compact_adaptable.fbpmodel"
    config = TrainConfig(**spec, epochs=1, iterations_per_epoch=5, batch_size=4, patch=256, val_patches=2,
                         memory_count=64, memory_size=256, stats="scene", device="cpu", resume=False, seed=0)
    train_source(str(data.source_root), out, config)
    return out


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
        from fbp_landcover.engine.io.normalize import FBP_SOURCE_STATS
        from fbp_landcover.engine.models.loading import load_model

        net, _, _ = load_model(model)
        classes = reference_map(raster, net, FBP_SOURCE_STATS.mean, FBP_SOURCE_STATS.std)
        np.save(out, classes)
        h, w = classes.shape
    else:
        from fbp_landcover.engine.mapping import MapRequest, map_landcover
        from fbp_landcover.engine.training.config import AdaptOptions

        kw = json.loads(method.split(":", 1)[1]) if ":" in method else {}
        if kw.pop("full_resolution_blend", False):  # the blend before the coarse one: every window upsampled
            import dataclasses

            from fbp_landcover.engine.mapping import run as mapping_run

            plain = mapping_run.default_settings
            mapping_run.default_settings = lambda *a, **k: dataclasses.replace(plain(*a, **k), coarse=False)
        if "adapt" in kw:
            kw["adapt"] = AdaptOptions(**kw["adapt"])
        # Warm-up on a small raster: the one-off ONNX export is cached beside the checkpoint, not timed here.
        small = str(Path(out).with_suffix(".warm.tif"))
        write_raster(Path(small), 64)
        t_warm = time.perf_counter()
        warm_kw = {k: v for k,
                   v in kw.items() if k != "adapt"}  # an adapted model is exported in the timed run
        map_landcover(MapRequest(image=small, output=small + ".map.tif", model=model, sensor="rgbn",
                                 overwrite=True, **warm_kw))
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
    ap.add_argument("--scene", default="7300x6908", help="WxH of a whole-scene raster for the compact model "
                                                         "(a Gaofen-2 scene's size); empty to skip")
    ap.add_argument("--adapt-iterations", type=int, default=50,
                    help="map the compact-size raster with quick adaptation first "
                         "(the dock's default effort); 0 to skip")
    ap.add_argument("--big", type=int, default=0, help="also the compact model on a BIG x BIG virtual raster")
    ap.add_argument("--skip-reference", action="store_true")
    ap.add_argument("--big-only", action="store_true", help="only the --big row "
                                                            "(peak memory on a huge raster)")
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
    unet, compact, earlier = tmp / "fbp_unet.fbpmodel", tmp / "compact.fbpmodel", tmp / "unet_mnv3s.fbpmodel"
    make_model(unet, "fbp_unet")
    make_model(compact, "compact")
    make_model(earlier, "unet_mnv3s")
    flops = {"fbp_unet": 1.2245e6, "compact": model_flops_per_pixel(compact),
             "unet_mnv3s": model_flops_per_pixel(earlier)}
    rows = []
    ref = None
    if not args.big_only:
        r1 = tmp / f"r{args.size}.tif"
        write_raster(r1, args.size)
        if not args.skip_reference:
            ref = run_child("reference", r1, unet, tmp / "ref.npy")
            rows.append(("reference scheme (authors' U-Net, torch)", "fbp_unet", args.size, ref))
        cc = run_child('engine:{"stitch": "centre-crop", "backend": "torch", "stats": "fbp"}', r1, unet,
                       tmp / "cc.tif")
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
    if not args.big_only:
        res = run_child("engine:{}", r2, compact, tmp / "c.tif")
        rows.append(("engine default, compact preset (FPN)", "compact", args.compact_size, res))
        res = run_child("engine:{}", r2, earlier, tmp / "c2.tif")
        rows.append(("engine default, U-Net MobileNetV3-small", "unet_mnv3s", args.compact_size, res))
        if args.scene:
            sw, sh = (int(v) for v in args.scene.lower().split("x"))
            r3 = tmp / f"scene{sw}x{sh}.tif"
            write_raster(r3, sw, sh)
            res = run_child("engine:{}", r3, compact, tmp / "s.tif")
            rows.append((f"engine default, compact preset: {sw}x{sh} scene", "compact", (sw, sh), res))
        if args.adapt_iterations:
            adaptable = make_adaptable_compact(tmp / "adapt")
            res = run_child("engine:" + json.dumps({"adapt": {"iterations": args.adapt_iterations}}), r2,
                            adaptable,
                            tmp / "a.tif")
            rows.append((f"compact preset + quick adaptation ({args.adapt_iterations} it.), whole run",
                         "compact",
                         args.compact_size, res))
    if args.big:
        vrt = tmp / f"big{args.big}.vrt"
        repeated_vrt(r2, vrt, args.big, args.compact_size)
        res = run_child("engine:{}", vrt, compact, tmp / "big.tif")
        rows.append(("engine default, compact preset (FPN)", "compact", args.big, res))

    base = ref["mpx"] / ref["seconds"] if ref else None
    print(f"\n{'method':58s} {'raster':>11s} {'Mpx/s':>8s} {'seconds':>8s} {'peak RSS':>9s} {'x ref':>6s} "
          f"{'of bound':>8s} {'warm-up':>8s}")
    out = []
    for label, arch, size, r in rows:
        mpxs = r["mpx"] / r["seconds"]
        bound = rate / flops[arch] / 1e6
        ratio = f"{mpxs / base:.2f}" if base and arch == "fbp_unet" else "-"
        w, h = size if isinstance(size, tuple) else (size, size)
        print(f"{label:58s} {w:>5d}x{h:<5d} {mpxs:8.3f} {r['seconds']:8.1f} {r['peak_rss_mb']:7.0f}MB "
              f"{ratio:>6s} {mpxs / bound * 100:7.1f}% {r.get('warmup_s', 0):7.1f}s")
        out.append({"method": label, "model": arch, "size": [w, h], "mpx_per_s": mpxs,
                    "seconds": r["seconds"],
                    "peak_rss_mb": r["peak_rss_mb"], "ratio_to_reference": ratio, "bound_mpx_per_s": bound})
    if args.json:
        Path(args.json).write_text(json.dumps({"conv_gflops": rate / 1e9, "rows": out}, indent=2))


def model_flops_per_pixel(path: Path) -> float:
    """FLOPs per pixel of a model, counted with forward hooks on convolutions (2 x MACs)."""
    from fbp_landcover.engine.models.loading import load_model
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
