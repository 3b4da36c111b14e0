"""The window grid covers every pixel and the blending weights sum to one (property tests)."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from fbp_landcover.engine.inference.tiling import axis_starts, axis_weight_sum, axis_weights


@settings(max_examples=300, deadline=None)
@given(length=st.integers(1, 5000), window=st.integers(1, 1024), data=st.data())
def test_windows_cover_every_pixel_and_stay_inside(length, window, data):
    overlap = data.draw(st.integers(0, window - 1))
    starts = axis_starts(length, window, overlap)
    covered = np.zeros(length, dtype=int)
    for s in starts:
        covered[s : s + window] += 1
    assert covered.min() >= 1
    if length >= window:
        assert all(0 <= s and s + window <= length for s in starts)  # no padding needed
        assert starts[-1] == length - window
    else:
        assert starts == [0]
    steps = np.diff(starts)
    assert (steps > 0).all() and (steps <= window - overlap).all()


@settings(max_examples=120, deadline=None)
@given(w=st.integers(1, 3000), h=st.integers(1, 3000), window=st.integers(2, 600), data=st.data())
def test_normalised_blend_weights_sum_to_one(w, h, window, data):
    overlap = data.draw(st.integers(0, window - 1))
    sx, sy = axis_weight_sum(w, window, overlap), axis_weight_sum(h, window, overlap)
    assert (sx > 0).all() and (sy > 0).all()
    xs, ys = axis_starts(w, window, overlap), axis_starts(h, window, overlap)
    # Sum the normalised 2-D weights of every window explicitly on a few sampled rows/cols.
    rng = np.random.default_rng(0)
    rows = rng.integers(0, h, size=3)
    total = np.zeros((3, w))
    for j, y0 in enumerate(ys):
        wy = axis_weights(window, overlap, j == 0, j == len(ys) - 1)
        for i, x0 in enumerate(xs):
            wx = axis_weights(window, overlap, i == 0, i == len(xs) - 1)
            for k, r in enumerate(rows):
                if y0 <= r < y0 + window:
                    seg = slice(x0, min(w, x0 + window))
                    total[k, seg] += wy[r - y0] * wx[: seg.stop - x0] / (sy[r] * sx[seg])
    np.testing.assert_allclose(total, 1.0, rtol=1e-9)


def test_weights_are_flat_at_raster_edges_and_ramp_inside():
    w = axis_weights(8, 4, at_start=True, at_end=False)
    assert w[0] == 1.0 and w[-1] < 0.1 and (w > 0).all()
    w = axis_weights(8, 4, at_start=False, at_end=False)
    np.testing.assert_allclose(w, w[::-1])
    # Two regular neighbours overlapping by 4 form a partition of unity over the overlap.
    a = axis_weights(8, 4, True, False)[4:]
    b = axis_weights(8, 4, False, True)[:4]
    np.testing.assert_allclose(a + b, 1.0)


@settings(max_examples=200, deadline=None)
@given(length=st.integers(1, 20000), multiple=st.sampled_from([16, 32]), overlap=st.sampled_from([0, 32, 64]))
def test_choose_window_computes_the_fewest_pixels(length, multiple, overlap):
    from fbp_landcover.engine.inference.tiling import choose_window, windows_needed

    w = choose_window(length, overlap, multiple, low=384, high=1024)
    assert w % multiple == 0 and w > overlap
    if length <= 384:
        assert w == -(-max(length, overlap + 1) // multiple) * multiple  # one window just covering it
        return
    cost = windows_needed(length, w, overlap) * w
    for other in range(384, 1025, multiple):
        if other > overlap:
            assert cost <= windows_needed(length, other, overlap) * other


def test_choose_window_for_a_2048_axis():
    from fbp_landcover.engine.inference.tiling import choose_window

    # 3 windows of 736 with 64 overlap cover 2048 (computing 2208 px) where 512 windows need 5 (2560 px).
    assert choose_window(2048, 64, 32) == 736
