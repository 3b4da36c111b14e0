"""One estimate for a whole run, from the current stage's measured rate; a stalled stage says so."""

from __future__ import annotations

from fbp_landcover.engine.progress import RunEstimate, stage_text


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_estimate_follows_the_current_stage_rate_not_the_run_average():
    clock = Clock()
    est = RunEstimate(clock=clock)
    est.update(0.05, "Adapting: iteration 1 of 50")
    clock.now += 80  # slow adaptation: 0.05 -> 0.45 in 80 s
    assert est.update(0.45, "Adapting: iteration 50 of 50 (about 1 s left)") == \
        "1 min 20 s elapsed, about 1 min 50 s left"  # 0.55 left at 0.4 per 80 s = 110 s
    est.update(0.45, "Mapping: window 1 of 100")
    clock.now += 10  # mapping is fast: 0.1 in 10 s
    assert est.update(0.55, "Mapping: window 20 of 100") == "1 min 30 s elapsed, about 45 s left"


def test_a_stage_without_progress_says_its_length_is_unknown():
    clock = Clock()
    est = RunEstimate(clock=clock)
    est.update(0.05, "Preparing the model to run")
    clock.now += 2
    assert est.text() == "2 s elapsed"
    clock.now += 68
    assert est.text() == ("1 min 10 s elapsed; this step's length is not known (it reports no progress), "
                          "so no estimate yet")


def test_stage_text_drops_the_stage_estimate():
    assert stage_text("Mapping: window 3 of 9 (about 2 min 05 s left)") == "Mapping: window 3 of 9"
    assert stage_text("Done") == "Done"


def test_a_huge_run_gets_an_estimate_after_a_few_seconds_not_after_half_a_percent():
    """40 000 Mpx: 0.03 % of the run in 20 s of mapping is about 17.6 h left, said at once (tqdm's average
    over the whole bar said 9 min before, fooled by the quick first stages)."""
    clock = Clock()
    est = RunEstimate(clock=clock)
    est.update(0.05, "Mapping: window 1 of 59572")
    clock.now += 3
    assert est.update(0.0501, "Mapping: window 10 of 59572") == "3 s elapsed"  # too early to say
    clock.now += 17
    assert est.update(0.0503, "Mapping: window 30 of 59572") == "20 s elapsed, about 17 h 35 min left"


def test_slow_steps_are_not_taken_for_a_stall():
    """Adaptation iterations of 4 s each (a loaded CPU): 5 s after the last one is no stall; three usual
    intervals without a move is."""
    clock = Clock()
    est = RunEstimate(clock=clock)
    est.update(0.05, "Adapting: iteration 1 of 10")
    for i in range(2, 5):
        clock.now += 4
        est.update(0.05 + 0.04 * i, f"Adapting: iteration {i} of 10")
    clock.now += 5
    assert "left" in est.text() and "not known" not in est.text()
    clock.now += 8  # 13 s since the last move: over three usual 4 s intervals
    assert "this step's length is not known" in est.text()
