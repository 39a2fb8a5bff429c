"""The scheduler benchmark's figure-building, run end to end on a tiny workload (seconds, not minutes).

A full run takes a quarter of an hour before it builds its JSON; this runs the same path (every
simulated figure, the weakest-ratio summary, the robustness runs, the plot) so that a figure added in the
wrong place fails here. The real llama.cpp run needs Ray and minutes: a stub stands in for it (its search
and figures are tested in `test_scheduler_real`).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sloflow.bench.scheduler import DATA, DEFAULT, HEADLINE, Plan, figures_for, options
from sloflow.bench.scheduler_real import GoodputSearch, goodput_figures, search_goodput

# Two small clusters so the headline-only path runs too; one non-headline combination on the first.
TINY = Plan(
    quick=False, traces=("trace1",), clusters=("A100,L40S", "A6000,L40S"), combos=(*HEADLINE, "eft+edf"), requests=20,
    seeds=(1,), other_seeds=(1,), tune_seeds=(11,), alphas=(0.5,),
    robustness=(("trace1", "A100,A6000", "azure-code"), ("trace1", "A6000,L40S", "mooncake"), ("trace1", "L40S,L40S", "poisson")),
)
RATIOS = ("goodput_ratio_vs_rr_fcfs", "goodput_ratio_vs_hexgen", "goodput_ratio_vs_eft_fcfs", "p95_ratio_vs_rr_fcfs")


def needs_traces() -> None:
    if not all((DATA / d).is_dir() for d in ("chess", "azure", "mooncake")):
        pytest.skip(f"scheduler traces are missing under {DATA}")


@pytest.fixture(scope="module")
def figures(tmp_path_factory: pytest.TempPathFactory) -> dict:
    needs_traces()
    plot = tmp_path_factory.mktemp("bench") / "attainment.png"
    return figures_for(TINY, options(["--no-real", "--plot", str(plot)]))


def test_the_figures_are_one_json_line_of_finite_numbers(figures: dict) -> None:
    line = json.dumps(figures, allow_nan=False)  # a goodput that ran off to infinity fails here
    assert "\n" not in line and json.loads(line) == figures


def test_every_simulated_run_has_the_same_figures_for_every_headline_scheduler(figures: dict) -> None:
    runs = figures["runs"]
    assert [(r["trace"], r["cluster"]) for r in runs] == [("trace1", c) for c in TINY.clusters]
    assert all(r.keys() == runs[0].keys() for r in runs)
    assert set(runs[0]["goodput_req_s"]) == {*HEADLINE, "eft+edf"} and set(runs[1]["goodput_req_s"]) == set(HEADLINE)
    for r in runs:
        assert set(r["p95_s"]) == set(r["attainment_vs_scale"]) == set(HEADLINE)
        assert r["goodput_req_s"][DEFAULT] > 0 and r["capacity_req_s"] > 0


def test_the_headline_is_the_weakest_run_of_each_ratio(figures: dict) -> None:
    for key in RATIOS:
        weakest = min(figures["runs"], key=lambda r: r[key])
        assert figures[key] == weakest[key]
        assert figures[f"{key}_weakest_on"] == f"{weakest['trace']} / {weakest['cluster']}"
    assert figures["load_at_1_8x_rr_fcfs_there"] > 0


def test_the_share_of_capacity_is_ours_over_capacity_and_its_minimum_names_its_pair(figures: dict) -> None:
    for r in figures["runs"]:
        share = r["goodput_req_s"][DEFAULT] / r["capacity_req_s"]
        assert r["goodput_share_of_capacity"] == pytest.approx(share, abs=0.01)  # of rounded figures
    lowest = min(figures["runs"], key=lambda r: r["goodput_share_of_capacity"])
    assert figures["goodput_share_of_capacity_min"] == lowest["goodput_share_of_capacity"] > 0
    assert figures["goodput_share_of_capacity_min_on"] == f"{lowest['trace']} / {lowest['cluster']}"


def test_the_full_run_extras_are_built_and_the_real_run_is_skipped(figures: dict) -> None:
    extra = figures["robustness"]
    assert [(r["trace"], r["cluster"], r["arrivals"]) for r in extra] == list(TINY.robustness)
    for r in extra:
        assert set(r["goodput_req_s"]) == set(HEADLINE) and 0 < r["goodput_share_of_capacity"]
    for key in RATIOS[:3]:
        assert figures[f"robustness_{key}_min"] == min(r[key] for r in extra)
    assert Path(figures["plot"]).stat().st_size > 0
    assert figures["real_run"] is False
    assert figures["simulated_cluster"] == list(TINY.clusters) and figures["requests_per_run"] == TINY.requests


def test_only_real_puts_the_real_goodput_ratios_in_the_headline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from sloflow.bench import scheduler

    needs_traces()  # figures_for checks the traces even when only the real part runs
    asked = {}
    good = {DEFAULT: 0.45, "rr+fcfs": 0.3, "eft+fcfs": 0.4, "hexgen+least-slack": 0.36}

    def stub(scale: float, schedulers: tuple[str, ...], search: GoodputSearch) -> dict:
        asked.update(scale=scale, schedulers=schedulers, requests=search.max_requests)
        measured = {c: search_goodput(lambda r, g=g: r <= g, search, 0.4) for c, g in good.items()}
        return goodput_figures(measured, measured)

    monkeypatch.setattr(scheduler, "real_goodput", stub)
    figures = figures_for(TINY, options(["--only-real", "--real-requests", "12", "--plot", str(tmp_path / "p.png")]))
    assert asked == {"scale": 3.0, "schedulers": HEADLINE, "requests": 12}
    assert figures["runs"] == [] and figures["real_run"] is False
    for key in ("real_goodput_ratio_vs_rr_fcfs", "real_goodput_ratio_vs_hexgen", "real_goodput_ratio_vs_eft_fcfs", "real_goodput_sim_error"):
        assert figures[key] == figures["real_goodput"][key]
    assert figures["real_goodput_sim_error"] == 0 and figures["real_goodput_ratio_vs_rr_fcfs"] > 1
