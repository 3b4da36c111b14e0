"""What one mapping run was, in words, from fbplandcover:maplandcover's outputs: the panel's summary line and
the names of the run's layers (so two runs of one image can be told apart)."""

from __future__ import annotations

import json
import time


def adaptation_info(results: dict) -> dict | None:
    """The ADAPTATION output (JSON of the adapted card's provenance entry), or None when none ran."""
    text = results.get("ADAPTATION") or ""
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return {"method": text}


def adaptation_words(results: dict) -> str:
    from ..engine.training.adapt import describe

    info = adaptation_info(results)
    return f"adapted: {describe(info)}" if info else "no adaptation"


def mask_words(results: dict) -> str:
    """The MASK_USED output in words ("mask UDM2 …: 0.3 km² masked (2.1 % of the grid)", "no mask (…)")."""
    from ..engine.mapping.request import describe_mask

    text = results.get("MASK_USED") or ""
    try:
        return describe_mask(json.loads(text) if text else None)
    except ValueError:
        return text


def summary(results: dict, model: str, seconds: float) -> str:
    """One line: model, sensor and why, device/backend, the adaptation that ran, the mask, time."""
    sensor = results.get("SENSOR_USED") or "?"
    reason = results.get("SENSOR_REASON") or ""
    sensor_text = f"sensor {sensor} ({reason})" if reason else f"sensor {sensor}"
    return (f"Model {model}; {sensor_text}; {results.get('DEVICE_USED')} ({results.get('BACKEND_USED')}); "
            f"{adaptation_words(results).rstrip('.')}; {mask_words(results).rstrip('.')}; {seconds:.1f} s.")


def layer_name(input_name: str, what: str, model: str, results: dict, when: float | None = None) -> str:
    """"naip · land cover · tiny · adapted bn+kl 50 it · 14:02:31": input, product, model, adaptation,
    time."""
    info = adaptation_info(results)
    adapted = f"adapted {info.get('method', '?')} {info.get('iterations', 0)} it" if info else "not adapted"
    verdict = (info or {}).get("guard_verdict")
    if isinstance(verdict, dict) and not verdict.get("passed", True):
        # the map is the source model's: said first, short enough for the Layers panel to show the time
        adapted = f"source model ({info.get('method', '?')} rejected)"
    stamp = time.strftime("%H:%M:%S", time.localtime(when if when is not None else time.time()))
    return f"{input_name} · {what} · {model} · {adapted} · {stamp}"
