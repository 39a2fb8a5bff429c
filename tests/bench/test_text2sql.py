"""Benchmark arithmetic: percentiles and the wall time of stages whose instances overlap."""

from __future__ import annotations

from sloflow.bench.text2sql import percentile, wall_seconds


def test_parallel_instances_of_a_stage_count_once_and_rounds_add_up() -> None:
    fan_out = [(0.0, 3.0), (0.0, 2.5), (0.1, 3.2)]
    assert abs(wall_seconds(fan_out) - 3.2) < 1e-9
    assert abs(wall_seconds(fan_out + [(10.0, 11.0)]) - 4.2) < 1e-9
    assert wall_seconds([]) == 0.0


def test_percentiles_interpolate() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.5
    assert abs(percentile(values, 95) - 95.05) < 1e-9
    assert percentile([], 95) == 0.0 and percentile([7.0], 95) == 7.0
