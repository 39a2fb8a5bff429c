"""Choosing one option per letter with no domain twice."""

from __future__ import annotations

from sloflow.planners.gates.puzzle import distinct_domains


def test_positions_placed_first_keep_their_first_option_from_a_pick_placed_earlier() -> None:
    # Position 1 has fewer options, so it is placed first by default and takes domain "x",
    # which position 0's first option (a stocked clue) needs.
    options = [[("stocked", "x"), ("term", "y"), ("term", "w")], [("term", "x"), ("term", "z")]]
    assert distinct_domains(options, lambda o: o[1]) == [("term", "y"), ("term", "x")]
    assert distinct_domains(options, lambda o: o[1], first={0}) == [("stocked", "x"), ("term", "z")]


def test_no_choice_without_distinct_domains() -> None:
    assert distinct_domains([[("a", "x")], [("b", "x")]], lambda o: o[1]) is None
