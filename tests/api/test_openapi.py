"""The OpenAPI document says what the server accepts: patterns, limits, workflow inputs, errors, links."""

from __future__ import annotations

from tests.api.conftest import Deployment


async def test_the_spec_is_as_strict_as_the_validation(deployment: Deployment) -> None:
    async with deployment.client() as c:
        spec = (await c.get("/openapi.json")).json()
    paths, schemas = spec["paths"], spec["components"]["schemas"]
    for path, item in paths.items():
        for method, op in item.items():
            assert {"401", "404", "422", "429"} <= set(op["responses"]) or op["operationId"] in ("health", "ready"), (method, path)
            for param in op.get("parameters", []):
                if param["in"] == "path" and param["name"] != "doc_id":
                    assert "pattern" in param["schema"] or "enum" in param["schema"], (path, param)
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert paths["/v1/health"]["get"]["security"] == []
    run = paths["/v1/workflows/{name}/runs"]["post"]
    assert set(run["parameters"][0]["schema"]["enum"]) == {"ask", "text2sql", "reaper", "sleeptime", "sleeptime.learn", "stream_rag"}
    inputs = [ref["$ref"].rsplit("/", 1)[1] for ref in schemas["RunCreate"]["properties"]["input"]["anyOf"]]
    assert "text2sql_input" in inputs and schemas["text2sql_input"]["additionalProperties"] is False
    assert schemas["RunCreate"]["additionalProperties"] is False and schemas["RunCreate"]["properties"]["slo"]["anyOf"][0]["minimum"] > 0
    assert {"GetRun", "CancelRun", "RunEvents", "RunInput"} <= set(run["responses"]["202"]["links"])
    revision = schemas["Revision"]
    assert revision["additionalProperties"] is False and revision["properties"]["revision"]["minimum"] == 0
    assert "/v1/runs/{run_id}/input" in paths
    assert "GetIndex" in paths["/v1/indexes"]["post"]["responses"]["201"]["links"]
    assert {"GetContext", "ReplaceContext", "DeleteContext"} <= set(paths["/v1/contexts"]["post"]["responses"]["201"]["links"])
    assert {"get", "put", "delete"} <= set(paths["/v1/contexts/{context_id}"])
    assert str(deployment.databases) in schemas["DatabaseCreate"]["properties"]["url"]["pattern"].replace("\\", "")
    assert schemas["ChatRequest"]["properties"]["max_tokens"]["anyOf"][0]["maximum"] == 2047
    assert schemas["ErrorBody"]["required"] == ["code", "message"]
