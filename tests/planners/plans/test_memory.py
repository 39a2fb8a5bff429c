"""Plan memory: nearest stored plans come back; namespaces and source sets stay apart."""

from __future__ import annotations

from pathlib import Path

from sloflow.planners.plans.memory import PlanMemory, memory_category
from sloflow.planners.plans.plan import Plan, parse_plan
from sloflow.retrieval.embedder import Embedder
from sloflow.retrieval.semantic_cache import SemanticCache

SOURCES = ["manuals", "sql:shop", "reviews"]


def plan_for(query: str, source: str = "manuals") -> Plan:
    return parse_plan([{"name": source, "arguments": {"query": query}, "label": "var1"}, {"name": "var_result", "arguments": {"m": "$var1$"}}])


def test_the_nearest_stored_plans_come_back_most_similar_first(embedder: Embedder) -> None:
    memory = PlanMemory(embedder=embedder)
    memory.remember("acme", "how do I descale my coffee machine?", plan_for("descale coffee machine"), SOURCES)
    memory.remember("acme", "what is the warranty on the kettle?", plan_for("kettle warranty", "reviews"), SOURCES)
    memory.remember("acme", "which laptops have the longest battery life?", plan_for("laptop battery", "sql:shop"), SOURCES)
    examples = memory.examples("acme", "how to remove limescale from the espresso machine", SOURCES, k=2)
    assert [e.request for e in examples] == ["how do I descale my coffee machine?", "what is the warranty on the kettle?"]
    assert examples[0].plan == plan_for("descale coffee machine")
    assert examples[0].similarity > examples[1].similarity


def test_plans_that_differ_only_in_their_values_come_back_once(embedder: Embedder) -> None:
    memory = PlanMemory(embedder=embedder)
    memory.remember("acme", "how do I descale my coffee machine?", plan_for("descale coffee machine"), SOURCES)
    memory.remember("acme", "how do I descale my espresso maker?", plan_for("descale espresso maker"), SOURCES)
    memory.remember("acme", "what do reviews say about the kettle?", plan_for("kettle", "reviews"), SOURCES)
    examples = memory.examples("acme", "how to remove limescale from the coffee machine", SOURCES, k=2)
    # The second descaling plan has the first one's shape: the next shape is shown instead.
    assert [e.plan.steps[0].name for e in examples] == ["manuals", "reviews"]


def test_namespaces_and_source_sets_do_not_see_each_other(embedder: Embedder) -> None:
    memory = PlanMemory(embedder=embedder)
    memory.remember("acme", "how do I descale my coffee machine?", plan_for("descale"), SOURCES)
    assert memory.examples("globex", "how do I descale my coffee machine?", SOURCES) == []
    assert memory.examples("acme", "how do I descale my coffee machine?", ["manuals", "reviews"]) == []
    # The order of the sources does not matter, nor do repeats.
    assert len(memory.examples("acme", "how do I descale my coffee machine?", ["reviews", "sql:shop", "manuals", "manuals"])) == 1
    assert memory_category("a|b", ["c"]) != memory_category("a", ["b|c"])


def test_the_same_request_and_plan_are_kept_once_and_memory_persists(tmp_path: Path, embedder: Embedder) -> None:
    path = tmp_path / "plans.sqlite"
    memory = PlanMemory(embedder=embedder, path=path)
    first = memory.remember("acme", "kettle warranty?", plan_for("kettle warranty"), SOURCES)
    assert memory.remember("acme", "kettle warranty?", plan_for("kettle warranty"), SOURCES) == first
    other = memory.remember("acme", "kettle warranty?", plan_for("kettle guarantee", "reviews"), SOURCES)
    assert other != first and len(memory.cache) == 2
    memory.cache.close()
    reopened = PlanMemory(embedder=embedder, path=path)
    stored = reopened.examples("acme", "kettle warranty?", SOURCES, k=5)
    assert {e.plan.steps[0].arguments["query"] for e in stored} == {"kettle warranty", "kettle guarantee"}


def test_a_given_semantic_cache_is_the_store_and_its_other_categories_stay_out(embedder: Embedder) -> None:
    cache = SemanticCache(embedder)
    memory = PlanMemory(cache)  # empty, so falsy: it must still be the one used
    cache.put("how do I descale my coffee machine?", "an answer, not a plan", "chat")
    assert memory.cache is cache and memory.examples("acme", "how do I descale my coffee machine?", SOURCES) == []
    memory.remember("acme", "how do I descale my coffee machine?", plan_for("descale"), SOURCES)
    assert len(cache) == 2 and [e.plan for e in memory.examples("acme", "descaling the coffee machine", SOURCES)] == [plan_for("descale")]


def test_a_few_shapes_come_back_all_in_stored_order_and_many_do_not(embedder: Embedder) -> None:
    memory = PlanMemory(embedder=embedder)
    memory.remember("acme", "which laptops have the longest battery life?", plan_for("laptop battery", "sql:shop"), SOURCES)
    memory.remember("acme", "how do I descale my coffee machine?", plan_for("descale coffee machine"), SOURCES)
    memory.remember("acme", "how do I descale my espresso maker?", plan_for("descale espresso maker"), SOURCES)
    memory.remember("acme", "what is the warranty on the kettle?", plan_for("kettle warranty", "reviews"), SOURCES)
    # The same examples, in the order stored, whatever the request: a prompt that stays cached.
    every = memory.every_shape("acme", SOURCES)
    assert every is not None
    assert [e.request for e in every] == [
        "which laptops have the longest battery life?",
        "how do I descale my coffee machine?",  # the first of its shape
        "what is the warranty on the kettle?",
    ]
    assert memory.every_shape("acme", SOURCES, most=2) is None
    assert memory.every_shape("globex", SOURCES) is None
