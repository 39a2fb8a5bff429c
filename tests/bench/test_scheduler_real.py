"""The real goodput search without models: the bisection against stub probes, the probes' requests, the figures."""

from __future__ import annotations

import pytest

from sloflow.bench.scheduler_real import HEADLINE, GoodputSearch, goodput_figures, predict_goodput, real_trace, repeat_error_floor, search_goodput, verdict
from sloflow.scheduler.policies.profile import WorkerProfile
from sloflow.scheduler.policies.scheduler import DEFAULT
from sloflow.scheduler.sim.experiment import bisect_rate
from sloflow.scheduler.sim.traces import TRACES_DIR

SEARCH = GoodputSearch()


def test_bisection_brackets_the_threshold_within_its_probe_budget() -> None:
    asked: list[float] = []

    def ok(rate: float) -> bool:
        asked.append(rate)
        return rate <= 0.37

    lo, hi = bisect_rate(ok, 0.1, 1.0, rel_tol=0.0, max_probes=5)
    assert len(asked) == 5 and lo <= 0.37 < hi and hi - lo == pytest.approx(0.9 / 32)
    assert all(r <= 0.37 for r in asked if r <= lo) and not any(r <= 0.37 for r in asked if r >= hi)


def test_bisection_stops_at_its_tolerance_without_a_probe_budget() -> None:
    lo, hi = bisect_rate(lambda r: r <= 0.5, 0.1, 1.0, rel_tol=0.02)
    assert lo <= 0.5 < hi and hi - lo <= 0.02 * hi


def test_a_goodput_outside_the_bracket_is_flagged_not_hidden() -> None:
    cap = 0.4
    high = search_goodput(lambda r: True, SEARCH, cap)
    low = search_goodput(lambda r: False, SEARCH, cap)
    inside = search_goodput(lambda r: r <= 0.31, SEARCH, cap)
    assert high["above_bracket"] and not high["below_bracket"] and high["bracket_req_s"][1] == pytest.approx(SEARCH.high * cap)
    assert low["below_bracket"] and low["goodput_req_s"] == pytest.approx(SEARCH.low * cap)
    assert not inside["above_bracket"] and not inside["below_bracket"]
    assert inside["bracket_req_s"][0] <= 0.31 < inside["bracket_req_s"][1] and inside["goodput_req_s"] == inside["bracket_req_s"][0]


def test_a_probe_is_decided_as_soon_as_the_target_is_met_or_out_of_reach() -> None:
    assert verdict(18, 0, 20, 0.9) is True  # 18 of 20 is 90%
    assert verdict(17, 2, 20, 0.9) is None
    assert verdict(0, 3, 20, 0.9) is False
    assert verdict(1, 0, 1, 0.9) is True and verdict(0, 1, 1, 0.9) is False


def test_probes_replay_a_prefix_of_one_arrival_sequence_within_the_window() -> None:
    trace = (object(),) * 3  # only counts and arrivals are looked at here
    slow, fast = SEARCH.workload(trace, 3.0, 0.2), SEARCH.workload(trace, 3.0, 2.0)
    assert 1 <= slow.requests < fast.requests == SEARCH.max_requests
    (_, unit_slow), (_, unit_fast) = slow.draw(SEARCH.seed), fast.draw(SEARCH.seed)
    assert unit_fast[: slow.requests] == unit_slow and unit_slow[-1] / 0.2 <= SEARCH.window_s


def test_the_figures_compare_measured_with_predicted_goodput_per_scheduler() -> None:
    good = {DEFAULT: 0.45, "rr+fcfs": 0.3, "eft+fcfs": 0.4, "hexgen+least-slack": 0.36}
    measured = {c: search_goodput(lambda r, g=g: r <= g, SEARCH, 0.4) for c, g in good.items()}
    predicted = {c: {**m, "goodput_req_s": m["goodput_req_s"] * 1.1} for c, m in measured.items()}
    figures = goodput_figures(measured, predicted)
    got = {c: m["goodput_req_s"] for c, m in measured.items()}
    assert figures["real_goodput_ratio_vs_rr_fcfs"] == round(got[DEFAULT] / got["rr+fcfs"], 3) > 1
    assert figures["real_goodput_ratio_vs_hexgen"] == round(got[DEFAULT] / got["hexgen+least-slack"], 3)
    assert figures["real_goodput_ratio_vs_eft_fcfs"] == round(got[DEFAULT] / got["eft+fcfs"], 3)
    assert figures["real_goodput_sim_error"] == pytest.approx(0.1, abs=1e-3)
    assert set(figures["per_scheduler"]) == set(good)
    assert "real_goodput_repeat_error_floor" not in figures  # one search each: no spread to report


def test_repeated_searches_bound_any_predictions_error_by_their_spread() -> None:
    lo, hi = 0.2, 0.3
    floor = repeat_error_floor([hi, lo, 0.25])
    # No single guess does better against both ends than the floor, and the best one meets it.
    best = 2 * lo * hi / (lo + hi)
    assert max(abs(best - lo) / lo, abs(best - hi) / hi) == pytest.approx(floor) == pytest.approx(0.2)
    assert all(max(abs(g - lo) / lo, abs(g - hi) / hi) >= floor - 1e-12 for g in (0.2, 0.22, 0.24, 0.26, 0.3))
    measured = {DEFAULT: {"goodput_req_s": 0.25, "repeats_req_s": [lo, 0.25, hi]}, "rr+fcfs": {"goodput_req_s": 0.15}}
    predicted = {c: {"goodput_req_s": 0.2} for c in measured}
    assert goodput_figures(measured, predicted)["real_goodput_repeat_error_floor"] == pytest.approx(0.2)


def test_the_prediction_searches_every_scheduler_in_the_same_bracket() -> None:
    if not (TRACES_DIR / "chess").is_dir():
        pytest.skip(f"scheduler traces are missing under {TRACES_DIR}")
    small = WorkerProfile("small", 0.0065, 0.0139, slots=1, context_tokens=2048)
    larger = WorkerProfile("larger", 0.0025, 0.0196, overhead_s=0.019, slots=1, context_tokens=2048)
    search = GoodputSearch(max_requests=8, probes=3)
    predicted, alpha = predict_goodput([("s", small), ("l", larger)], real_trace(), 3.0, HEADLINE, search)
    assert set(predicted) == set(HEADLINE) and 0.0 <= alpha <= 1.0
    for p in predicted.values():
        lo, hi = p["bracket_req_s"]
        assert 0 < lo < hi and p["goodput_req_s"] == lo
