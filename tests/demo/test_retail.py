"""The demo retail store: built from code, tau2's read-only tools over it, registered as sources."""

from __future__ import annotations

from pathlib import Path

import pytest

from sloflow.demo.retail import POLICY_INDEX, RetailStore, build_retail_db, register_retail_demo
from sloflow.errors import InvalidRequest, NotFound
from sloflow.retrieval.sources import SourceRegistry


def test_the_store_answers_the_read_only_tools(tmp_path: Path) -> None:
    store = RetailStore(build_retail_db(tmp_path / "retail.sqlite"))
    order = store.get_order_details("#W1001")
    assert order["status"] == "delivered" and order["items"]  # the README's example order
    user = store.get_user_details(order["user_id"])
    assert "#W1001" in user["orders"]
    first, last, zip_code = user["name"]["first_name"], user["name"]["last_name"], user["address"]["zip"]
    assert store.find_user_id_by_name_zip(first.lower(), last, zip_code).startswith(f"{first.lower()}_{last.lower()}_")
    assert store.find_user_id_by_email(user["email"].upper()) == order["user_id"]
    product = store.get_product_details(order["items"][0]["product_id"])
    assert order["items"][0]["item_id"] in product["variants"]
    assert product["product_id"] in store.list_all_product_types().values()
    assert store.get_order_details("W1001") == order  # the '#' may be left out
    with pytest.raises(NotFound, match="order '#W9999'"):
        store.get_order_details("#W9999")


def test_the_same_build_twice_is_the_same_store(tmp_path: Path) -> None:
    a = build_retail_db(tmp_path / "a.sqlite").read_bytes()
    assert build_retail_db(tmp_path / "b.sqlite").read_bytes() == a


async def test_the_demo_registers_functions_and_the_policy(sources: SourceRegistry, tmp_path: Path) -> None:
    names = register_retail_demo(sources, tmp_path)
    assert register_retail_demo(sources, tmp_path) == names  # a second start changes nothing
    catalog = {s.name: s for s in sources.catalog()}
    assert set(names) <= set(catalog) and catalog[POLICY_INDEX].kind == "index"
    assert "items" in catalog["get_order_details"].output["properties"]
    order = await sources.call("get_order_details", {"order_id": "#W1001"})
    assert order["order_id"] == "#W1001"
    hits = await sources.call(POLICY_INDEX, {"query": "can a delivered order be returned?", "k": 2})
    assert hits and "return" in hits[0].text.lower()


@pytest.mark.parametrize(
    ("source", "arguments", "field"),
    [
        ("find_user_id_by_email", {"email": "ana_diaz_1234"}, "email"),  # a user id where the email goes
        ("find_user_id_by_name_zip", {"first_name": "ana_diaz_1234", "last_name": "Diaz", "zip": "12345"}, "first_name"),
        ("find_user_id_by_name_zip", {"first_name": "Ana", "last_name": "Diaz", "zip": "Austin"}, "zip"),
    ],
)
async def test_a_lookup_value_in_the_wrong_form_is_refused_with_the_form(
    sources: SourceRegistry, tmp_path: Path, source: str, arguments: dict[str, str], field: str
) -> None:
    register_retail_demo(sources, tmp_path)
    with pytest.raises(InvalidRequest, match=f"{field}: String should match pattern"):
        await sources.call(source, arguments)
    catalog = {s.name: s for s in sources.catalog()}
    assert catalog[source].parameters["properties"][field]["pattern"]  # so the planner's grammar holds the form too
