"""References: finding them, resolving nested fields and list indexes, typed versus formatted substitution."""

from __future__ import annotations

from pydantic import BaseModel
import pytest

from sloflow.planners.plans.references import UnresolvedReference, find_references, plain, resolve
from sloflow.retrieval.databases import SqlResult
from sloflow.retrieval.index import SearchHit

OUTPUTS = {
    "var1": {"items": [{"id": 7, "tags": ["a", "b"]}, {"id": 9, "tags": []}], "total": 12.5},
    "var2": [{"name": "Ada"}, {"name": "Bob"}],
}


def test_references_are_found_inside_strings_lists_and_dicts_but_prices_are_not_references() -> None:
    args = {"q": "order $var1.items.0.id$ of $var2[1].name$", "ids": ["$var1$", {"x": "$var3.a.b$"}], "price": "$100-$200", "n": 3}
    found = [(r.label, r.path) for r in find_references(args)]
    assert found == [("var1", ("items", "0", "id")), ("var2", ("1", "name")), ("var1", ()), ("var3", ("a", "b"))]


def test_a_whole_string_reference_keeps_the_type_of_the_value() -> None:
    assert resolve("$var1.items.0.id$", OUTPUTS) == 7
    assert resolve("$var1.total$", OUTPUTS) == 12.5
    assert resolve("$var1.items.0.tags$", OUTPUTS) == ["a", "b"]
    assert resolve("$var2$", OUTPUTS) == OUTPUTS["var2"]
    assert resolve("$var1.items.-1.id$", OUTPUTS) == 9  # the last item


def test_a_field_of_a_list_is_that_field_of_every_item_flattened() -> None:
    assert resolve("$var2.name$", OUTPUTS) == ["Ada", "Bob"]
    assert resolve("$var1.items.id$", OUTPUTS) == [7, 9]
    assert resolve("$var1.items.tags$", OUTPUTS) == ["a", "b"]  # lists of lists are flattened
    orders = {"var3": [{"items": [{"pid": 1}, {"pid": 2}]}, {"items": [{"pid": 3}]}]}
    assert resolve("$var3.items.pid$", orders) == [1, 2, 3]


def test_references_inside_longer_strings_are_formatted_and_nested_arguments_resolve() -> None:
    args = {"q": "id $var1.items.1.id$ by $var2.0.name$", "list": ["$var2[1].name$", 3], "nested": {"tags": "$var1.items[0].tags$"}}
    assert resolve(args, OUTPUTS) == {"q": "id 9 by Ada", "list": ["Bob", 3], "nested": {"tags": ["a", "b"]}}
    assert resolve("tags: $var1.items.0.tags$", OUTPUTS) == 'tags: ["a", "b"]'
    assert resolve("$var1.total$ + $var1.items.0.id$", OUTPUTS) == "12.5 + 7"


def test_dataclasses_and_pydantic_models_are_read_as_dicts() -> None:
    hit = SearchHit("d#0", "d", 0, "Returns within 30 days.", 0.9, {"lang": "en"}, "policies", "faiss")
    table = SqlResult(["name", "city"], [["Ada", "London"], ["Bob", b"\x01"]], "SELECT ...", False, 1.0)

    class Order(BaseModel):
        id: int
        lines: list[str]

    outputs = {"var1": [hit], "var2": table, "var3": Order(id=4, lines=["x"])}
    assert resolve("$var1.0.text$", outputs) == "Returns within 30 days."
    assert resolve("$var1.0.metadata.lang$", outputs) == "en"
    assert resolve("$var2.rows.0.1$", outputs) == "London"
    assert resolve("$var2.rows.1.1$", outputs) == "01"  # blobs become hex, as SqlResult.to_dict says
    assert resolve("$var3.lines.0$", outputs) == "x"
    assert plain(table)["columns"] == ["name", "city"]


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("$var9$", "there is no output of var9"),
        ("$var1.count$", "var1 has no field 'count' \\(fields: items, total\\)"),
        ("$var1.items.5.id$", "var1.items has 2 items; there is no item 5"),
        ("$var2.age$", "var2.0 has no field 'age'"),
        ("$var1.total.x$", "var1.total is a float"),
    ],
)
def test_unresolvable_references_say_why(reference: str, message: str) -> None:
    with pytest.raises(UnresolvedReference, match=message):
        resolve({"q": reference}, OUTPUTS)
