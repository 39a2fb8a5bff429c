"""The runtime benchmark keeps running and reports the figures the issue asks for."""

from __future__ import annotations

from sloflow.bench import runtime


def test_a_tiny_run_reports_both_ratios_for_every_size():
    figures = runtime.main(quick=True, args=["--rounds", "3", "--rounds-ckpt", "2"])
    assert figures["overhead_ratio_no_ckpt"] == figures["ratio_no_ckpt_5"] > 0
    assert figures["overhead_ratio_ckpt"] == figures["ratio_ckpt_5"] > 0
    for kind in ("no_ckpt", "ckpt"):
        for n in runtime.SIZES:
            assert figures[f"langgraph_ms_{kind}_{n}"] > 0 and figures[f"sloflow_ms_{kind}_{n}"] > 0
