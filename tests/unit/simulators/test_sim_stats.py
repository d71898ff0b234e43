"""Percentiles, the bounded latency window and the rate meter."""

from __future__ import annotations

import pytest

from simulators.stats import LatencyWindow, RateMeter, percentile


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert percentile(values, 0) == 1
    assert percentile([3.0, 1.0, 2.0], 50) == 2
    assert percentile([7.0], 99) == 7
    assert percentile([], 50) is None
    with pytest.raises(ValueError, match="between"):
        percentile([1.0], 101)


def test_latency_window_is_bounded_but_counts_everything() -> None:
    window = LatencyWindow(maxlen=3)
    for v in (10.0, 1.0, 2.0, 3.0):
        window.add(v)
    assert window.count == 4
    assert window.samples == (1.0, 2.0, 3.0)
    assert window.percentile(99) == 3
    assert LatencyWindow().percentile(50) is None


def test_rate_meter_counts_the_last_window() -> None:
    meter = RateMeter(window_s=60)
    assert meter.per_minute(0) == 0
    for t in range(120):
        meter.mark(float(t))  # one a second
    assert meter.per_minute(120.0) == pytest.approx(60, rel=0.05)
    assert meter.per_minute(1000.0) == 0


def test_rate_meter_is_right_before_a_whole_window_passed() -> None:
    meter = RateMeter(window_s=60)
    for t in range(10):
        meter.mark(100.0 + t / 2)  # two a second for 5 s
    assert meter.per_minute(105.0) == pytest.approx(120)


def test_rate_meter_counts_from_its_start() -> None:
    meter = RateMeter(window_s=60, started_at=100.0)
    meter.mark(110.0, count=8)
    assert meter.per_minute(110.0) == pytest.approx(48)
    meter.mark(111.0, count=0)
    assert meter.per_minute(160.0) == pytest.approx(8)
