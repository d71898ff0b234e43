"""The arrival schedules: dinner curve shape, seeded Poisson thinning, fixed rates, bursts."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from simulators.arrivals import Burst, DinnerCurve, DinnerService, FixedRate, arrival_times


def test_default_curve_puts_40_to_50_percent_of_the_night_in_90_minutes() -> None:
    curve = DinnerCurve(peak_per_min=60)
    assert 0.40 <= curve.peak_share() <= 0.50


def test_curve_peaks_where_asked_and_repeats_nightly() -> None:
    curve = DinnerCurve(peak_per_min=10, base_per_min=2, peak_at_s=3600)
    assert curve.per_min(3600) == pytest.approx(10)
    assert curve.per_min(3600 + curve.length_s) == pytest.approx(10)
    assert curve.per_min(0) < curve.per_min(1800) < curve.per_min(3600)
    assert curve.per_min(4 * 3600) == pytest.approx(2, abs=0.01)


@pytest.mark.parametrize(("peak", "base"), [(0, None), (10, 11), (10, -1)])
def test_curve_refuses_nonsense(peak: float, base: float | None) -> None:
    with pytest.raises(ValueError, match="must be"):
        DinnerCurve(peak_per_min=peak, base_per_min=base)


def test_dinner_service_draws_the_curve_with_a_seeded_rng() -> None:
    curve = DinnerCurve(peak_per_min=60)
    # Speed 20: the 5 h night takes 900 real seconds.
    schedule = DinnerService(curve, speed=20)
    times = list(itertools.takewhile(lambda t: t < 900, arrival_times(schedule, random.Random(1))))
    # Rates are per real minute, and the night lasts length_s / speed real seconds.
    expected = curve.expected(0, curve.length_s) / 20
    assert abs(len(times) - expected) < 4 * math.sqrt(expected)
    rush = [t for t in times if abs(t * 20 - curve.peak_at_s) <= 45 * 60]
    assert 0.40 <= len(rush) / len(times) <= 0.55
    assert times == sorted(times)
    again = list(itertools.islice(arrival_times(schedule, random.Random(1)), len(times)))
    assert again == times


def test_dinner_service_count_and_start() -> None:
    schedule = DinnerService(DinnerCurve(peak_per_min=600), start_at_s=7200, count=50)
    times = list(arrival_times(schedule, random.Random(2)))
    assert len(times) == 50
    # At the peak, 600 a minute is 10 a second: 50 take about 5 s.
    assert 2 < times[-1] < 10


def test_fixed_rate_is_evenly_spaced() -> None:
    assert list(arrival_times(FixedRate(4, count=5), random.Random())) == [0, 0.25, 0.5, 0.75, 1.0]
    endless = arrival_times(FixedRate(1), random.Random())
    assert list(itertools.islice(endless, 3)) == [0, 1, 2]
    with pytest.raises(ValueError, match="positive"):
        next(arrival_times(FixedRate(0), random.Random()))


def test_burst_sends_everything_at_once() -> None:
    assert list(arrival_times(Burst(3), random.Random())) == [0.0, 0.0, 0.0]
