"""Pruning keeps the calls of a broken plan that can run and drops the rest with what depends on them."""

from __future__ import annotations

from sloflow.planners.plans.catalog import PlanSource
from sloflow.planners.plans.prune import prune_plan
from sloflow.planners.plans.validate import validate_plan


def test_unknown_sources_and_bad_references_are_dropped_with_their_dependants(shop_sources: list[PlanSource]) -> None:
    plan = [
        {"name": "order_status", "arguments": {"order_id": 7}, "label": "var1"},
        {"name": "order_statuz", "arguments": {"order_id": 8}, "label": "var2"},  # unknown source
        {"name": "manuals", "arguments": {"query": "$var2.status$"}, "label": "var3"},  # uses a dropped step
        {"name": "reviews", "arguments": {"query": "about $var4$"}, "label": "var4"},  # refers to itself
        {"name": "manuals", "arguments": {"query": "care of $var1.items.sku$"}, "label": "var5"},
        {"name": "var_result", "arguments": {"status": "$var1$", "bad": "$var3$", "care": "$var5$"}},
    ]
    pruned = prune_plan(plan, shop_sources)
    assert pruned is not None and pruned.dropped == ["var2", "var3", "var4"]
    assert [s.label for s in pruned.plan.calls] == ["var1", "var5"]
    assert pruned.plan.result is not None and pruned.plan.result.arguments == {"status": "$var1$", "care": "$var5$"}
    assert validate_plan(pruned.plan, shop_sources).ok


def test_a_missing_or_emptied_var_result_is_rebuilt_over_the_leaf_calls(shop_sources: list[PlanSource]) -> None:
    plan = [
        {"name": "order_status", "arguments": {"order_id": 7}, "label": "var1"},
        {"name": "manuals", "arguments": {"query": "$var1.status$"}, "label": "var2"},
        {"name": "reviews", "arguments": {"query": "kettles"}, "label": "var1"},  # a label used before
    ]
    pruned = prune_plan(plan, shop_sources)
    assert pruned is not None and pruned.dropped == ["var1"]
    assert pruned.plan.to_nestful()[-1] == {"name": "var_result", "arguments": {"var2": "$var2$"}}
    assert validate_plan(pruned.plan, shop_sources).ok


def test_nothing_to_keep_gives_none(shop_sources: list[PlanSource]) -> None:
    assert prune_plan([{"name": "nope", "arguments": {}, "label": "var1"}], shop_sources) is None
    assert prune_plan("not a plan", shop_sources) is None


def test_an_optional_argument_with_a_bad_reference_is_left_out_and_the_call_kept(shop_sources: list[PlanSource]) -> None:
    plan = [
        {"label": "var1", "name": "order_status", "arguments": {"order_id": 7, "verbose": "$var1.fast$"}},  # optional, own output
        {"label": "var2", "name": "order_status", "arguments": {"order_id": "$var3.id$"}},  # required, a later step
        {"label": "var3", "name": "manuals", "arguments": {"query": "$var1.status$"}},
        {"name": "var_result", "arguments": {"a": "$var1$", "b": "$var3$"}},
    ]
    pruned = prune_plan(plan, shop_sources)
    assert pruned is not None and pruned.dropped == ["var2"] and pruned.dropped_arguments == ["var1.verbose"]
    assert pruned.plan.calls[0].arguments == {"order_id": 7}
    assert validate_plan(pruned.plan, shop_sources).ok


def test_steps_asked_to_be_dropped_go_with_their_dependants(shop_sources: list[PlanSource]) -> None:
    plan = [
        {"label": "var1", "name": "order_status", "arguments": {"order_id": 7}},
        {"label": "var2", "name": "manuals", "arguments": {"query": "$var1.status$"}},
        {"label": "var3", "name": "reviews", "arguments": {"query": "kettles"}},
    ]
    pruned = prune_plan(plan, shop_sources, drop=["var1"])
    assert pruned is not None and pruned.dropped == ["var1", "var2"] and [s.label for s in pruned.plan.calls] == ["var3"]


def test_a_reference_to_a_field_its_step_cannot_give_is_re_pointed_to_the_earlier_step_that_declares_it(shop_sources: list[PlanSource]) -> None:
    plan = [
        {"label": "var1", "name": "order_status", "arguments": {"order_id": 7}},  # declares status and items
        {"label": "var2", "name": "manuals", "arguments": {"query": "care of $var2.status$"}},  # its own output
        {"label": "var3", "name": "reviews", "arguments": {"query": "$var2.items.sku$"}},  # manuals' hits have no items
        {"label": "var4", "name": "reviews", "arguments": {"query": "$var9.nothing$"}},  # no step declares it: dropped
    ]
    pruned = prune_plan(plan, shop_sources)
    assert pruned is not None and pruned.dropped == ["var4"]
    assert pruned.repointed == ["$var2.status$ -> $var1.status$", "$var2.items.sku$ -> $var1.items.sku$"]
    assert [s.arguments["query"] for s in pruned.plan.calls[1:]] == ["care of $var1.status$", "$var1.items.sku$"]
    assert validate_plan(pruned.plan, shop_sources).ok


