"""The end-to-end demo on generated data (quick mode): outputs, report contents, overwrite, cancel."""

from __future__ import annotations

import json
import re

import pytest
from osgeo import gdal

from fbp_landcover.engine import demo
from fbp_landcover.engine.demo import report as demo_report
from fbp_landcover.engine.errors import CancelledError, FbpError
from fbp_landcover.engine.models.fbpmodel import read_card


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "demo_out"
    messages: list[tuple[float, str]] = []
    summary = demo.run_demo(out, seed=1, quick=True, progress=lambda f, m: messages.append((f, m)))
    return out, summary, messages


@pytest.mark.slow
def test_quick_demo_writes_everything(quick_run):
    out, s, messages = quick_run
    assert s["synthetic"] is True and s["out_dir"] == str(out)
    for tag in ("source_only", "adapted"):
        files = s["files"][tag]
        for key in ("map", "confidence", "areas", "quicklook", "evaluation", "evaluation_coarse"):
            assert (out / files[key]).is_file(), key
        ds = gdal.Open(files["map"])
        truth = gdal.Open(s["data"]["target_truth"])
        assert ds.GetProjection() and ds.GetGeoTransform()[1] == pytest.approx(4.0)  # PlanetScope at 4 m
        assert truth.GetGeoTransform()[1] == pytest.approx(3.0)
    assert read_card(s["models"]["source_only"]).provenance["task"] == "source training"
    adapted = read_card(s["models"]["adapted"]).provenance
    assert adapted["adapted_to"] == [s["data"]["target_image"]]
    assert adapted["iterations"] == demo.QUICK.adapt_iterations
    on_control = read_card(s["models"]["control_adapted"]).provenance
    assert on_control["adapted_to"] == [s["data"]["control_image"]]
    assert on_control["iterations"] == demo.QUICK.adapt_iterations
    assert (out / "models" / "source_only.memory.npz").is_file()
    fractions = [f for f, _m in messages]
    assert all(b >= a - 1e-9 for a, b in zip(fractions, fractions[1:], strict=False))
    assert fractions[-1] == pytest.approx(1.0)


@pytest.mark.slow
def test_report_names_both_models_says_synthetic_and_scores_parse(quick_run):
    out, s, _m = quick_run
    report = (out / demo.REPORT).read_text()
    assert "Synthetic data only" in report and "trained on that synthetic data only" in report
    assert "source-only" in report and "adapted" in report
    saved = json.loads((out / demo.SUMMARY).read_text())
    for tag in ("source_only", "adapted", "control_source_only", "control_adapted"):
        for legend in ("fine", "coarse"):
            sc = saved["scores"][tag][legend]
            assert 0.0 <= sc["oa"] <= 1.0 and 0.0 <= sc["miou"] <= 1.0 and sc["pixels"] > 0
    fine = json.loads((out / "evaluation" / "adapted.json").read_text())
    assert fine["miou_present"] == pytest.approx(saved["scores"]["adapted"]["fine"]["miou"])
    # the report's table holds exactly the scores of the evaluation files
    row = re.search(r"\| mean IoU \(24 classes\) \| ([\d.]+) % \| ([\d.]+) % \|", report)
    assert row is not None
    before = saved["scores"]["source_only"]["fine"]["miou"]
    assert float(row.group(1)) == pytest.approx(100 * before, abs=0.051)
    assert float(row.group(2)) == pytest.approx(100 * fine["miou_present"], abs=0.051)
    assert "SYNTHETIC" in s["text"] and s["report"] in s["text"]
    # the control table: source-only, adapted to the control, and the sentence that says what it cost
    ctl = re.search(r"\| mean IoU \(24 classes\) \| ([\d.]+) % \| ([\d.]+) % \| ([+-][\d.]+) pp \|",
                    report.split("## No-shift control")[1])
    assert ctl is not None
    on_control = saved["scores"]["control_adapted"]["fine"]["miou"]
    assert float(ctl.group(2)) == pytest.approx(100 * on_control, abs=0.051)
    assert demo_report.control_sentence(saved) in report and demo_report.control_sentence(saved) in s["text"]
    assert demo_report.target_sentence(saved) in report and demo_report.target_sentence(saved) in s["text"]


def _scores(**miou):
    return {"scores": {tag: {"fine": {"miou": v}} for tag, v in miou.items()}}


def test_the_demo_says_whether_adaptation_helped_and_whether_it_hurt_on_the_control():
    s = _scores(source_only=0.170, adapted=0.172, control_source_only=0.472, control_adapted=0.475)
    assert demo_report.target_sentence(s) == "On the target, adaptation gained 0.2 points of mIoU."
    assert demo_report.control_sentence(s) == ("On the control, adaptation changed mIoU by +0.3 points: "
                                               "it did not hurt where there was no shift.")
    s = _scores(source_only=0.170, adapted=0.172, control_source_only=0.472, control_adapted=0.466)
    assert demo_report.control_sentence(s) == ("On the control, adaptation cost 0.6 points of mIoU, within "
                                               "the 1-point tolerance for a scene without a shift.")
    s["control_adaptation"] = {"guard_verdict": {"passed": False}}
    assert demo_report.control_sentence(s) == ("On the control, the guard rejected the adaptation, so its "
                                               "map is the source model's: adaptation changed nothing "
                                               "where there was no shift.")
    s = _scores(source_only=0.170, adapted=0.165, control_source_only=0.472, control_adapted=0.450)
    assert demo_report.target_sentence(s) == ("On the target, adaptation did not help (-0.5 points of mIoU): "
                                              "on this seed the source model's map is as good or better.")
    assert demo_report.control_sentence(s) == ("On the control, adaptation cost 2.2 points of mIoU: on a "
                                               "scene like its training data it made the map worse.")


@pytest.mark.slow
def test_refuses_existing_results_then_overwrites(quick_run):
    out, _s, _m = quick_run
    with pytest.raises(FbpError, match="already holds demo results"):
        demo.run_demo(out, seed=1, quick=True)
    keep = out / "my_notes.txt"
    keep.write_text("mine")
    before = (out / demo.SUMMARY).read_text()
    demo.run_demo(out, seed=1, quick=True, overwrite=True)
    assert keep.read_text() == "mine"  # only the demo's own products are replaced
    again = json.loads((out / demo.SUMMARY).read_text())
    assert again["scores"] == json.loads(before)["scores"]  # deterministic for a seed


@pytest.mark.slow
def test_cancel_leaves_nothing(tmp_path):
    out = tmp_path / "demo_out"
    calls = {"n": 0}

    def cancel_in_training():
        calls["n"] += 1
        return calls["n"] > 5

    with pytest.raises(CancelledError):
        demo.run_demo(out, quick=True, is_cancelled=cancel_in_training)
    assert out.is_dir() and list(out.iterdir()) == []
