"""The authors' prediction scheme, as a baseline: the whole image in memory, zero-padded, 512 windows at
stride 256, the central 256x256 of each kept, argmax over channels 1..24, torch, one window at a time.
(Their code writes a colour picture without georeferencing; we keep the class array.)"""

from __future__ import annotations

import math

import numpy as np
from osgeo import gdal


def reference_map(path: str, model, mean, std, band_order=(4, 1, 2, 3), scale=255.0) -> np.ndarray:
    from fbp_landcover.engine.torch_import import import_torch

    torch = import_torch()
    ds = gdal.Open(path)
    image = np.stack([ds.GetRasterBand(b).ReadAsArray() for b in band_order]).astype(np.float32) / scale
    _, h, w = image.shape
    ny, nx = math.ceil(h / 256), math.ceil(w / 256)
    padded = np.zeros((4, 256 * ny + 256, 256 * nx + 256), np.float32)
    padded[:, 128 : 128 + h, 128 : 128 + w] = image
    m = torch.tensor(mean, dtype=torch.float32)[:, None, None]
    s = torch.tensor(std, dtype=torch.float32)[:, None, None]
    out = np.zeros((256 * ny, 256 * nx), np.uint8)
    model.eval()
    with torch.no_grad():
        for i in range(ny):
            for j in range(nx):
                x = torch.from_numpy(padded[:, 256 * i : 256 * i + 512, 256 * j : 256 * j + 512])
                logits = model(((x - m) / s)[None])[0]
                centre = logits[1:, 128:384, 128:384]
                out[256 * i : 256 * i + 256, 256 * j : 256 * j + 256] = (centre.argmax(0) + 1).numpy()
    return out[:h, :w]