def test_a_field_of_a_step_that_returns_one_value_is_that_value(shop_sources: list[PlanSource]) -> None:
    find = PlanSource("find_order", "the id of a customer's last order", {"type": "object", "properties": {"name": {"type": "string"}}}, {"type": "integer", "description": "the order id"})
    plan = [
        {"label": "var1", "name": "find_order", "arguments": {"name": "Ana"}},
        {"label": "var2", "name": "order_status", "arguments": {"order_id": "$var1.order_id$"}},  # var1 is the id itself
    ]
    pruned = prune_plan(plan, [*shop_sources, find])
    assert pruned is not None and not pruned.dropped and pruned.repointed == ["$var1.order_id$ -> $var1$"]
    assert pruned.plan.calls[1].arguments == {"order_id": "$var1$"}
    other = [plan[0], {"label": "var2", "name": "reviews", "arguments": {"query": "$var1.items$"}}]  # not what var1 is
    kept = prune_plan(other, [*shop_sources, find])
    # but what the order's status step gives: that skipped step is put in
    assert kept is not None and not kept.repointed and kept.bridged == ["var3 = order_status(order_id=$var1$)"]
    assert kept.plan.calls[2].arguments == {"query": "$var3.items$"}


def _lookup_sources() -> list[PlanSource]:
    one = lambda name: {"type": "object", "properties": {name: {"type": "string"}}, "required": [name]}  # noqa: E731
    return [
        PlanSource("find_user_id", "a user id by email", one("email"), {"type": "string", "description": "the user id"}),
        PlanSource("get_user", "a user's profile", one("user_id"), {"type": "object", "properties": {"orders": {"type": "array", "items": {"type": "string"}, "description": "order ids"}}}),
        PlanSource("get_order", "an order", one("order_id"), {"type": "object", "properties": {"status": {"type": "string"}}}),
    ]


def test_a_skipped_step_between_a_value_and_a_field_is_put_in() -> None:
    sources = _lookup_sources()
    plan = [
        {"label": "var1", "name": "find_user_id", "arguments": {"email": "ana@example.com"}},
        {"label": "var2", "name": "get_order", "arguments": {"order_id": "$var1.orders$"}},  # the profile step was skipped
        {"label": "var3", "name": "get_order", "arguments": {"order_id": "$var1.orders.-1$"}},
        {"name": "var_result", "arguments": {"orders": "$var2$", "last": "$var3$"}},
    ]
    assert not validate_plan(plan, sources).ok
    pruned = prune_plan(plan, sources)
    assert pruned is not None and not pruned.dropped and pruned.bridged == ["var4 = get_user(user_id=$var1$)"]
    assert [(s.label, s.name, s.arguments) for s in pruned.plan.calls] == [
        ("var1", "find_user_id", {"email": "ana@example.com"}),
        ("var4", "get_user", {"user_id": "$var1$"}),
        ("var2", "get_order", {"order_id": "$var4.orders$"}),
        ("var3", "get_order", {"order_id": "$var4.orders.-1$"}),  # the step put in serves both
    ]
    assert validate_plan(pruned.plan, sources).ok and "skipped steps" in pruned.changes


def test_no_step_is_put_in_when_the_value_does_not_say_which_source_takes_it() -> None:
    sources = _lookup_sources()
    plan = [
        {"label": "var1", "name": "find_user_id", "arguments": {"email": "ana@example.com"}},
        {"label": "var2", "name": "get_order", "arguments": {"order_id": "$var1.status$"}},  # no source takes a user id and returns status
    ]
    pruned = prune_plan(plan, sources)
    assert pruned is not None and pruned.bridged == [] and pruned.plan.calls[-1].arguments == {"order_id": "$var1.status$"}


def test_a_made_up_id_is_replaced_by_the_field_of_an_earlier_step_that_names_it() -> None:
    sources = _lookup_sources()
    for source in sources:  # ids have a declared form, as the retail demo's do
        for schema in source.parameters["properties"].values():
            schema["pattern"] = "^[a-z0-9_.@#]+$"
    plan = [
        {"label": "var1", "name": "find_user_id", "arguments": {"email": "ana@example.com"}},
        {"label": "var2", "name": "get_order", "arguments": {"order_id": "#W2702727"}},  # another customer's order
        {"name": "var_result", "arguments": {"order": "$var2$"}},
    ]
    pruned = prune_plan(plan, sources, drop=["var2"])
    assert pruned is not None and not pruned.dropped
    assert pruned.bridged == ["var3 = get_user(user_id=$var1$)"]  # the profile lists the order ids
    assert [(s.label, s.arguments) for s in pruned.plan.calls][1:] == [("var3", {"user_id": "$var1$"}), ("var2", {"order_id": "$var3.orders$"})]
    assert validate_plan(pruned.plan, sources).ok
    # A made-up email names no earlier field: that step still goes.
    gone = prune_plan(plan, sources, drop=["var1"])
    assert gone is not None and gone.dropped == ["var1"] and [s.label for s in gone.plan.calls] == ["var2"]
