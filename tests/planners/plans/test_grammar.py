"""The plan JSON schema: only known source names, each source's arguments, and a form llama.cpp turns into a grammar."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sloflow.planners.plans.catalog import PlanSource, nestful_sources
from sloflow.planners.plans.grammar import REFERENCE_PATTERN, plan_json_schema
from sloflow.planners.plans.plan import RESULT
from sloflow.planners.plans.validate import validate_plan


def _names(schema: dict[str, Any]) -> list[Any]:
    out = []
    for alternative in schema["items"]["anyOf"]:
        name = alternative["properties"]["name"]
        out += [name["const"]] if "const" in name else name["enum"]
    return out


def test_step_names_are_only_the_sources_and_var_result(shop_sources: list[PlanSource]) -> None:
    for per_source in (True, False):
        schema = plan_json_schema(shop_sources, per_source_arguments=per_source)
        assert sorted(_names(schema)) == sorted([s.name for s in shop_sources] + [RESULT])
        assert "$ref" not in json.dumps(schema)


def test_each_source_gets_its_own_arguments_and_non_strings_may_be_references(shop_sources: list[PlanSource]) -> None:
    schema = plan_json_schema(shop_sources, max_steps=4)
    assert schema["maxItems"] == 5
    status = next(a for a in schema["items"]["anyOf"] if a["properties"]["name"].get("const") == "order_status")
    arguments = status["properties"]["arguments"]
    assert arguments["required"] == ["order_id"] and arguments["additionalProperties"] is False
    assert arguments["properties"]["order_id"]["anyOf"][0] == {"type": "integer"}
    assert arguments["properties"]["order_id"]["anyOf"][1] == {"type": "string", "pattern": REFERENCE_PATTERN}
    assert list(status["properties"]) == ["label", "name", "arguments"]  # the label before the arguments that may not use it


def _grammar(schema: dict[str, Any]) -> str:
    """The GBNF text llama-cpp-python makes of a JSON schema (the embedded backend's path)."""
    llama_cpp = pytest.importorskip("llama_cpp")
    return llama_cpp.LlamaGrammar.from_json_schema(json.dumps(schema), verbose=False)._grammar


def test_llama_cpp_converts_the_schema(shop_sources: list[PlanSource], nestful: tuple[list[Any], list[dict[str, Any]]]) -> None:
    cases = [
        (plan_json_schema(shop_sources), "order_status"),
        (plan_json_schema(shop_sources, per_source_arguments=False), "order_status"),
        (plan_json_schema(nestful_sources(nestful[1])), "calculate_route"),
    ]
    for schema, name in cases:
        grammar = _grammar(schema)
        assert f'"\\"{name}\\""' in grammar and '"\\"var_result\\""' in grammar
        assert 'root ::= "[" space item ("," space item)* "]" space' in grammar


@pytest.mark.model
def test_llama_cpp_parses_the_grammar(test_model_path: Path, shop_sources: list[PlanSource], nestful: tuple[list[Any], list[dict[str, Any]]]) -> None:
    """Converting only makes text; llama.cpp parses it when sampling starts, and a bad grammar crashed generation."""
    llama_cpp = pytest.importorskip("llama_cpp")
    tokenizer = llama_cpp.Llama(str(test_model_path), vocab_only=True, verbose=False)  # no weights: a fraction of a second
    vocab = llama_cpp.llama_model_get_vocab(tokenizer._model.model)

    def parses(schema: dict[str, Any]) -> bool:
        sampler = llama_cpp.llama_sampler_init_grammar(vocab, _grammar(schema).encode(), b"root")
        if sampler:
            llama_cpp.llama_sampler_free(sampler)
        return bool(sampler)

    assert not parses({"type": "string", "pattern": r"^\$var1$"})  # the converter copies `\$`, which llama.cpp rejects
    assert parses(plan_json_schema(shop_sources))
    assert parses(plan_json_schema(shop_sources, per_source_arguments=False, max_steps=3))
    assert parses(plan_json_schema(nestful_sources(nestful[1])))


def test_the_schema_admits_every_gold_plan_the_validator_accepts(nestful: tuple[list[dict[str, Any]], list[dict[str, Any]]]) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    data, spec = nestful
    sources = nestful_sources(spec)
    # One validator: jsonschema.validate would check the large schema itself on every call.
    validator = jsonschema.Draft202012Validator(plan_json_schema(sources))
    valid = [record["output"] for record in data if validate_plan(record["output"], sources).ok]
    assert len(valid) >= 100
    assert [plan for plan in valid if not validator.is_valid(plan)] == []
    assert not validator.is_valid([{"name": "no_such_tool", "arguments": {}, "label": "var1"}])
    assert not validator.is_valid([{"name": RESULT, "arguments": {"x": "plain text"}}])
    assert not validator.is_valid([{"name": "calculate_gcd", "arguments": {"num1": "12", "num2": 8}, "label": "var1"}])


def test_an_argument_with_a_known_form_takes_that_form_or_a_reference() -> None:
    arguments = {"type": "object", "properties": {"user_id": {"type": "string", "pattern": "^[a-z]+_[0-9]+$", "description": "a user id like ana_12"}}, "required": ["user_id"]}
    users = PlanSource("get_user", "a user's profile", arguments, None, "function")
    schema = plan_json_schema([users])
    user_id = schema["items"]["anyOf"][0]["properties"]["arguments"]["properties"]["user_id"]
    assert user_id == {"anyOf": [{"type": "string", "pattern": "^[a-z]+_[0-9]+$"}, {"type": "string", "pattern": REFERENCE_PATTERN}]}
    bad = validate_plan([{"label": "var1", "name": "get_user", "arguments": {"user_id": "Ana Diaz"}}, {"name": RESULT, "arguments": {"u": "$var1$"}}], [users])
    assert bad.argument_problems and 'should match ^[a-z]+_[0-9]+$ (a user id like ana_12), not the string "Ana Diaz"' in bad.argument_problems[0]
    good = validate_plan([{"label": "var1", "name": "get_user", "arguments": {"user_id": "ana_12"}}, {"name": RESULT, "arguments": {"u": "$var1$"}}], [users])
    assert good.ok
