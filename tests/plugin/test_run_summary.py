"""The panel's run summary and the result layers' names, from fbplandcover:maplandcover's outputs."""

from __future__ import annotations

import json
import time

from fbp_landcover.plugin.run_summary import layer_name, summary

RESULTS = {"SENSOR_USED": "rgbn", "SENSOR_REASON": "chosen by the user", "DEVICE_USED": "cpu",
           "BACKEND_USED": "torch"}
WHEN = time.mktime((2026, 12, 3, 14, 2, 31, 0, 0, -1))


def _adapted(passed: bool) -> dict:
    verdict = {"passed": passed,
               "sentence": "Adaptation was rejected by the guard and the source model was used instead: "
                           "the adapted model agrees on only 14% of the pixels."}
    info = {"method": "bn+kl", "iterations": 2, "final_pseudo_label_share": 0.5, "guard_verdict": verdict}
    return {**RESULTS, "ADAPTATION": json.dumps(info)}


def test_layer_names_say_what_the_map_is():
    assert (layer_name("naip", "land cover", "tiny", RESULTS, WHEN)
            == "naip · land cover · tiny · not adapted · 14:02:31")
    assert (layer_name("naip", "land cover", "tiny", _adapted(True), WHEN)
            == "naip · land cover · tiny · adapted bn+kl 2 it · 14:02:31")
    assert (layer_name("naip", "land cover", "tiny", _adapted(False), WHEN)
            == "naip · land cover · tiny · source model (bn+kl rejected) · 14:02:31")


def test_summary_is_one_line_ending_in_the_time():
    assert summary(RESULTS, "tiny", 2.06) == ("Model tiny; sensor rgbn (chosen by the user); cpu (torch); "
                                              "no adaptation; no mask; 2.1 s.")
    text = summary(_adapted(False), "tiny", 2.06)
    assert text.endswith("on only 14% of the pixels; no mask; 2.1 s.") and ".;" not in text


def test_summary_says_which_mask_and_how_much_it_took():
    mask = {"option": "auto", "found": "UDM2 beside the image", "used": ["UDM2 clear band: 0 (not clear)"],
            "masked_pixels": 1200, "masked_km2": 0.0108, "masked_share": 0.0563}
    text = summary({**RESULTS, "MASK_USED": json.dumps(mask)}, "tiny", 1.0)
    assert "; mask UDM2 clear band: 0 (not clear): 0.0108 km² masked (5.6 % of the grid); 1.0 s." in text
    none = {"option": "auto", "found": "not a recognised product: no product mask", "used": []}
    assert "; no mask (not a recognised product: no product mask); " in summary(
        {**RESULTS, "MASK_USED": json.dumps(none)}, "tiny", 1.0)
