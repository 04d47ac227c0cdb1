"""The soak's memory figures compare a daemon with itself at equal load, never across a peak."""

from __future__ import annotations

from soak import report


def test_equal_loads_with_a_peak_between_them_do_not_compare() -> None:
    # Found by the 3 -> 1 replay: replica 0 carried 2,900 pods, then all 5,000 during the scale-in, then
    # 2,600 again: its RSS stayed at the peak's high-water mark (+69 %), with no leak.
    samples = [(1_000, 2_900, 146.0), (3_000, 5_000, 240.0), (6_000, 2_700, 246.0), (11_000, 2_640, 248.0)]
    assert report.widest_equal_load(samples) == ((6_000, 2_700, 246.0), (11_000, 2_640, 248.0))


def test_the_widest_pair_of_equal_loads_is_taken() -> None:
    samples = [(500, 100, 80.0), (1_200, 100, 82.0), (1_900, 105, 83.0), (2_500, 98, 84.0), (4_000, 101, 85.0)]
    assert report.widest_equal_load(samples) == ((1_200, 100, 82.0), (4_000, 101, 85.0))


def test_no_pair_when_the_loads_differ_or_the_cycles_are_too_close() -> None:
    assert report.widest_equal_load([(1_000, 100, 80.0), (1_500, 100, 80.0)]) is None
    assert report.widest_equal_load([(1_000, 100, 80.0), (3_000, 50, 70.0)]) is None
    assert report.widest_equal_load([(1_000, 0, 80.0), (3_000, 0, 80.0)]) is None
