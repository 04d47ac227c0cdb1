"""The soak's memory figures compare a daemon with itself at equal load, never across a peak."""

from __future__ import annotations

import types

from soak import report


def test_equal_loads_with_a_peak_between_them_do_not_compare() -> None:
    # Found by the 3 -> 1 replay: replica 0 carried 2,900 pods, then all 5,000 during the scale-in, then
    # 2,600 again: its RSS stayed at the peak's high-water mark (+69 %), with no leak.
    samples = [(1_000, 2_900, 146.0, 1), (3_000, 5_000, 240.0, 1), (6_000, 2_700, 246.0, 1), (11_000, 2_640, 248.0, 1)]
    assert report.widest_equal_load(samples) == ((6_000, 2_700, 246.0, 1), (11_000, 2_640, 248.0, 1))


def test_the_widest_pair_of_equal_loads_is_taken() -> None:
    samples = [
        (0, 0, 60.0, 1),  # the process's first sample
        (500, 100, 80.0, 1),
        (1_200, 100, 82.0, 1),
        (1_900, 105, 83.0, 1),
        (2_500, 98, 84.0, 1),
        (4_000, 101, 85.0, 1),
    ]
    assert report.widest_equal_load(samples) == ((1_200, 100, 82.0, 1), (4_000, 101, 85.0, 1))


def test_no_pair_when_the_loads_differ_or_the_cycles_are_too_close() -> None:
    assert report.widest_equal_load([(1_000, 100, 80.0, 1), (1_500, 100, 80.0, 1)]) is None
    assert report.widest_equal_load([(1_000, 100, 80.0, 1), (3_000, 50, 70.0, 1)]) is None
    assert report.widest_equal_load([(1_000, 0, 80.0, 1), (3_000, 0, 80.0, 1)]) is None


def test_a_row_shows_the_growth_of_rss_beside_that_of_pythons_blocks() -> None:
    # RSS grew (the allocator's pages after a burst) while the live objects did not: no leak.
    samples = [(0, 0, 60.0, 400_000), (1_000, 100, 100.0, 500_000), (5_000, 100, 112.0, 505_000)]
    result = types.SimpleNamespace(rss={"vnode-soak-0 pid 1": samples})
    assert report.memory_rows(result) == [  # type: ignore[arg-type]
        "| vnode-soak-0 pid 1 | 1,000 | 100 | 100 MB | 5,000 | 100 | 112 MB | +12.0 % | +1.0 % |"
    ]
    unread = [(0, 0, 60.0, 0), (1_000, 100, 100.0, 0), (5_000, 100, 112.0, 505_000)]  # the daemon did not answer then
    assert report.memory_rows(types.SimpleNamespace(rss={"d": unread}))[0].endswith("| +12.0 % | - |")  # type: ignore[arg-type]


def test_a_restarted_daemon_is_compared_only_after_its_own_first_1000_cycles() -> None:
    # Found by the default soak: a daemon restarted at cycle 26,000 was sampled 129 cycles later at 76 MB,
    # its pods not loaded yet, against 141 MB 2,000 cycles on: "+86 %".
    samples = [(26_000, 2_400, 60.0, 1), (26_129, 2_433, 76.0, 1), (27_100, 2_400, 139.0, 1), (28_000, 2_300, 141.0, 1)]
    assert report.widest_equal_load(samples) is None
    samples.append((29_000, 2_350, 141.5, 1))
    assert report.widest_equal_load(samples) == ((27_100, 2_400, 139.0, 1), (29_000, 2_350, 141.5, 1))
